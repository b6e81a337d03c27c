// Tests of io/output_dir.hpp: ensure_writable_directory creates what is missing, leaves
// nothing behind, and refuses unusable locations with an io_error naming the directory.
#include "../support.hpp"

#include <filesystem>
#include <fstream>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

#include "forgery/io/output_dir.hpp"

namespace {

namespace fs = std::filesystem;

// The message of the io_error ensure_writable_directory(dir) throws ("" when none).
std::string refusal(const fs::path& dir) {
  try {
    fg::io::ensure_writable_directory(dir);
  } catch (const fg::io_error& e) {
    CHECK(e.path() == (dir.empty() ? std::string("\"\"") : dir.string()));
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

} // namespace

TEST_CASE("ensure_writable_directory creates missing parents and leaves no probe behind") {
  const fg::test::Scratch scratch;
  const fs::path dir = scratch.dir / "a" / "b" / "out";
  fg::io::ensure_writable_directory(dir);
  CHECK(fs::is_directory(dir));
  CHECK(fs::is_empty(dir));
  // An existing directory with content is fine, and the content is untouched.
  std::ofstream(dir / "kept.txt") << "x";
  fg::io::ensure_writable_directory(dir);
  CHECK(fs::exists(dir / "kept.txt"));
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
}

TEST_CASE("ensure_writable_directory refuses an empty path, a file, and a path through a file") {
  const fg::test::Scratch scratch;
  CHECK(contains(refusal(""), "empty path"));

  const fs::path file = scratch.dir / "regular";
  std::ofstream(file) << "x";
  CHECK(contains(refusal(file), "regular"));
  const std::string through = refusal(file / "sub");
  CHECK(contains(through, (file / "sub").string()));
  CHECK(contains(through, "cannot create the output directory"));
  CHECK(fs::is_regular_file(file));
}

TEST_CASE("ensure_writable_directory refuses a directory it cannot write into") {
  // /proc takes no new files, not even from root (tests may run as root, whom chmod does
  // not stop).
  if (fs::is_directory("/proc/self")) {
    CHECK(contains(refusal("/proc"), "/proc"));
    CHECK_FALSE(refusal("/proc/forgery-output").empty());
  }
  if (::geteuid() != 0) {
    const fg::test::Scratch scratch;
    const fs::path locked = scratch.dir / "locked";
    fs::create_directories(locked);
    ::chmod(locked.c_str(), 0555);
    const std::string why = refusal(locked);
    ::chmod(locked.c_str(), 0755);
    CHECK(contains(why, "cannot create a file in the output directory"));
    CHECK(fs::is_empty(locked));
  }
}
