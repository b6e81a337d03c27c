// What the fuzz targets share: an in-memory file for the readers that take a path, and a
// check that stops the run (a finding) when an invariant of a parser does not hold.
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

namespace forgery::fuzz {

/// Reports a broken invariant and aborts, which libFuzzer records as a crash.
[[noreturn]] inline void broken(const char* what) {
  std::fprintf(stderr, "fuzz: invariant broken: %s\n", what);
  std::abort();
}

#define FORGERY_FUZZ_CHECK(cond)                                                                                       \
  do {                                                                                                                 \
    if (!(cond)) ::forgery::fuzz::broken(#cond);                                                                       \
  } while (false)

/// With FORGERY_FUZZ_VERBOSE=1 in the environment, prints why an input was refused (for
/// looking at seeds and reproducers; a fuzzing run stays quiet).
inline void refused(const std::exception& e) {
  static const bool verbose = [] {
    const char* v = std::getenv("FORGERY_FUZZ_VERBOSE");
    return v != nullptr && *v != '\0' && *v != '0';
  }();
  if (verbose) std::fprintf(stderr, "fuzz: refused: %s\n", e.what());
}

/// A file in memory (memfd_create) that path-based readers open as /proc/self/fd/N: each
/// input is written to it without touching the disk, and nothing is left behind.
class MemFile {
public:
  explicit MemFile(const char* name) : fd_(::memfd_create(name, MFD_CLOEXEC)) {
    if (fd_ < 0) {
      std::perror("fuzz: memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  ~MemFile() { ::close(fd_); }

  /// Replaces the file's content with n bytes.
  void assign(const void* data, std::size_t n) {
    if (::ftruncate(fd_, 0) != 0) broken("ftruncate of the in-memory file");
    const char* p = static_cast<const char*>(data);
    for (std::size_t done = 0; done < n;) {
      const ssize_t put = ::pwrite(fd_, p + done, n - done, static_cast<off_t>(done));
      if (put <= 0) broken("pwrite to the in-memory file");
      done += static_cast<std::size_t>(put);
    }
  }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
  int fd_;
  std::filesystem::path path_;
};

} // namespace forgery::fuzz
