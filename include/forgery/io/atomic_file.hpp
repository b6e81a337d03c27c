// Writing files so that nothing is lost: content goes to a temporary file beside the
// target, is flushed and fsync'ed, then renamed over it, and the directory is fsync'ed. A
// crash leaves the old file or the new one, never half of either.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <unistd.h>

#include "forgery/core/error.hpp"

namespace forgery::io {

/// Replaces `path` with `content` atomically. Throws io_error naming the file on failure.
inline void write_file_atomically(const std::filesystem::path& path, std::string_view content) {
  const std::filesystem::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw io_error(tmp.string(), std::string("cannot create: ") + std::strerror(errno));
  std::size_t done = 0;
  while (done < content.size()) {
    const ::ssize_t w = ::write(fd, content.data() + done, content.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      throw io_error(tmp.string(), "write failed: " + why);
    }
    done += static_cast<std::size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw io_error(tmp.string(), "flush failed: " + why);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    ::unlink(tmp.c_str());
    throw io_error(path.string(), "cannot replace with " + tmp.string() + ": " + ec.message());
  }
  // The rename itself is durable once the directory is flushed too (best effort: some
  // file systems refuse fsync on a directory, and the file's content is safe already).
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

} // namespace forgery::io
