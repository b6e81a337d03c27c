// libFuzzer target: the IDX reader (forgery/data/idx.hpp), through its real entry point.
//
// Each input is written to an in-memory file and read with read_idx, plain or gzip (zlib
// tells them apart by content), under a payload limit of 8 MiB: large enough for the
// chunked growth of a .gz payload (1, 2, 4, 8 MiB), small enough to keep runs fast. An
// array that is read must match its header; an image file (3 dimensions) is then paired
// with a generated label file, one label per image or one too many, through load_idx_pair.
// Any exception that is not a forgery::error, a sanitizer report or a broken invariant is a
// finding.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "forgery/data/idx.hpp"

#include "fuzz_support.hpp"

namespace {

namespace data = forgery::data;

constexpr std::uint64_t payload_limit = std::uint64_t{8} << 20;

void check_array(const data::IdxArray& a) {
  FORGERY_FUZZ_CHECK(a.dims.size() >= 1 && a.dims.size() <= 4);
  std::uint64_t product = 1;
  for (std::size_t n : a.dims) {
    FORGERY_FUZZ_CHECK(n > 0);
    product *= n;
  }
  FORGERY_FUZZ_CHECK(product <= payload_limit);
  FORGERY_FUZZ_CHECK(a.size() == product);
  FORGERY_FUZZ_CHECK(a.count() == a.dims.front());
}

// A plain IDX label file of `count` labels.
std::vector<std::uint8_t> label_file(std::size_t count) {
  std::vector<std::uint8_t> f{0,
                              0,
                              0x08,
                              1,
                              static_cast<std::uint8_t>(count >> 24),
                              static_cast<std::uint8_t>(count >> 16),
                              static_cast<std::uint8_t>(count >> 8),
                              static_cast<std::uint8_t>(count)};
  f.resize(f.size() + count, 7);
  return f;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  static forgery::fuzz::MemFile input("fuzz_idx");
  static forgery::fuzz::MemFile labels("fuzz_idx_labels");
  data::IdxLimits limits;
  limits.max_bytes = payload_limit;

  input.assign(bytes, size);
  data::IdxArray a;
  try {
    a = data::read_idx(input.path(), limits);
  } catch (const forgery::error& e) {
    forgery::fuzz::refused(e);
    return 0;
  }
  check_array(a);

  // A file that reads must read the same through the shape-checking loaders.
  bool image_file = false, label_file_ok = false;
  try {
    image_file = data::load_idx_images(input.path(), limits).bytes == a.bytes;
  } catch (const forgery::error&) {
  }
  try {
    label_file_ok = data::load_idx_labels(input.path(), limits).bytes == a.bytes;
  } catch (const forgery::error&) {
  }
  FORGERY_FUZZ_CHECK(image_file == (a.dims.size() == 3));
  FORGERY_FUZZ_CHECK(label_file_ok == (a.dims.size() == 1));

  if (image_file) {
    // One label per image must pair; one label more must not.
    const bool extra = size > 0 && (bytes[size - 1] & 1) != 0;
    labels.assign(label_file(a.count() + (extra ? 1 : 0)).data(), 8 + a.count() + (extra ? 1 : 0));
    bool paired = false;
    try {
      const data::IdxImagesLabels pair = data::load_idx_pair(input.path(), labels.path(), limits);
      FORGERY_FUZZ_CHECK(pair.labels.count() == pair.images.count());
      paired = true;
    } catch (const forgery::error&) {
    }
    FORGERY_FUZZ_CHECK(paired == !extra);
  }
  return 0;
}
