# Conan 2 recipe for forgery, a header-only C++20 library. The package is what
# `cmake --install` produces (headers, share/pkgconfig/forgery.pc), less the CMake package
# files, which CMakeDeps generates from package_info(). Consumers write find_package(forgery)
# and link forgery::forgery; with -o "forgery/*:cuda=True" also forgery::cuda.
#
# Offline with Debian's packages: scripts/conan-test.sh and the profile
# conan/profiles/debian12, whose [platform_requires] list eigen, xtensor, zlib and stb.
# Conan has no package for those, so package_info() asks pkg-config where the system keeps
# them (_add_dependencies).
import os
import re

from conan import ConanFile
from conan.errors import ConanException
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load, rmdir, save
from conan.tools.gnu import PkgConfig

required_conan_version = ">=2.0"

# Included by the CMake package when cuda=True: the options that forgery::cuda gives CUDA
# sources, as in CMakeLists.txt (target forgery_cuda); keep the two in step. (CMakeDeps
# gives a component's cxxflags to C++ sources only.)
CUDA_MODULE = os.path.join("lib", "cmake", "forgery", "conan-forgery-cuda.cmake")
CUDA_MODULE_TEXT = """\
# forgery's Conan package (option cuda): forgery::cuda's options for CUDA sources.
if(TARGET forgery::cuda)
  set_property(TARGET forgery::cuda APPEND PROPERTY INTERFACE_COMPILE_OPTIONS
    "$<$<COMPILE_LANGUAGE:CUDA>:-std=c++20;--expt-relaxed-constexpr;--diag-suppress=20012;-Xcompiler=-fopenmp>")
endif()
"""


class ForgeryConan(ConanFile):
    name = "forgery"
    description = "Header-only C++20 framework for training generative adversarial networks"
    license = "MIT"
    topics = ("gan", "deep-learning", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"cuda": [True, False]}
    default_options = {"cuda": False}
    exports_sources = "CMakeLists.txt", "cmake/*", "include/*", "LICENSE"
    no_copy_source = True

    # What the headers include, by Conan Center name: version range, and the pkg-config
    # name of a system copy (platform_requires).
    #   Eigen/Core, Eigen/Eigenvalues (metrics); xtensor/xnpy.hpp, xtensor/xtensor.hpp
    #   (.npy, datasets); zlib.h (IDX .gz, checkpoint CRC-32); stb_image_write.h (PNG).
    _deps = {
        "eigen": ("[>=3.4.0 <4]", "eigen3"),
        # Tested with 0.24.x; 0.26 moved the headers (xtensor/containers/...).
        "xtensor": ("[>=0.24.3 <0.25]", "xtensor"),
        "zlib": ("[>=1.2.11 <2]", "zlib"),
        # Debian's libstb-dev (git 2022-09-08) compiles the implementations into libstb,
        # which forgery links; Conan Center's stb is headers only (see the README).
        "stb": ("[>=cci.20220909]", "stb"),
    }

    def set_version(self):
        cmakelists = load(self, os.path.join(self.recipe_folder, "CMakeLists.txt"))
        match = re.search(r"project\(forgery\s+VERSION\s+([0-9.]+)", cmakelists)
        if not match:
            raise ConanException("conanfile.py: no project(forgery VERSION ...) in CMakeLists.txt")
        self.version = match.group(1)

    def layout(self):
        cmake_layout(self, src_folder=".")

    def requirements(self):
        for name, (version, _) in self._deps.items():
            self.requires(f"{name}/{version}")

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)

    def generate(self):
        tc = CMakeToolchain(self)
        for option in ("TESTS", "EXAMPLES", "BENCHMARKS"):
            tc.cache_variables[f"FORGERY_BUILD_{option}"] = False
        tc.cache_variables["FORGERY_CUDA"] = False  # the CUDA tests and example
        tc.generate()
        CMakeDeps(self).generate()

    def build(self):
        CMake(self).configure()  # nothing to compile; install() needs a configured tree

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        CMake(self).install()
        rmdir(self, os.path.join(self.package_folder, "share", "cmake"))
        save(self, os.path.join(self.package_folder, CUDA_MODULE), CUDA_MODULE_TEXT)

    def _add_dependencies(self, info):
        """Conan packages as requires; for those the profile satisfies with
        [platform_requires] (no package, no cpp_info), the system's pkg-config files
        (Debian: eigen3.pc, xtensor.pc, zlib.pc, stb.pc)."""
        conan_deps = {dep.ref.name for dep in self.dependencies.host.values()}
        for name, (_, pc_name) in self._deps.items():
            if name in conan_deps:
                info.requires.append(f"{name}::{name}")
                continue
            pc = PkgConfig(self, pc_name)
            info.includedirs.extend(pc.includedirs)
            info.libdirs.extend(pc.libdirs)
            info.system_libs.extend(pc.libs)
            info.defines.extend(pc.defines)
            info.cxxflags.extend(pc.cflags)
            info.sharedlinkflags.extend(pc.linkflags)
            info.exelinkflags.extend(pc.linkflags)

    def _core_info(self, info):
        info.bindirs = []
        info.libdirs = []
        info.includedirs = ["include"]
        # OpenMP (backend::Cpu): compiled with -fopenmp, linked as a library rather than
        # with -fopenmp, which nvcc would refuse when it links a forgery::cuda program.
        if self.settings.compiler == "msvc":
            info.cxxflags.append("/openmp")
        else:
            info.cxxflags.append("-fopenmp")
            info.system_libs.append("omp" if "clang" in str(self.settings.compiler) else "gomp")
        self._add_dependencies(info)

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "forgery")
        self.cpp_info.set_property("cmake_target_name", "forgery::forgery")
        self.cpp_info.set_property("pkg_config_name", "forgery")
        if not self.options.cuda:
            self._core_info(self.cpp_info)
            return

        # With CUDA: the component forgery::forgery (forgery.pc) as above, and forgery::cuda
        # (forgery-cuda.pc) for forgery/backend/cuda.hpp, compiled by nvcc in the consumer:
        # the CUDA runtime and cuBLAS of the toolkit at the conf user.forgery:cuda_root
        # (default /usr/local/cuda), and nvcc's options (CUDA_MODULE). The root target, which
        # CMakeDeps links to every component, is renamed: forgery::forgery stays CUDA-free.
        self.cpp_info.set_property("cmake_target_name", "forgery::all")
        self.cpp_info.set_property("pkg_config_name", "forgery-all")
        self.cpp_info.set_property("cmake_build_modules", [CUDA_MODULE])
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        core = self.cpp_info.components["core"]
        core.set_property("cmake_target_name", "forgery::forgery")
        core.set_property("pkg_config_name", "forgery")
        self._core_info(core)
        root = self.conf.get("user.forgery:cuda_root", default="/usr/local/cuda")
        cuda = self.cpp_info.components["cuda"]
        cuda.set_property("cmake_target_name", "forgery::cuda")
        cuda.set_property("pkg_config_name", "forgery-cuda")
        cuda.requires = ["core"]
        cuda.bindirs = []
        cuda.includedirs = [os.path.join(root, "include")]
        cuda.libdirs = [os.path.join(root, "lib64")]
        cuda.system_libs = ["cudart", "cublas"]
