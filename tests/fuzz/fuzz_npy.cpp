// libFuzzer target: the .npy weights reader (forgery/io/weights.hpp) without a network.
//
// Each input is read from an in-memory file through detail::read_file_at_most (the size
// limit load_weights_npy applies), and checked as a weights file of float and of double
// values through detail::read_npy_values, the whole validation load_weights_npy runs: the
// expected count is the header's own 1-D shape when it parses (so that valid files get
// through), 3 otherwise. A success must copy exactly the bytes after the header; a failure
// must leave the destination unchanged. Any exception that is not a forgery::error, a
// sanitizer report or a broken invariant is a finding.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "forgery/io/weights.hpp"

#include "fuzz_support.hpp"

namespace {

namespace detail = forgery::io::detail;

template <class S>
void read_values(std::string_view bytes, std::size_t count) {
  constexpr unsigned char sentinel = 0xA5;
  std::vector<S> dst(count + 1);
  std::memset(dst.data(), sentinel, dst.size() * sizeof(S));
  bool ok = false;
  try {
    detail::read_npy_values<S>("fuzz.npy", bytes, dst.data(), count);
    ok = true;
  } catch (const forgery::error& e) {
    forgery::fuzz::refused(e);
  }
  const auto* out = reinterpret_cast<const unsigned char*>(dst.data());
  if (ok) {
    FORGERY_FUZZ_CHECK(bytes.size() >= count * sizeof(S));
    FORGERY_FUZZ_CHECK(std::memcmp(out, bytes.data() + (bytes.size() - count * sizeof(S)), count * sizeof(S)) == 0);
  }
  // Nothing is written past `count` values, nor anything at all on failure.
  for (std::size_t i = ok ? count * sizeof(S) : 0; i < dst.size() * sizeof(S); ++i)
    FORGERY_FUZZ_CHECK(out[i] == sentinel);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static forgery::fuzz::MemFile file("fuzz_npy");
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  std::size_t count = 3, header = 0;
  try {
    const detail::NpyHeader h = detail::parse_npy_header("fuzz.npy", bytes);
    FORGERY_FUZZ_CHECK(h.data_offset <= size);
    if (h.shape.size() == 1 && h.shape[0] <= size) count = h.shape[0];
    header = h.data_offset;
  } catch (const forgery::error&) {
  }

  // The file path, with the size of a valid file of `count` float values as the limit: the
  // real limit less the header's slack, so that longer inputs cross it.
  file.assign(data, size);
  const std::uintmax_t limit = header + count * sizeof(float);
  try {
    const std::string read = detail::read_file_at_most(file.path(), limit, "fuzz");
    FORGERY_FUZZ_CHECK(size <= limit);
    FORGERY_FUZZ_CHECK(read == bytes);
  } catch (const forgery::error& e) {
    forgery::fuzz::refused(e);
    FORGERY_FUZZ_CHECK(size > limit);
  }

  read_values<float>(bytes, count);
  read_values<double>(bytes, count);
  return 0;
}
