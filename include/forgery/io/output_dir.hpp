// Checking an output directory before a long run: a read-only, full or mistyped location
// fails at once, naming the directory, instead of at the first save, after the training
// time is spent.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#include "forgery/core/error.hpp"

namespace forgery::io {

/// Creates `dir` and its parents where missing, then proves it writable: writes one block to
/// a file with a temporary name there, fsyncs it (a full file system refuses the block) and
/// removes it. Throws io_error naming the directory and the reason: an empty path, a path
/// through or onto a regular file, no permission, a read-only or full file system.
inline void ensure_writable_directory(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  if (dir.empty()) throw io_error("\"\"", "an output directory is needed, got an empty path");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw io_error(dir.string(), "cannot create the output directory: " + ec.message());
  if (!fs::is_directory(dir, ec)) throw io_error(dir.string(), "exists and is not a directory");

  // pid and a process-wide counter: two processes, or two threads, sharing the directory
  // never pick the same name, and O_EXCL would refuse it if they did.
  static std::atomic<unsigned> counter{0};
  const fs::path probe =
      dir / (".forgery-write-probe." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1)));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    throw io_error(dir.string(), std::string("cannot create a file in the output directory: ") + std::strerror(errno));
  const char block[4096] = {};
  std::size_t done = 0;
  int failure = 0;
  while (done < sizeof block && failure == 0) {
    const ::ssize_t w = ::write(fd, block + done, sizeof block - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      failure = w < 0 ? errno : ENOSPC;
    else
      done += static_cast<std::size_t>(w);
  }
  if (failure == 0 && ::fsync(fd) != 0) failure = errno;
  if (::close(fd) != 0 && failure == 0) failure = errno;
  const bool removed = ::unlink(probe.c_str()) == 0;
  const int unlink_errno = errno;
  if (failure != 0)
    throw io_error(dir.string(), std::string("cannot write to the output directory: ") + std::strerror(failure));
  if (!removed)
    throw io_error(dir.string(),
                   "cannot remove the write probe " + probe.filename().string() + ": " + std::strerror(unlink_errno));
}

} // namespace forgery::io
