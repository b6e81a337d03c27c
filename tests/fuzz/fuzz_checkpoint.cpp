// libFuzzer target: the checkpoint container (forgery/io/checkpoint.hpp).
//
// Each input is parsed three times: in memory as given (the header checks: magic, CRCs,
// version, sizes), from a file through CheckpointFile::read (its size limit), and in
// memory again with the payload size and both CRC-32s recomputed, so that mutations reach
// the record parser instead of stopping at a checksum. A parsed file must give every record
// back through the accessors (require_finite refusing exactly the records with a NaN or an
// infinity), refuse the wrong accessors with an io_error, and rebuild byte for byte through
// CheckpointWriter. Any exception that is not a forgery::error, a sanitizer report or a
// broken invariant is a finding.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "forgery/io/checkpoint.hpp"

#include "fuzz_support.hpp"

namespace {

namespace io = forgery::io;

template <class T>
void copy_array(const io::CheckpointFile& file, const io::RecordInfo& r, io::CheckpointWriter& out) {
  const std::vector<T> values = file.array<T>(r.name);
  FORGERY_FUZZ_CHECK(values.size() == r.count);
  if constexpr (std::is_floating_point_v<T>) {
    // require_finite refuses a record exactly when one of its values is NaN or infinite.
    bool refused = false;
    try {
      file.require_finite(r.name);
    } catch (const forgery::io_error&) {
      refused = true;
    }
    const bool all_finite = std::all_of(values.begin(), values.end(), [](T v) { return std::isfinite(v); });
    FORGERY_FUZZ_CHECK(refused == !all_finite);
  }
  out.add<T>(r.name, values.data(), values.size());
}

// Calls f, which may throw forgery::error only.
template <class F>
void may_fail(F&& f) {
  try {
    f();
  } catch (const forgery::error&) {
  }
}

void check_parsed(const io::CheckpointFile& file, const std::string& bytes) {
  FORGERY_FUZZ_CHECK(file.version() == io::checkpoint_version);
  io::CheckpointWriter rebuilt;
  for (const io::RecordInfo& r : file.records()) {
    FORGERY_FUZZ_CHECK(file.find(r.name) == &r);
    switch (r.type) {
    case io::RecordType::text: {
      const std::string_view text = file.text(r.name);
      FORGERY_FUZZ_CHECK(text.size() == r.count);
      may_fail([&] { (void)io::parse_fields(text, file.name(), r.name); });
      rebuilt.add_text(r.name, text);
      break;
    }
    case io::RecordType::f32:
      copy_array<float>(file, r, rebuilt);
      break;
    case io::RecordType::f64:
      copy_array<double>(file, r, rebuilt);
      break;
    case io::RecordType::i64:
      copy_array<std::int64_t>(file, r, rebuilt);
      break;
    case io::RecordType::u64:
      copy_array<std::uint64_t>(file, r, rebuilt);
      break;
    }
    // Accessors of another type or size must refuse with an io_error.
    may_fail([&] { (void)file.i64(r.name); });
    may_fail([&] { (void)file.text(r.name); });
    may_fail([&] { (void)file.array<float>(r.name); });
    may_fail([&] {
      double one = 0;
      file.read_array<double>(r.name, &one, 1);
    });
  }
  may_fail([&] { (void)file.require("no such record", io::RecordType::text); });
  // The format has one encoding for a set of records: writing them again gives the input.
  FORGERY_FUZZ_CHECK(rebuilt.bytes() == bytes);
}

void parse(std::string bytes) {
  try {
    const io::CheckpointFile file(bytes, "fuzz.ckpt");
    check_parsed(file, bytes);
  } catch (const forgery::error& e) {
    forgery::fuzz::refused(e);
  }
}

// The input with its payload size and CRCs made consistent (inputs of at least a header).
std::string with_valid_checksums(std::string bytes) {
  if (bytes.size() < io::checkpoint_header_size) return bytes;
  char* h = bytes.data();
  const std::size_t payload = bytes.size() - io::checkpoint_header_size;
  io::detail::store_le<std::uint64_t>(h + 16, payload);
  io::detail::store_le<std::uint32_t>(h + 24, io::detail::crc32_of(h + io::checkpoint_header_size, payload));
  io::detail::store_le<std::uint32_t>(h + 28, io::detail::crc32_of(h, 28));
  return bytes;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static forgery::fuzz::MemFile file("fuzz_checkpoint");
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  parse(bytes);

  file.assign(data, size);
  io::CheckpointLimits limits;
  limits.max_bytes = 32768; // larger inputs exercise the size limit of read()
  try {
    const io::CheckpointFile read = io::CheckpointFile::read(file.path(), limits);
    check_parsed(read, bytes);
  } catch (const forgery::error& e) {
    forgery::fuzz::refused(e);
  }

  const std::string fixed = with_valid_checksums(bytes);
  if (fixed != bytes) parse(fixed);
  return 0;
}
