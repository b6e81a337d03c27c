# Finds the stb single-file libraries as Debian packages them (libstb-dev: headers under
# include/stb and one compiled libstb holding every implementation), and provides the
# imported target Stb::Stb. forgery uses stb_image_write for PNG sample grids.
include(FindPackageHandleStandardArgs)

find_path(Stb_INCLUDE_DIR NAMES stb_image_write.h PATH_SUFFIXES stb)
find_library(Stb_LIBRARY NAMES stb)
find_package_handle_standard_args(Stb REQUIRED_VARS Stb_LIBRARY Stb_INCLUDE_DIR)

if(Stb_FOUND AND NOT TARGET Stb::Stb)
  add_library(Stb::Stb UNKNOWN IMPORTED)
  set_target_properties(Stb::Stb PROPERTIES IMPORTED_LOCATION "${Stb_LIBRARY}" INTERFACE_INCLUDE_DIRECTORIES
                                                                                 "${Stb_INCLUDE_DIR}")
endif()
mark_as_advanced(Stb_INCLUDE_DIR Stb_LIBRARY)
