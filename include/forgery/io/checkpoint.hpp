// The checkpoint file format: a versioned, checksummed container of named, typed records
// (arrays of f32/f64/i64/u64 values, or text). Independent of networks and trainers, so
// that the parser can be fuzzed on its own; train/checkpoint.hpp maps a Trainer onto it.
//
// Layout (all integers little-endian, whatever the host):
//   header (32 bytes)
//     0  magic         8 bytes  89 'F' 'G' 'C' 'K' 0D 0A 1A (a PNG-style guard against
//                               text-mode transfers and truncation at a Ctrl-Z)
//     8  version       u32      format version (1)
//     12 records       u32      number of records
//     16 payload size  u64      bytes after the header; must equal file size - 32
//     24 payload CRC   u32      CRC-32 (zlib) of the payload
//     28 header CRC    u32      CRC-32 of bytes 0..27
//   payload: `records` records, each
//     name length u16 (1..255), name (printable ASCII, unique), dtype u8, reserved u8 (0),
//     count u64 (elements), then count * size(dtype) bytes of data.
#pragma once

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iterator>
#include <limits>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#include "forgery/core/error.hpp"
#include "forgery/io/atomic_file.hpp"

namespace forgery::io {

/// Element type of a checkpoint record.
enum class RecordType : std::uint8_t { text = 0, f32 = 1, f64 = 2, i64 = 3, u64 = 4 };

inline const char* record_type_name(RecordType t) noexcept {
  switch (t) {
  case RecordType::text:
    return "text";
  case RecordType::f32:
    return "f32";
  case RecordType::f64:
    return "f64";
  case RecordType::i64:
    return "i64";
  case RecordType::u64:
    return "u64";
  }
  return "unknown";
}

inline constexpr std::size_t record_type_size(RecordType t) noexcept {
  switch (t) {
  case RecordType::text:
    return 1;
  case RecordType::f32:
    return 4;
  case RecordType::f64:
  case RecordType::i64:
  case RecordType::u64:
    return 8;
  }
  return 0;
}

template <class T>
constexpr RecordType record_type_of() {
  if constexpr (std::is_same_v<T, float>)
    return RecordType::f32;
  else if constexpr (std::is_same_v<T, double>)
    return RecordType::f64;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return RecordType::i64;
  else if constexpr (std::is_same_v<T, std::uint64_t>)
    return RecordType::u64;
  else
    static_assert(sizeof(T) == 0, "fg::io checkpoint records hold float, double, std::int64_t or std::uint64_t.");
}

/// Limits a checkpoint reader enforces before reading or allocating anything.
struct CheckpointLimits {
  std::uint64_t max_bytes = std::uint64_t{1} << 36; ///< largest file accepted (64 GiB)
  std::uint32_t max_records = 1u << 16;             ///< most records accepted
  /// Where max_bytes comes from, for the message that refuses a larger file.
  const char* max_bytes_source = "CheckpointLimits::max_bytes";
};

inline constexpr std::uint32_t checkpoint_version = 1;
inline constexpr std::size_t checkpoint_header_size = 32;
inline constexpr unsigned char checkpoint_magic[8] = {0x89, 'F', 'G', 'C', 'K', 0x0D, 0x0A, 0x1A};

namespace detail {

inline std::uint32_t crc32_of(const char* data, std::size_t n) noexcept {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  while (n > 0) {
    const auto piece = static_cast<uInt>(std::min<std::size_t>(n, std::size_t{1} << 30));
    crc = ::crc32(crc, reinterpret_cast<const Bytef*>(data), piece);
    data += piece;
    n -= piece;
  }
  return static_cast<std::uint32_t>(crc);
}

template <class U>
void put_le(std::string& out, U v) {
  static_assert(std::is_unsigned_v<U>);
  for (std::size_t i = 0; i < sizeof(U); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}

template <class U>
U get_le(const char* p) noexcept {
  static_assert(std::is_unsigned_v<U>);
  U v = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i) v |= static_cast<U>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

template <class U>
void store_le(char* p, U v) noexcept {
  for (std::size_t i = 0; i < sizeof(U); ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFFu);
}

// The unsigned integer of the same width as T (for byte-order conversion of values).
template <class T>
using bits_of = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;

inline bool valid_record_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 255) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return c > ' ' && c < 127; });
}

inline std::string printable(std::string_view s, std::size_t max = 64) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= ' ' && c < 127) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

// Reads up to n bytes at `offset`; returns how many were read before the end of the file.
inline std::size_t read_at(int fd, char* dst, std::size_t n, std::uint64_t offset, const std::string& name) {
  std::size_t done = 0;
  while (done < n) {
    const std::size_t piece = std::min<std::size_t>(n - done, std::size_t{1} << 30);
    const ::ssize_t got = ::pread(fd, dst + done, piece, static_cast<::off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw io_error(name, std::string("read failed: ") + std::strerror(errno));
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

// What a file of mode `mode` (st_mode) is, for messages.
inline const char* mode_kind(::mode_t mode) noexcept {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "a special file";
}

// What the directory entry `p` is, for messages: "a directory", "a symbolic link to a
// character device (/dev/zero)", "a dangling symbolic link (to x)". Opens nothing.
inline std::string entry_kind(const std::filesystem::path& p) {
  struct ::stat own {};
  if (::lstat(p.c_str(), &own) != 0) return std::string("not accessible (") + std::strerror(errno) + ")";
  if (!S_ISLNK(own.st_mode)) return mode_kind(own.st_mode);
  std::error_code ec;
  const std::string target = std::filesystem::read_symlink(p, ec).string();
  const std::string to = ec ? std::string() : " (" + printable(target, 200) + ")";
  struct ::stat st {};
  if (::stat(p.c_str(), &st) != 0)
    return (errno == ENOENT ? "a dangling symbolic link" : "a symbolic link that cannot be followed") + to;
  return std::string("a symbolic link to ") + mode_kind(st.st_mode) + to;
}

} // namespace detail

/// Builds a checkpoint in memory, record by record; bytes() gives the finished file and
/// save() writes it atomically (temporary file, fsync, rename).
class CheckpointWriter {
public:
  /// Adds an array record of n values. Throws config_error for an invalid or repeated name.
  template <class T>
  void add(std::string_view name, const T* values, std::size_t n) {
    constexpr RecordType type = record_type_of<T>();
    begin_record(name, type, n);
    const std::size_t at = payload_.size();
    payload_.resize(at + n * sizeof(T));
    char* dst = payload_.data() + at;
    if constexpr (std::endian::native == std::endian::little) {
      if (n > 0) std::memcpy(dst, values, n * sizeof(T));
    } else {
      for (std::size_t i = 0; i < n; ++i)
        detail::store_le(dst + i * sizeof(T), std::bit_cast<detail::bits_of<T>>(values[i]));
    }
  }
  template <class T>
  void add(std::string_view name, std::span<const T> values) {
    add(name, values.data(), values.size());
  }
  /// Adds one integer.
  void add_i64(std::string_view name, std::int64_t v) { add(name, &v, 1); }
  /// Adds a text record (UTF-8 or ASCII).
  void add_text(std::string_view name, std::string_view text) {
    begin_record(name, RecordType::text, text.size());
    payload_.append(text);
  }

  /// The finished file: header, then the payload.
  [[nodiscard]] std::string bytes() const {
    std::string out;
    out.reserve(checkpoint_header_size + payload_.size());
    out.append(reinterpret_cast<const char*>(checkpoint_magic), sizeof checkpoint_magic);
    detail::put_le<std::uint32_t>(out, checkpoint_version);
    detail::put_le<std::uint32_t>(out, static_cast<std::uint32_t>(names_.size()));
    detail::put_le<std::uint64_t>(out, payload_.size());
    detail::put_le<std::uint32_t>(out, detail::crc32_of(payload_.data(), payload_.size()));
    detail::put_le<std::uint32_t>(out, detail::crc32_of(out.data(), out.size()));
    out += payload_;
    return out;
  }

  /// Writes the file atomically: a crash leaves the previous file or this one, never a mix.
  void save(const std::filesystem::path& path) const { write_file_atomically(path, bytes()); }

  [[nodiscard]] std::size_t record_count() const noexcept { return names_.size(); }

private:
  void begin_record(std::string_view name, RecordType type, std::size_t count) {
    if (!detail::valid_record_name(name))
      throw config_error("checkpoint record name", "'" + detail::printable(name) + "'",
                         "1 to 255 printable ASCII characters without spaces");
    if (std::find(names_.begin(), names_.end(), name) != names_.end())
      throw config_error("checkpoint record name", "'" + std::string(name) + "'", "a name not already in the file");
    names_.emplace_back(name);
    detail::put_le<std::uint16_t>(payload_, static_cast<std::uint16_t>(name.size()));
    payload_.append(name);
    payload_.push_back(static_cast<char>(type));
    payload_.push_back('\0');
    detail::put_le<std::uint64_t>(payload_, count);
  }

  std::string payload_;
  std::vector<std::string> names_;
};

/// One record of a parsed checkpoint: its name, type, element count and where its bytes
/// are in the file.
struct RecordInfo {
  std::string name;
  RecordType type = RecordType::text;
  std::uint64_t count = 0;
  std::size_t offset = 0; ///< of the first data byte, from the start of the file
};

/// A checkpoint read into memory and fully validated (header, checksums, every record's
/// bounds): after construction, every accessor is bounds-safe. Accessors throw io_error
/// naming the file and the record when a record is missing or of another type or size.
class CheckpointFile {
public:
  /// Parses `bytes` (a whole file); `name` is used in error messages.
  CheckpointFile(std::string bytes, std::string name, const CheckpointLimits& limits = {})
      : bytes_(std::move(bytes)), name_(std::move(name)) {
    parse(limits);
  }

  /// Reads and parses `path`. Only a regular file (or a symbolic link to one) is read: a
  /// directory, FIFO, device or socket is an io_error naming what it is, and is never opened
  /// in a way that could block. Before the payload is read or allocated, the file size is
  /// checked against `limits.max_bytes` and against what the header promises, so a huge
  /// file costs neither memory nor time; an allocation that still fails is an io_error
  /// naming the file.
  static CheckpointFile read(const std::filesystem::path& path, const CheckpointLimits& limits = {}) {
    const std::string name = path.string();
    // The type is checked before opening (a FIFO is never opened), then again on the open
    // descriptor, in case the entry was replaced in between.
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::is_regular_file(status))
      throw io_error(name, "not a checkpoint file: it is " + detail::entry_kind(path) +
                               " (only regular files are checkpoints)");
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) throw io_error(name, std::string("cannot open the checkpoint: ") + std::strerror(errno));
    const detail::FdCloser closer{fd};
    struct ::stat st {};
    if (::fstat(fd, &st) != 0) throw io_error(name, std::string("cannot stat the checkpoint: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
      throw io_error(name, "not a checkpoint file: it is " + std::string(detail::mode_kind(st.st_mode)) +
                               " (only regular files are checkpoints)");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size > limits.max_bytes)
      throw io_error(name, "the checkpoint is " + std::to_string(size) + " bytes, above the limit of " +
                               std::to_string(limits.max_bytes) + " (" + limits.max_bytes_source + ")");
    char header[checkpoint_header_size];
    const std::size_t head = static_cast<std::size_t>(std::min<std::uint64_t>(size, checkpoint_header_size));
    if (detail::read_at(fd, header, head, 0, name) != head)
      throw io_error(name, "the file changed size while it was read");
    // The header is checked against the file's size before the payload is allocated: a file
    // of zeros, of another format, or whose header promises another size, costs 32 bytes.
    if (size >= checkpoint_header_size) check_header(header, size, limits, name);
    std::string bytes;
    try {
      bytes.resize(static_cast<std::size_t>(size));
    } catch (const std::bad_alloc&) {
      throw io_error(name, "cannot allocate " + std::to_string(size) + " bytes to read the checkpoint: out of memory");
    }
    if (head > 0) std::memcpy(bytes.data(), header, head);
    if (detail::read_at(fd, bytes.data() + head, bytes.size() - head, head, name) != bytes.size() - head)
      throw io_error(name, "the file changed size while it was read");
    char more = 0;
    if (detail::read_at(fd, &more, 1, size, name) != 0) throw io_error(name, "the file changed size while it was read");
    try {
      return CheckpointFile(std::move(bytes), name, limits);
    } catch (const std::bad_alloc&) {
      throw io_error(name, "out of memory while parsing the checkpoint (" + std::to_string(size) + " bytes)");
    }
  }

  /// Throws io_error naming the file and the record if the f32 or f64 record holds a NaN or
  /// an infinity (the first one and its index): a diverged state is refused on load, as it
  /// is on save.
  void require_finite(std::string_view record) const {
    const RecordInfo* r = find(record);
    if (r == nullptr) throw io_error(name_, "checkpoint record '" + std::string(record) + "' is missing");
    if (r->type == RecordType::f32)
      check_finite_values<float>(*r);
    else if (r->type == RecordType::f64)
      check_finite_values<double>(*r);
  }

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] std::uint32_t version() const noexcept { return version_; }
  [[nodiscard]] const std::vector<RecordInfo>& records() const noexcept { return records_; }

  [[nodiscard]] const RecordInfo* find(std::string_view record) const noexcept {
    for (const auto& r : records_)
      if (r.name == record) return &r;
    return nullptr;
  }
  [[nodiscard]] bool contains(std::string_view record) const noexcept { return find(record) != nullptr; }

  /// The record, which must exist and have type `type`; throws io_error otherwise.
  [[nodiscard]] const RecordInfo& require(std::string_view record, RecordType type) const {
    const RecordInfo* r = find(record);
    if (r == nullptr) throw io_error(name_, "checkpoint record '" + std::string(record) + "' is missing");
    if (r->type != type)
      throw io_error(name_, "checkpoint record '" + std::string(record) + "' holds " + record_type_name(r->type) +
                                " values, expected " + record_type_name(type));
    return *r;
  }

  /// Checks that `record` holds exactly `count` values of type T (io_error otherwise).
  template <class T>
  const RecordInfo& require_array(std::string_view record, std::uint64_t count) const {
    const RecordInfo& r = require(record, record_type_of<T>());
    if (r.count != count)
      throw io_error(name_, "checkpoint record '" + std::string(record) + "' holds " + std::to_string(r.count) +
                                " values, expected " + std::to_string(count));
    return r;
  }

  /// Copies `count` values of `record` into dst (after the same checks as require_array).
  template <class T>
  void read_array(std::string_view record, T* dst, std::uint64_t count) const {
    const RecordInfo& r = require_array<T>(record, count);
    const char* src = bytes_.data() + r.offset;
    if constexpr (std::endian::native == std::endian::little) {
      if (count > 0) std::memcpy(dst, src, static_cast<std::size_t>(count) * sizeof(T));
    } else {
      for (std::size_t i = 0; i < count; ++i)
        dst[i] = std::bit_cast<T>(detail::get_le<detail::bits_of<T>>(src + i * sizeof(T)));
    }
  }
  /// All values of `record` as a vector.
  template <class T>
  [[nodiscard]] std::vector<T> array(std::string_view record) const {
    const RecordInfo& r = require(record, record_type_of<T>());
    std::vector<T> out(static_cast<std::size_t>(r.count));
    read_array(record, out.data(), r.count);
    return out;
  }
  /// One integer.
  [[nodiscard]] std::int64_t i64(std::string_view record) const {
    std::int64_t v = 0;
    read_array(record, &v, 1);
    return v;
  }
  /// A text record.
  [[nodiscard]] std::string_view text(std::string_view record) const {
    const RecordInfo& r = require(record, RecordType::text);
    return std::string_view(bytes_).substr(r.offset, static_cast<std::size_t>(r.count));
  }

private:
  [[noreturn]] void fail(const std::string& what) const { throw io_error(name_, what); }

  // The header checks that need no payload: magic, header CRC, version, record count, and
  // the payload size it promises against the file's `size`.
  static void check_header(const char* h, std::uint64_t size, const CheckpointLimits& limits, const std::string& name) {
    auto fail = [&](const std::string& what) { throw io_error(name, what); };
    if (std::memcmp(h, checkpoint_magic, sizeof checkpoint_magic) != 0)
      fail("not a forgery checkpoint: the first 8 bytes are '" + detail::printable(std::string_view(h, 8)) +
           "', expected \\x89FGCK\\r\\n\\x1a");
    const std::uint32_t header_crc = detail::get_le<std::uint32_t>(h + 28);
    if (detail::crc32_of(h, 28) != header_crc)
      fail("corrupt checkpoint header: its CRC-32 does not match (the file was damaged)");
    const std::uint32_t version = detail::get_le<std::uint32_t>(h + 8);
    if (version == 0 || version > checkpoint_version)
      fail("checkpoint format version " + std::to_string(version) + ", this forgery reads versions 1 to " +
           std::to_string(checkpoint_version) + " (written by a newer forgery?)");
    const std::uint32_t count = detail::get_le<std::uint32_t>(h + 12);
    if (count > limits.max_records)
      fail("the header claims " + std::to_string(count) + " records, above the limit of " +
           std::to_string(limits.max_records) + " (CheckpointLimits::max_records)");
    const std::uint64_t payload = detail::get_le<std::uint64_t>(h + 16);
    const std::uint64_t have = size - checkpoint_header_size;
    if (payload > have)
      fail("truncated checkpoint: the header promises " + std::to_string(payload) + " payload bytes, the file has " +
           std::to_string(have));
    if (payload < have)
      fail("trailing bytes: the header promises " + std::to_string(payload) + " payload bytes, the file has " +
           std::to_string(have));
  }

  template <class T>
  void check_finite_values(const RecordInfo& r) const {
    const char* p = bytes_.data() + r.offset;
    for (std::uint64_t i = 0; i < r.count; ++i) {
      const T v = std::bit_cast<T>(detail::get_le<detail::bits_of<T>>(p + i * sizeof(T)));
      if (!std::isfinite(v)) {
        char value[32];
        std::snprintf(value, sizeof value, "%g", static_cast<double>(v));
        fail("checkpoint record '" + r.name + "' holds a non-finite value (" + value + " at index " +
             std::to_string(i) + "): a diverged state is not loaded");
      }
    }
  }

  void parse(const CheckpointLimits& limits) {
    const std::size_t size = bytes_.size();
    if (size < checkpoint_header_size)
      fail("truncated checkpoint: " + std::to_string(size) + " bytes, shorter than the " +
           std::to_string(checkpoint_header_size) + "-byte header");
    const char* h = bytes_.data();
    check_header(h, size, limits, name_);
    version_ = detail::get_le<std::uint32_t>(h + 8);
    const std::uint32_t count = detail::get_le<std::uint32_t>(h + 12);
    const std::uint64_t payload = detail::get_le<std::uint64_t>(h + 16);
    if (detail::crc32_of(h + checkpoint_header_size, static_cast<std::size_t>(payload)) !=
        detail::get_le<std::uint32_t>(h + 24))
      fail("corrupt checkpoint: the payload's CRC-32 does not match the header (the file was damaged)");

    records_.reserve(std::min<std::size_t>(count, size / 12));
    std::size_t at = checkpoint_header_size;
    for (std::uint32_t i = 0; i < count; ++i) {
      const std::string where = "record " + std::to_string(i);
      if (size - at < 2 + 1 + 1 + 8) fail("truncated checkpoint: " + where + " is cut off in its header");
      const std::size_t len = detail::get_le<std::uint16_t>(bytes_.data() + at);
      at += 2;
      if (len == 0 || len > 255 || size - at < len + 1 + 1 + 8)
        fail("malformed checkpoint: " + where + " has a name of " + std::to_string(len) +
             " bytes (expected 1 to 255, within the file)");
      RecordInfo r;
      r.name.assign(bytes_.data() + at, len);
      if (!detail::valid_record_name(r.name))
        fail("malformed checkpoint: " + where + "'s name '" + detail::printable(r.name) + "' is not printable ASCII");
      at += len;
      const auto type = static_cast<std::uint8_t>(bytes_[at]);
      if (type > static_cast<std::uint8_t>(RecordType::u64))
        fail("malformed checkpoint: record '" + r.name + "' has element type " + std::to_string(type) +
             ", expected 0 (text) to 4 (u64)");
      r.type = static_cast<RecordType>(type);
      if (bytes_[at + 1] != '\0') fail("malformed checkpoint: record '" + r.name + "' has a non-zero reserved byte");
      at += 2;
      r.count = detail::get_le<std::uint64_t>(bytes_.data() + at);
      at += 8;
      const std::size_t elem = record_type_size(r.type);
      const std::uint64_t room = size - at;
      if (r.count > room / elem)
        fail("malformed checkpoint: record '" + r.name + "' claims " + std::to_string(r.count) + " " +
             record_type_name(r.type) + " values, only " + std::to_string(room) + " bytes remain");
      r.offset = at;
      at += static_cast<std::size_t>(r.count * elem);
      records_.push_back(std::move(r));
    }
    if (at != size)
      fail("malformed checkpoint: " + std::to_string(size - at) + " bytes follow the last of the " +
           std::to_string(count) + " records");
    std::vector<std::string_view> names;
    names.reserve(records_.size());
    for (const auto& r : records_) names.emplace_back(r.name);
    std::sort(names.begin(), names.end());
    const auto twice = std::adjacent_find(names.begin(), names.end());
    if (twice != names.end()) fail("malformed checkpoint: record '" + std::string(*twice) + "' appears twice");
  }

  std::string bytes_;
  std::string name_;
  std::uint32_t version_ = 0;
  std::vector<RecordInfo> records_;
};

/// `key=value` lines (a checkpoint's config record) as pairs, in order. Throws io_error
/// naming `file` and the record for a line without '='.
inline std::vector<std::pair<std::string, std::string>> parse_fields(std::string_view text, const std::string& file,
                                                                     std::string_view record) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t line = 0;
  while (!text.empty()) {
    ++line;
    const std::size_t end = text.find('\n');
    const std::string_view l = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (l.empty()) continue;
    const std::size_t eq = l.find('=');
    if (eq == std::string_view::npos || eq == 0)
      throw io_error(file, "checkpoint record '" + std::string(record) + "' line " + std::to_string(line) + " '" +
                               detail::printable(l) + "' is not key=value");
    out.emplace_back(std::string(l.substr(0, eq)), std::string(l.substr(eq + 1)));
  }
  return out;
}

/// An entry of a checkpoint directory named as a checkpoint (step-<digits>.fgck) and the
/// step its name gives.
struct CheckpointEntry {
  long long step = 0;
  std::filesystem::path path;
  /// Empty for a regular file (or a symbolic link to one), the only kind that is a
  /// checkpoint; otherwise what the entry is ("a FIFO (named pipe)", "a directory", "a
  /// dangling symbolic link (to x)", ...), for the message that refuses it.
  std::string not_a_file;
  [[nodiscard]] bool is_file() const noexcept { return not_a_file.empty(); }
};

/// The file name a checkpoint of `step` gets in `dir`: step-000000001200.fgck (zero-padded,
/// so that names sort as steps do).
inline std::filesystem::path checkpoint_path(const std::filesystem::path& dir, long long step) {
  char name[48];
  std::snprintf(name, sizeof name, "step-%012lld.fgck", step);
  return dir / name;
}

namespace detail {
// The step of a checkpoint file name (step-<digits>.fgck), or -1.
inline long long checkpoint_step(const std::string& name) {
  constexpr std::string_view prefix = "step-", suffix = ".fgck";
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) || !name.ends_with(suffix)) return -1;
  const std::string_view digits =
      std::string_view(name).substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() > 18) return -1;
  long long step = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return -1;
    step = step * 10 + (c - '0');
  }
  return step;
}

// Calls f(path) for each entry of `dir` (none if `dir` does not exist). What an entry is
// never stops the walk: only a directory that cannot be listed is an error.
template <class F>
void for_each_entry(const std::filesystem::path& dir, F&& f) {
  std::error_code ec;
  const auto st = std::filesystem::status(dir, ec);
  if (st.type() == std::filesystem::file_type::not_found) return;
  if (ec) throw io_error(dir.string(), "cannot list the checkpoint directory: " + ec.message());
  if (!std::filesystem::is_directory(st))
    throw io_error(dir.string(),
                   "cannot list the checkpoint directory: it is " + entry_kind(dir) + ", not a directory");
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) throw io_error(dir.string(), "cannot list the checkpoint directory: " + ec.message());
  for (const std::filesystem::directory_iterator end{}; it != end;) {
    f(it->path());
    it.increment(ec);
    if (ec) throw io_error(dir.string(), "cannot list the checkpoint directory: " + ec.message());
  }
}
} // namespace detail

/// Every entry of `dir` named as a checkpoint, whatever it is (see CheckpointEntry), oldest
/// step first (ties by name). An absent directory has none; other names, and temporaries of
/// unfinished saves, are not listed. Throws io_error only if `dir` cannot be listed.
inline std::vector<CheckpointEntry> list_checkpoint_entries(const std::filesystem::path& dir) {
  std::vector<CheckpointEntry> out;
  detail::for_each_entry(dir, [&](const std::filesystem::path& p) {
    const long long step = detail::checkpoint_step(p.filename().string());
    if (step < 0) return;
    std::error_code ec;
    // Follows a symbolic link: a link to a regular file is as good as the file.
    const bool file = std::filesystem::is_regular_file(std::filesystem::status(p, ec));
    out.push_back({step, p, file ? std::string() : detail::entry_kind(p)});
  });
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.step != b.step ? a.step < b.step : a.path < b.path; });
  return out;
}

/// The checkpoints in `dir`: the regular files among list_checkpoint_entries(dir), oldest
/// step first.
inline std::vector<CheckpointEntry> list_checkpoints(const std::filesystem::path& dir) {
  auto all = list_checkpoint_entries(dir);
  std::erase_if(all, [](const CheckpointEntry& e) { return !e.is_file(); });
  return all;
}

/// Deletes all but the newest `keep` checkpoints in `dir` (keep >= 1) among those of steps up
/// to `up_to_step`. Files of later steps are neither counted nor deleted: a run that saved
/// step N and resumed from it did not write them (a file it passed over as unusable, or a
/// stray one), and counting them would delete the run's good checkpoints to keep them.
/// Entries under a checkpoint name that are not regular files are not checkpoints: they
/// are left alone.
inline void prune_checkpoints(const std::filesystem::path& dir, std::size_t keep,
                              long long up_to_step = std::numeric_limits<long long>::max()) {
  auto all = list_checkpoints(dir);
  std::erase_if(all, [&](const CheckpointEntry& e) { return e.step > up_to_step; });
  if (keep == 0 || all.size() <= keep) return;
  for (std::size_t i = 0; i + keep < all.size(); ++i) {
    std::error_code ec;
    std::filesystem::remove(all[i].path, ec);
    if (ec) throw io_error(all[i].path.string(), "cannot delete an old checkpoint: " + ec.message());
  }
}

/// Deletes the temporaries that saves killed part-way left in `dir`
/// (step-*.fgck.tmp.<pid>, regular files, of processes that no longer run). Returns how
/// many it removed.
inline std::size_t remove_stale_temporaries(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> stale;
  detail::for_each_entry(dir, [&](const std::filesystem::path& p) {
    const std::string name = p.filename().string();
    const std::size_t at = name.rfind(".tmp.");
    if (at == std::string::npos || detail::checkpoint_step(name.substr(0, at)) < 0) return;
    const std::string pid_text = name.substr(at + 5);
    if (pid_text.empty() || pid_text.size() > 9 ||
        !std::all_of(pid_text.begin(), pid_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return;
    // Only what a save writes: a directory or a FIFO under such a name is not ours.
    std::error_code ec;
    if (!std::filesystem::is_regular_file(std::filesystem::symlink_status(p, ec))) return;
    const auto pid = static_cast<::pid_t>(std::stol(pid_text));
    if (pid > 0 && pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(p);
  });
  std::size_t removed = 0;
  for (const auto& p : stale) {
    std::error_code ec;
    if (std::filesystem::remove(p, ec)) ++removed;
  }
  return removed;
}

/// What load_newest_checkpoint found.
struct NewestCheckpoint {
  CheckpointEntry loaded;           ///< the entry that loaded (empty path: none did)
  std::vector<std::string> skipped; ///< why each newer entry was refused, each naming it
  std::exception_ptr newest_error;  ///< the newest entry's error when none loaded
  [[nodiscard]] explicit operator bool() const noexcept { return !loaded.path.empty(); }
};

/// The one way to choose a checkpoint to continue from (Trainer::resume and the rollback of
/// callbacks::Checkpoints both use it): the entries of `dir` named as checkpoints, newest
/// first, until one loads. An entry that is not a regular file is refused without being
/// opened; a file is read within `limits` and handed to load(const CheckpointFile&), which
/// refuses it by throwing forgery::error. Each refusal is written to `log` (unless null),
/// naming the entry and why, and kept in `skipped`; an older file is tried next. So an
/// entry that shadows the run (a damaged file, a FIFO, a directory, a link to a device)
/// costs the steps since the previous good checkpoint, never the whole run; and with no
/// good file, the caller gets the newest entry's error instead of a fresh start. Throws
/// only if `dir` cannot be listed.
template <class Load>
NewestCheckpoint load_newest_checkpoint(const std::filesystem::path& dir, Load&& load,
                                        const CheckpointLimits& limits = {}, std::FILE* log = nullptr) {
  NewestCheckpoint result;
  const auto all = list_checkpoint_entries(dir);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      if (!it->is_file())
        throw io_error(it->path.string(),
                       "not a checkpoint file: it is " + it->not_a_file + " (only regular files are checkpoints)");
      try {
        load(CheckpointFile::read(it->path, limits));
      } catch (const std::bad_alloc&) {
        throw io_error(it->path.string(), "out of memory while loading the checkpoint");
      }
      result.loaded = *it;
      result.newest_error = nullptr;
      return result;
    } catch (const error& e) {
      if (!result.newest_error) result.newest_error = std::current_exception();
      result.skipped.emplace_back(e.what());
      if (log != nullptr)
        std::fprintf(log, "%s; %s\n", e.what(),
                     std::next(it) != all.rend() ? "trying the next older checkpoint" : "no older checkpoint");
    }
  }
  return result;
}

} // namespace forgery::io
