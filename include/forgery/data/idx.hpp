// Reading IDX files, the format of MNIST and its relatives (Fashion-MNIST, KMNIST), plain or
// gzip-compressed, with every header field checked before anything large is allocated.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <zlib.h>

#include "forgery/core/error.hpp"

namespace forgery::data {

/// The content of an IDX file: its dimensions (outermost first, as in the header) and its
/// payload of unsigned bytes, row-major.
struct IdxArray {
  std::vector<std::size_t> dims;
  std::vector<std::uint8_t> bytes;
  /// The file it was read from (empty for an array built in memory); later checks name it.
  std::filesystem::path path;

  /// Number of elements (the product of dims; 0 without dims).
  [[nodiscard]] std::size_t size() const noexcept { return bytes.size(); }
  /// Sample count: the first dimension.
  [[nodiscard]] std::size_t count() const noexcept { return dims.empty() ? 0 : dims.front(); }
};

/// Limits that protect a reader from a header that promises more than it should.
struct IdxLimits {
  /// Largest payload accepted, in bytes (default 1 GiB: Fashion-MNIST's training images are 47 MB).
  std::uint64_t max_bytes = std::uint64_t{1} << 30;
};

/// An image file and its label file, checked to hold one label per image.
struct IdxImagesLabels {
  IdxArray images; ///< N x H x W
  IdxArray labels; ///< N
};

namespace detail {

/// "60000 x 28 x 28".
inline std::string dims_string(const std::vector<std::size_t>& dims) {
  std::string s;
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? " x " : "") + std::to_string(dims[i]);
  return s;
}

inline std::string hex_bytes(const std::uint8_t* p, std::size_t n) {
  std::string s;
  char buf[4];
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%s%02x", i ? " " : "", static_cast<unsigned>(p[i]));
    s += buf;
  }
  return s;
}

inline const char* idx_type_name(std::uint8_t type) {
  switch (type) {
  case 0x08:
    return "unsigned byte";
  case 0x09:
    return "signed byte";
  case 0x0B:
    return "16-bit integer";
  case 0x0C:
    return "32-bit integer";
  case 0x0D:
    return "float";
  case 0x0E:
    return "double";
  default:
    return "not an IDX type";
  }
}

/// A gzFile that closes itself. zlib reads uncompressed files transparently, so one reader
/// serves both .gz and plain IDX files.
class GzReader {
public:
  explicit GzReader(const std::filesystem::path& path) : name_(path.string()) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) throw io_error(name_, "cannot open: no such file");
    if (std::filesystem::is_directory(status)) throw io_error(name_, "cannot open: is a directory, not an IDX file");
    errno = 0;
    file_ = ::gzopen(path.c_str(), "rb");
    if (file_ == nullptr)
      throw io_error(name_, std::string("cannot open: ") + (errno ? std::strerror(errno) : "zlib could not allocate"));
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;
  ~GzReader() {
    if (file_ != nullptr) ::gzclose_r(file_);
  }

  /// Reads up to n bytes and returns how many it got (fewer only at the end of the data).
  std::size_t read(std::uint8_t* dst, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      // gzread takes an unsigned count and returns an int: read in pieces below 2^30.
      const auto piece = static_cast<unsigned>(std::min<std::size_t>(n - done, std::size_t{1} << 30));
      const int got = ::gzread(file_, dst + done, piece);
      if (got < 0) throw io_error(name_, "read failed: " + error_text());
      if (got == 0) break;
      done += static_cast<std::size_t>(got);
    }
    return done;
  }
  /// True when the file is not gzip-compressed (valid after the first read).
  [[nodiscard]] bool plain() const { return ::gzdirect(file_) == 1; }
  /// True when the data ended inside a gzip stream (a cut-off .gz file).
  [[nodiscard]] bool stream_cut_short() const {
    int code = Z_OK;
    ::gzerror(file_, &code);
    return code == Z_BUF_ERROR;
  }

private:
  std::string error_text() const {
    int code = Z_OK;
    const char* msg = ::gzerror(file_, &code);
    if (code == Z_ERRNO) return std::strerror(errno);
    return msg != nullptr && *msg ? msg : "zlib error " + std::to_string(code);
  }

  std::string name_;
  gzFile file_ = nullptr;
};

} // namespace detail

/// Reads an IDX file (plain or .gz). Only element type 0x08 (unsigned byte), the type of
/// the MNIST family, is supported. Throws io_error naming the file and what was expected
/// and found: missing file, foreign magic, unsupported type, dimension count outside 1..4,
/// a zero dimension, a payload above `limits.max_bytes` (checked before allocating),
/// a truncated header or payload, trailing bytes, a corrupt gzip stream.
inline IdxArray read_idx(const std::filesystem::path& path, const IdxLimits& limits = {}) {
  const std::string name = path.string();
  detail::GzReader in(path);

  std::uint8_t magic[4] = {};
  const std::size_t got_magic = in.read(magic, 4);
  if (got_magic < 4)
    throw io_error(name, "truncated header: expected 4 magic bytes (00 00 08 0n), file has " +
                             std::to_string(got_magic) +
                             (got_magic ? " (" + detail::hex_bytes(magic, got_magic) + ")" : ""));
  if (magic[0] != 0 || magic[1] != 0)
    throw io_error(name, "not an IDX file: expected magic bytes 00 00 08 0n, found " + detail::hex_bytes(magic, 4));
  if (magic[2] != 0x08) {
    char type[8];
    std::snprintf(type, sizeof type, "0x%02x", static_cast<unsigned>(magic[2]));
    throw io_error(name, std::string("unsupported IDX element type ") + type + " (" + detail::idx_type_name(magic[2]) +
                             "): only 0x08 (unsigned byte) is supported");
  }
  const std::size_t ndims = magic[3];
  if (ndims < 1 || ndims > 4)
    throw io_error(name, "unsupported IDX dimension count " + std::to_string(ndims) + ": expected 1 to 4");

  std::uint8_t size_bytes[16] = {};
  const std::size_t got_sizes = in.read(size_bytes, 4 * ndims);
  if (got_sizes < 4 * ndims)
    throw io_error(name, "truncated header: " + std::to_string(ndims) + " dimensions need " +
                             std::to_string(4 * ndims) + " size bytes after the magic, file has " +
                             std::to_string(got_sizes));

  IdxArray out;
  out.path = path;
  out.dims.resize(ndims);
  std::uint64_t total = 1;
  bool over_limit = false;
  for (std::size_t d = 0; d < ndims; ++d) {
    const std::uint8_t* b = size_bytes + 4 * d;
    const std::uint32_t n =
        (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
    if (n == 0) throw io_error(name, "dimension " + std::to_string(d) + " is 0: every IDX dimension must be positive");
    out.dims[d] = n;
    // Dividing first keeps the product from overflowing: once above the limit, stay there.
    if (over_limit || total > limits.max_bytes / n)
      over_limit = true;
    else
      total *= n;
  }
  if (over_limit) {
    long double approx = 1;
    for (std::size_t n : out.dims) approx *= static_cast<long double>(n);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4Lg", approx);
    throw io_error(name, "header promises " + detail::dims_string(out.dims) + " = " + buf +
                             " bytes, above the limit of " + std::to_string(limits.max_bytes) +
                             " bytes (IdxLimits::max_bytes)");
  }
  const std::string promise =
      "header promises " + std::to_string(total) + " payload bytes (" + detail::dims_string(out.dims) + ")";
  const std::uint64_t header_size = 4 + 4 * ndims;

  if (in.plain()) {
    // An uncompressed file's size is known: compare before allocating.
    std::error_code ec;
    const std::uint64_t file_size = std::filesystem::file_size(path, ec);
    if (!ec && file_size < header_size + total)
      throw io_error(name, "truncated: " + promise + ", file ends after " + std::to_string(file_size - header_size));
    if (!ec && file_size > header_size + total)
      throw io_error(name, "trailing bytes: " + promise + ", file has " +
                               std::to_string(file_size - header_size - total) + " more");
    out.bytes.resize(static_cast<std::size_t>(total));
    const std::size_t got = in.read(out.bytes.data(), out.bytes.size());
    if (got < total) throw io_error(name, "truncated: " + promise + ", file ends after " + std::to_string(got));
  } else {
    // A compressed file's size says little: grow with the data actually decompressed, so a
    // small corrupt .gz cannot make us allocate what its header claims.
    std::size_t done = 0;
    while (done < total) {
      const std::size_t target =
          static_cast<std::size_t>(std::min<std::uint64_t>(total, done + std::max<std::size_t>(done, 1 << 20)));
      out.bytes.resize(target);
      const std::size_t got = in.read(out.bytes.data() + done, target - done);
      done += got;
      if (done < target)
        throw io_error(name, "truncated: " + promise + ", the decompressed data end after " + std::to_string(done) +
                                 (in.stream_cut_short() ? " (the gzip stream is cut short)" : ""));
    }
  }

  // Anything after the payload means the header and the data disagree.
  std::uint8_t probe[4096];
  std::uint64_t extra = 0;
  for (std::size_t got = 0; (got = in.read(probe, sizeof probe)) > 0 && extra < (1u << 20);) extra += got;
  if (extra > 0)
    throw io_error(name, "trailing bytes: " + promise + ", file has " + (extra >= (1u << 20) ? "at least " : "") +
                             std::to_string(extra) + " more");
  if (in.stream_cut_short())
    throw io_error(name, "truncated: the gzip stream is cut short after the payload (its trailer is missing)");
  return out;
}

/// Reads an IDX image file: 3 dimensions, N x H x W. Throws io_error otherwise.
inline IdxArray load_idx_images(const std::filesystem::path& path, const IdxLimits& limits = {}) {
  IdxArray a = read_idx(path, limits);
  if (a.dims.size() != 3)
    throw io_error(path.string(), "expected an image file with 3 dimensions (N x H x W), found " +
                                      std::to_string(a.dims.size()) + " (" + detail::dims_string(a.dims) + ")");
  return a;
}

/// Reads an IDX label file: 1 dimension, N. Throws io_error otherwise.
inline IdxArray load_idx_labels(const std::filesystem::path& path, const IdxLimits& limits = {}) {
  IdxArray a = read_idx(path, limits);
  if (a.dims.size() != 1)
    throw io_error(path.string(), "expected a label file with 1 dimension (N), found " + std::to_string(a.dims.size()) +
                                      " (" + detail::dims_string(a.dims) + ")");
  return a;
}

/// Reads an image file and its label file; throws io_error naming both files when the
/// label count differs from the image count.
inline IdxImagesLabels load_idx_pair(const std::filesystem::path& images, const std::filesystem::path& labels,
                                     const IdxLimits& limits = {}) {
  IdxImagesLabels out{load_idx_images(images, limits), load_idx_labels(labels, limits)};
  if (out.labels.count() != out.images.count())
    throw io_error(labels.string(), "has " + std::to_string(out.labels.count()) + " labels but " + images.string() +
                                        " has " + std::to_string(out.images.count()) +
                                        " images: expected one label per image");
  return out;
}

} // namespace forgery::data
