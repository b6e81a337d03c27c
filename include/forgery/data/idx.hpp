// Reading IDX files, the format of MNIST and its relatives (Fashion-MNIST, KMNIST), plain or
// gzip-compressed, with every header field checked before anything large is allocated and
// every gzip member's checksum and length checked before a read succeeds.
//
// A file that starts with the gzip magic 1f 8b is gzip (an IDX file starts with 00 00),
// whatever its name. gzip (RFC 1952) is a sequence of members, each a header, deflate data
// and an 8-byte trailer: the CRC-32 and the length (mod 2^32) of what it decompresses to.
// Concatenated members are legal gzip (`cat a.gz b.gz`, bgzip) and gunzip reads them as one
// stream, so they are accepted: the IDX bytes are the members' data in order, and each
// member's trailer is checked. After the last member the file must end: anything else
// (garbage, zero padding, a cut member) is an error, as are a cut trailer, a CRC-32 that does
// not match and a length that does not match.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>
#include <stdexcept>
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
  /// Largest payload accepted, in decoded bytes (one per element), checked before anything
  /// is allocated. The default, 256 MiB, holds every MNIST-family file but EMNIST ByClass
  /// and ByMerge (547 MB of training images); Fashion-MNIST's training images are 47 MB. An
  /// ImageDataset<S> takes sizeof(S) bytes per payload byte: 1 GiB of floats at the default.
  std::uint64_t max_bytes = std::uint64_t{256} << 20;
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

/// The decoded bytes of a file, read in pieces: a plain file as it is, a gzip file through
/// zlib's inflate, member after member, each trailer (CRC-32 and length) checked by zlib
/// before the member's end is reported. gzread is not used because it accepts a cut
/// trailer and ignores what follows the last member.
class DecodedFile {
public:
  explicit DecodedFile(const std::filesystem::path& path) : name_(path.string()) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) throw io_error(name_, "cannot open: no such file");
    if (std::filesystem::is_directory(status)) throw io_error(name_, "cannot open: is a directory, not an IDX file");
    errno = 0;
    file_.reset(std::fopen(path.c_str(), "rb"));
    if (file_ == nullptr)
      throw io_error(name_, std::string("cannot open: ") + (errno ? std::strerror(errno) : "fopen failed"));
    buffer_.resize(std::size_t{1} << 16);
    refill();
    gzip_ = z_.avail_in >= 2 && z_.next_in[0] == 0x1f && z_.next_in[1] == 0x8b;
    if (gzip_) {
      const int ret = ::inflateInit2(&z_, 16 + MAX_WBITS);
      if (ret != Z_OK)
        throw io_error(name_, ret == Z_MEM_ERROR ? "out of memory for zlib's inflate state"
                                                 : "zlib's inflateInit2 failed with code " + std::to_string(ret));
      inflating_ = true;
    }
  }
  DecodedFile(const DecodedFile&) = delete;
  DecodedFile& operator=(const DecodedFile&) = delete;
  ~DecodedFile() {
    if (inflating_) ::inflateEnd(&z_);
  }

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] bool gzip() const noexcept { return gzip_; }

  /// Reads up to n decoded bytes and returns how many it got: fewer only at the end of the
  /// data. For gzip that is either the end of the file right after a member's trailer was
  /// checked, or the end of the file inside a member (then cut() is true). Throws io_error
  /// for a read error, a corrupt member, a trailer that does not match, or bytes after a
  /// member that do not start another one.
  std::size_t read(std::uint8_t* dst, std::size_t n) { return gzip_ ? inflate_into(dst, n) : copy_into(dst, n); }

  /// True when the file ended inside a gzip member (its data or its trailer cut off).
  [[nodiscard]] bool cut() const noexcept { return cut_; }
  /// "member 2 (at byte 1234)", for messages about where the gzip data stopped.
  [[nodiscard]] std::string member_text() const {
    return "member " + std::to_string(members_) + " (at byte " + std::to_string(member_start_) + ")";
  }

private:
  // Moves the unread bytes to the front of the buffer and fills the rest from the file.
  void refill() {
    if (file_end_) return;
    if (z_.avail_in > 0) std::memmove(buffer_.data(), z_.next_in, z_.avail_in);
    const std::size_t kept = z_.avail_in;
    const std::size_t got = std::fread(buffer_.data() + kept, 1, buffer_.size() - kept, file_.get());
    if (got < buffer_.size() - kept) {
      if (std::ferror(file_.get())) throw io_error(name_, std::string("read failed: ") + std::strerror(errno));
      file_end_ = true;
    }
    file_offset_ += got;
    z_.next_in = buffer_.data();
    z_.avail_in = static_cast<uInt>(kept + got);
  }

  [[nodiscard]] std::uint64_t offset() const noexcept { return file_offset_ - z_.avail_in; }

  std::size_t copy_into(std::uint8_t* dst, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      if (z_.avail_in == 0) {
        refill();
        if (z_.avail_in == 0) break;
      }
      const std::size_t piece = std::min<std::size_t>(n - done, z_.avail_in);
      std::memcpy(dst + done, z_.next_in, piece);
      z_.next_in += piece;
      z_.avail_in -= static_cast<uInt>(piece);
      done += piece;
    }
    return done;
  }

  std::size_t inflate_into(std::uint8_t* dst, std::size_t n) {
    std::size_t done = 0;
    while (done < n && !ended_) {
      if (!in_member_ && !start_member()) break;
      if (z_.avail_in == 0) refill();
      z_.next_out = dst + done;
      z_.avail_out = static_cast<uInt>(std::min<std::size_t>(n - done, std::size_t{1} << 30));
      const uInt before = z_.avail_out;
      const int ret = ::inflate(&z_, Z_NO_FLUSH);
      done += before - z_.avail_out;
      if (ret == Z_STREAM_END) {
        in_member_ = false; // zlib has checked the member's CRC-32 and length
      } else if (ret == Z_BUF_ERROR && z_.avail_in == 0 && file_end_) {
        cut_ = true;
        ended_ = true;
      } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
        fail(ret);
      }
    }
    return done;
  }

  // Between members: false at the end of the file, true when another member starts here.
  bool start_member() {
    if (z_.avail_in < 2) refill();
    if (z_.avail_in == 0) {
      ended_ = true;
      return false;
    }
    if (z_.avail_in < 2 || z_.next_in[0] != 0x1f || z_.next_in[1] != 0x8b)
      throw io_error(
          name_, "trailing bytes after gzip member " + std::to_string(members_) + ", from byte " +
                     std::to_string(offset()) + ": expected another member (1f 8b) or the end of the file, found " +
                     hex_bytes(z_.next_in, std::min<std::size_t>(z_.avail_in, 4)) + (z_.avail_in > 4 ? " ..." : ""));
    if (members_ > 0 && ::inflateReset(&z_) != Z_OK) throw io_error(name_, "zlib's inflateReset failed");
    ++members_;
    member_start_ = offset();
    in_member_ = true;
    return true;
  }

  [[noreturn]] void fail(int ret) const {
    const std::string msg = z_.msg != nullptr ? z_.msg : "";
    const std::string member = "gzip " + member_text();
    if (ret == Z_MEM_ERROR) throw io_error(name_, "out of memory in zlib's inflate, reading " + member);
    if (msg == "incorrect data check")
      throw io_error(name_, member + " fails its CRC-32 check: the " + std::to_string(z_.total_out) +
                                " bytes it decompresses to are not those that were compressed (a damaged file)");
    if (msg == "incorrect length check")
      throw io_error(name_, member + " decompresses to " + std::to_string(z_.total_out) +
                                " bytes, but its trailer's length field (ISIZE) says otherwise (a damaged file)");
    throw io_error(name_, "corrupt " + member + ", at byte " + std::to_string(offset()) + ": zlib says " +
                              (msg.empty() ? "error " + std::to_string(ret) : msg));
  }

  struct Closer {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
  };

  std::string name_;
  std::unique_ptr<std::FILE, Closer> file_;
  std::vector<std::uint8_t> buffer_;
  // Also the plain reader's cursor into buffer_ (next_in, avail_in).
  z_stream z_{};
  bool gzip_ = false, inflating_ = false;
  bool file_end_ = false;
  std::uint64_t file_offset_ = 0; // bytes read from the file so far
  bool in_member_ = false, ended_ = false, cut_ = false;
  std::uint64_t members_ = 0, member_start_ = 0;
};

/// The header of an IDX file, checked (magic, type, rank, sizes against the limits and, for
/// a plain file, against its size), and then its payload in pieces.
class IdxReader {
public:
  IdxReader(const std::filesystem::path& path, const IdxLimits& limits) : in_(path), max_bytes_(limits.max_bytes) {
    read_header(path);
  }

  [[nodiscard]] const std::string& name() const noexcept { return in_.name(); }
  [[nodiscard]] const std::vector<std::size_t>& dims() const noexcept { return dims_; }
  [[nodiscard]] std::uint64_t payload_bytes() const noexcept { return total_; }

  /// Reads the next n payload bytes (at most what is left of the payload); throws io_error
  /// "truncated" when the data end first.
  void read_payload(std::uint8_t* dst, std::size_t n) {
    const std::size_t got = in_.read(dst, n);
    done_ += got;
    if (got < n)
      throw io_error(name(), "truncated: " + promise() + ", the " + (in_.gzip() ? "decompressed data" : "file") +
                                 " end after " + std::to_string(done_) + cut_text());
  }

  /// After the whole payload: throws io_error unless the data end there, which for gzip
  /// includes the last member's trailer, checked.
  void finish() {
    std::uint8_t probe[4096];
    std::uint64_t extra = 0;
    for (std::size_t got = 0; extra < (1u << 20) && (got = in_.read(probe, sizeof probe)) > 0;) extra += got;
    if (extra > 0)
      throw io_error(name(), "trailing bytes: " + promise() + ", file has " + (extra >= (1u << 20) ? "at least " : "") +
                                 std::to_string(extra) + " more");
    if (in_.cut())
      throw io_error(name(), "truncated: the gzip stream is cut short inside " + in_.member_text() +
                                 ", after the whole payload: the end of its deflate data or its 8-byte trailer "
                                 "(CRC-32 and length) is missing");
  }

  /// The io_error for a payload of `bytes` bytes (as `what`) that could not be allocated.
  [[nodiscard]] io_error cannot_allocate(std::uint64_t bytes, const std::string& what, const char* why) const {
    return io_error(name(), "cannot allocate " + std::to_string(bytes) + " bytes for " + what + ": " + promise() +
                                " (within IdxLimits::max_bytes = " + std::to_string(max_bytes_) + "): " + why);
  }

  /// "header promises 47040000 payload bytes (60000 x 28 x 28)".
  [[nodiscard]] std::string promise() const {
    return "header promises " + std::to_string(total_) + " payload bytes (" + dims_string(dims_) + ")";
  }

private:
  std::string cut_text() const {
    return in_.cut() ? " (the gzip stream is cut short inside " + in_.member_text() +
                           ", before the end of its deflate data and its 8-byte trailer)"
                     : "";
  }

  void read_header(const std::filesystem::path& path) {
    const std::string& name = in_.name();
    std::uint8_t magic[4] = {};
    const std::size_t got_magic = in_.read(magic, 4);
    if (got_magic < 4)
      throw io_error(name, "truncated header: expected 4 magic bytes (00 00 08 0n), file has " +
                               std::to_string(got_magic) + (got_magic ? " (" + hex_bytes(magic, got_magic) + ")" : "") +
                               cut_text());
    if (magic[0] != 0 || magic[1] != 0)
      throw io_error(name, "not an IDX file: expected magic bytes 00 00 08 0n, found " + hex_bytes(magic, 4));
    if (magic[2] != 0x08) {
      char type[8];
      std::snprintf(type, sizeof type, "0x%02x", static_cast<unsigned>(magic[2]));
      throw io_error(name, std::string("unsupported IDX element type ") + type + " (" + idx_type_name(magic[2]) +
                               "): only 0x08 (unsigned byte) is supported");
    }
    const std::size_t ndims = magic[3];
    if (ndims < 1 || ndims > 4)
      throw io_error(name, "unsupported IDX dimension count " + std::to_string(ndims) + ": expected 1 to 4");

    std::uint8_t size_bytes[16] = {};
    const std::size_t got_sizes = in_.read(size_bytes, 4 * ndims);
    if (got_sizes < 4 * ndims)
      throw io_error(name, "truncated header: " + std::to_string(ndims) + " dimensions need " +
                               std::to_string(4 * ndims) + " size bytes after the magic, file has " +
                               std::to_string(got_sizes) + cut_text());

    dims_.resize(ndims);
    std::uint64_t total = 1;
    bool over_limit = false;
    for (std::size_t d = 0; d < ndims; ++d) {
      const std::uint8_t* b = size_bytes + 4 * d;
      const std::uint32_t n =
          (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
      if (n == 0)
        throw io_error(name, "dimension " + std::to_string(d) + " is 0: every IDX dimension must be positive");
      dims_[d] = n;
      // Dividing first keeps the product from overflowing: once above the limit, stay there.
      if (over_limit || total > max_bytes_ / n)
        over_limit = true;
      else
        total *= n;
    }
    if (over_limit) {
      long double approx = 1;
      for (std::size_t n : dims_) approx *= static_cast<long double>(n);
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4Lg", approx);
      throw io_error(name, "header promises " + dims_string(dims_) + " = " + buf + " bytes, above the limit of " +
                               std::to_string(max_bytes_) +
                               " bytes (IdxLimits::max_bytes; to read larger files pass a larger limit to "
                               "read_idx, load_idx_dataset or load_fashion_mnist)");
    }
    total_ = total;

    if (!in_.gzip()) {
      // An uncompressed file's size is known: compare before allocating.
      const std::uint64_t header_size = 4 + 4 * ndims;
      std::error_code ec;
      const std::uint64_t file_size = std::filesystem::file_size(path, ec);
      if (!ec && file_size < header_size + total_)
        throw io_error(name,
                       "truncated: " + promise() + ", the file ends after " + std::to_string(file_size - header_size));
      if (!ec && file_size > header_size + total_)
        throw io_error(name, "trailing bytes: " + promise() + ", file has " +
                                 std::to_string(file_size - header_size - total_) + " more");
    }
  }

  DecodedFile in_;
  std::uint64_t max_bytes_;
  std::vector<std::size_t> dims_;
  std::uint64_t total_ = 0, done_ = 0;
};

/// Throws io_error unless `dims` are those of an image file, N x H x W.
inline void check_image_file(const std::string& name, const std::vector<std::size_t>& dims) {
  if (dims.size() != 3)
    throw io_error(name, "expected an image file with 3 dimensions (N x H x W), found " + std::to_string(dims.size()) +
                             " (" + dims_string(dims) + ")");
}

/// Throws io_error naming both files unless there is one label per image.
inline void check_one_label_per_image(const std::string& images, std::size_t image_count, const std::string& labels,
                                      std::size_t label_count) {
  if (label_count != image_count)
    throw io_error(labels, "has " + std::to_string(label_count) + " labels but " + images + " has " +
                               std::to_string(image_count) + " images: expected one label per image");
}

} // namespace detail

/// Reads an IDX file (plain or .gz). Only element type 0x08 (unsigned byte), the type of
/// the MNIST family, is supported. Throws io_error naming the file and what was expected
/// and found: missing file, foreign magic, unsupported type, dimension count outside 1..4,
/// a zero dimension, a payload above `limits.max_bytes` (checked before allocating),
/// a truncated header or payload, trailing bytes, a corrupt gzip member, a gzip trailer
/// (CRC-32, length) cut off or not matching, bytes after the last gzip member.
///
/// The payload is allocated once its size has passed the limit, but written only as the
/// data arrive, so a header that promises more than the file holds costs address space,
/// not memory, and fails when the data end.
inline IdxArray read_idx(const std::filesystem::path& path, const IdxLimits& limits = {}) {
  try {
    detail::IdxReader in(path, limits);
    IdxArray out;
    out.path = path;
    out.dims = in.dims();
    const std::uint64_t total = in.payload_bytes();
    try {
      out.bytes.reserve(static_cast<std::size_t>(total));
    } catch (const std::bad_alloc& e) {
      throw in.cannot_allocate(total, "the payload", e.what());
    } catch (const std::length_error& e) {
      throw in.cannot_allocate(total, "the payload", e.what());
    }
    while (out.bytes.size() < total) {
      const std::size_t done = out.bytes.size();
      const auto piece = static_cast<std::size_t>(std::min<std::uint64_t>(total - done, std::uint64_t{1} << 20));
      out.bytes.resize(done + piece);
      in.read_payload(out.bytes.data() + done, piece);
    }
    in.finish();
    return out;
  } catch (const std::bad_alloc&) {
    throw io_error(path.string(), "out of memory while reading the IDX file");
  }
}

/// Reads an IDX image file: 3 dimensions, N x H x W. Throws io_error otherwise.
inline IdxArray load_idx_images(const std::filesystem::path& path, const IdxLimits& limits = {}) {
  IdxArray a = read_idx(path, limits);
  detail::check_image_file(path.string(), a.dims);
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
  detail::check_one_label_per_image(images.string(), out.images.count(), labels.string(), out.labels.count());
  return out;
}

} // namespace forgery::data
