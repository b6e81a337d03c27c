// TensorBoard event files without TensorFlow: scalars and images as Event protocol buffers
// in TFRecord framing. The format needs only a CRC-32C and four protobuf wire types, so both
// are here and logging to TensorBoard adds no dependency.
#pragma once

#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include "forgery/core/error.hpp"
#include "forgery/io/output_dir.hpp"
#include "forgery/io/png.hpp"

namespace forgery::io {

namespace detail {
// CRC-32C's byte table: the reflected Castagnoli polynomial 0x82F63B78.
inline constexpr std::array<std::uint32_t, 256> crc32c_table = [] {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}();
} // namespace detail

/// CRC-32C (Castagnoli, as iSCSI and TFRecord use it) of `data`, continuing from `crc`, the
/// CRC of the bytes before it (0 to start): crc32c("123456789") == 0xE3069283.
inline std::uint32_t crc32c(std::string_view data, std::uint32_t crc = 0) noexcept {
  crc = ~crc;
  for (const char ch : data) crc = detail::crc32c_table[(crc ^ static_cast<unsigned char>(ch)) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

/// The CRC that TFRecord stores: CRC-32C rotated right by 15 bits plus a constant, so that
/// the CRC of data that itself holds CRCs is not degenerate.
inline std::uint32_t masked_crc32c(std::string_view data) noexcept {
  const std::uint32_t c = crc32c(data);
  return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

/// The protocol buffer wire format, as far as event files need it: keys, varints, fixed
/// 32- and 64-bit values (little-endian) and length-delimited bytes. Internal to the writer.
namespace detail::protobuf {

enum class WireType : std::uint32_t { varint = 0, fixed64 = 1, length_delimited = 2, fixed32 = 5 };

/// Base-128, least significant group first, high bit set on every byte but the last.
inline void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

inline void put_key(std::string& out, std::uint32_t field, WireType type) {
  put_varint(out, (std::uint64_t{field} << 3) | static_cast<std::uint32_t>(type));
}

template <class U>
void put_little_endian(std::string& out, U bits) {
  for (std::size_t i = 0; i < sizeof(U); ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}

/// int32 and int64 fields: a negative value is its 64-bit two's complement (ten bytes).
inline void put_int(std::string& out, std::uint32_t field, std::int64_t v) {
  put_key(out, field, WireType::varint);
  put_varint(out, static_cast<std::uint64_t>(v));
}

inline void put_double(std::string& out, std::uint32_t field, double v) {
  put_key(out, field, WireType::fixed64);
  put_little_endian(out, std::bit_cast<std::uint64_t>(v));
}

inline void put_float(std::string& out, std::uint32_t field, float v) {
  put_key(out, field, WireType::fixed32);
  put_little_endian(out, std::bit_cast<std::uint32_t>(v));
}

/// string, bytes and embedded message fields.
inline void put_bytes(std::string& out, std::uint32_t field, std::string_view v) {
  put_key(out, field, WireType::length_delimited);
  put_varint(out, v.size());
  out.append(v);
}

} // namespace detail::protobuf

/// One TFRecord: the payload's length (uint64, little-endian), the masked CRC-32C of those
/// 8 bytes, the payload, and the masked CRC-32C of the payload.
inline std::string tfrecord(std::string_view payload) {
  std::string r;
  r.reserve(payload.size() + 16);
  detail::protobuf::put_little_endian(r, std::uint64_t{payload.size()});
  detail::protobuf::put_little_endian(r, masked_crc32c(r));
  r.append(payload);
  detail::protobuf::put_little_endian(r, masked_crc32c(payload));
  return r;
}

/// A tensorboard.Summary message being built: values, each a tag with a scalar or an image.
class Summary {
public:
  /// A scalar (TensorBoard's Scalars tab); stored as a float, as TensorBoard keeps it.
  Summary& scalar(std::string_view tag, double value) {
    std::string v;
    detail::protobuf::put_bytes(v, value_tag, tag);
    detail::protobuf::put_float(v, value_simple_value, static_cast<float>(value));
    return add(v);
  }

  /// An encoded image (TensorBoard's Images tab), e.g. a sample grid from encode_png_grid.
  Summary& image(std::string_view tag, const EncodedPng& png) {
    std::string img;
    detail::protobuf::put_int(img, image_height, png.height);
    detail::protobuf::put_int(img, image_width, png.width);
    // The colorspace codes of 1 and 3 channels are 1 (grey) and 3 (RGB).
    detail::protobuf::put_int(img, image_colorspace, png.channels);
    detail::protobuf::put_bytes(img, image_encoded, png.bytes);
    std::string v;
    detail::protobuf::put_bytes(v, value_tag, tag);
    detail::protobuf::put_bytes(v, value_image, img);
    return add(v);
  }

  [[nodiscard]] bool empty() const noexcept { return values_ == 0; }
  [[nodiscard]] std::size_t size() const noexcept { return values_; }
  /// The serialised message.
  [[nodiscard]] const std::string& bytes() const noexcept { return bytes_; }

private:
  // Field numbers of tensorboard/compat/proto/summary.proto.
  static constexpr std::uint32_t summary_value = 1;
  static constexpr std::uint32_t value_tag = 1, value_simple_value = 2, value_image = 4;
  static constexpr std::uint32_t image_height = 1, image_width = 2, image_colorspace = 3, image_encoded = 4;

  Summary& add(std::string_view value) {
    detail::protobuf::put_bytes(bytes_, summary_value, value);
    ++values_;
    return *this;
  }

  std::string bytes_;
  std::size_t values_ = 0;
};

namespace detail {
// Field numbers of tensorboard/compat/proto/event.proto.
inline constexpr std::uint32_t event_wall_time = 1, event_step = 2, event_file_version = 3, event_summary = 5,
                               event_session_log = 7;
inline constexpr std::uint32_t session_log_status = 1, session_log_start = 1;

/// An Event message: wall time, step (left out when 0, as proto3 writes it), then one of
/// its `what` fields.
inline std::string event(double wall_time, long long step, std::uint32_t what_field, std::string_view what) {
  std::string e;
  protobuf::put_double(e, event_wall_time, wall_time);
  if (step != 0) protobuf::put_int(e, event_step, step);
  protobuf::put_bytes(e, what_field, what);
  return e;
}

/// Seconds since the Unix epoch, TensorBoard's wall time.
inline double wall_time_now() noexcept {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
} // namespace detail

/// Writes a new TensorBoard event file in a log directory. Each record goes straight to the
/// file with write(2), nothing is buffered in the process, so a run that is killed keeps
/// every event it wrote; a record cut short by a crash fails its CRC and readers stop
/// before it. (An event file is a log that grows while TensorBoard reads it, so it is
/// appended to, not written atomically as the other files are.)
class EventWriter {
public:
  /// Creates `dir` where missing and proves it writable (io_error naming it otherwise), then
  /// starts the file events.out.tfevents.<seconds>.<host>.<microseconds>.<pid><suffix>
  /// with its version record. The name sorts by creation time, which TensorBoard needs: it
  /// reads a directory's files in name order and never returns to an earlier one.
  explicit EventWriter(const std::filesystem::path& dir, std::string_view suffix = "") {
    ensure_writable_directory(dir);
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
    for (char& c : host)
      if (c == '/') c = '_';
    // A name already taken (two writers in one microsecond) is retried at a later time.
    for (int attempt = 0; fd_ < 0; ++attempt) {
      const auto now = std::chrono::system_clock::now().time_since_epoch();
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
      char name[512];
      std::snprintf(name, sizeof name, "events.out.tfevents.%010lld.%s.%06lld.%lld",
                    static_cast<long long>(us / 1000000), host, static_cast<long long>(us % 1000000),
                    static_cast<long long>(::getpid()));
      path_ = dir / (std::string(name) + std::string(suffix));
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
      if (fd_ < 0 && (errno != EEXIST || attempt >= 1000))
        throw io_error(path_.string(), std::string("cannot create the event file: ") + std::strerror(errno));
    }
    write_event(detail::event(detail::wall_time_now(), 0, detail::event_file_version, "brain.Event:2"));
  }

  EventWriter(EventWriter&& o) noexcept : path_(std::move(o.path_)), fd_(std::exchange(o.fd_, -1)) {}
  EventWriter& operator=(EventWriter&& o) noexcept {
    if (this != &o) {
      close_quietly();
      path_ = std::move(o.path_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;
  ~EventWriter() { close_quietly(); }

  /// The event file.
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] bool is_open() const noexcept { return fd_ >= 0; }

  /// One event holding `summary` at `step` (nothing for an empty summary).
  void write(long long step, const Summary& summary) {
    if (summary.empty()) return;
    write_event(detail::event(detail::wall_time_now(), step, detail::event_summary, summary.bytes()));
  }

  void write_scalar(long long step, std::string_view tag, double value) { write(step, Summary().scalar(tag, value)); }

  /// A SessionLog START at `step`: TensorBoard then drops what earlier files hold at steps
  /// from `step` on. A run resumed from a checkpoint writes it, so that the steps an earlier
  /// run logged past that checkpoint before it stopped are shown once, as the resumed run
  /// has them.
  void write_session_start(long long step) {
    std::string log;
    detail::protobuf::put_int(log, detail::session_log_status, detail::session_log_start);
    write_event(detail::event(detail::wall_time_now(), step, detail::event_session_log, log));
  }

  /// Makes the file durable (fsync): each record is already in the file when its write
  /// returns; this also survives a crash of the machine.
  void flush() {
    if (fd_ >= 0 && ::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS)
      throw io_error(path_.string(), std::string("cannot flush the event file: ") + std::strerror(errno));
  }

  /// Flushes and closes the file; later writes throw.
  void close() {
    if (fd_ < 0) return;
    flush();
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0)
      throw io_error(path_.string(), std::string("cannot close the event file: ") + std::strerror(errno));
  }

private:
  void write_event(std::string_view payload) {
    if (fd_ < 0) throw io_error(path_.string(), "the event file is closed");
    const std::string record = tfrecord(payload);
    std::size_t done = 0;
    while (done < record.size()) {
      const ::ssize_t w = ::write(fd_, record.data() + done, record.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0)
        throw io_error(path_.string(),
                       std::string("cannot write to the event file: ") + std::strerror(w < 0 ? errno : ENOSPC));
      done += static_cast<std::size_t>(w);
    }
  }

  void close_quietly() noexcept {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

  std::filesystem::path path_;
  int fd_ = -1;
};

} // namespace forgery::io
