// libFuzzer target: the IDX reader (forgery/data/idx.hpp), through its real entry point.
//
// An input that starts with 00 (an IDX file) or 1f (gzip) is the file itself. Any other input
// is a control byte, a parameter byte and content: the content is written as gzip, in one or
// two members, stored or coded, and then possibly damaged (a bit of a trailer's CRC-32 or
// length flipped, the file cut by 1 to 8 bytes, garbage or zeros appended, a bit of the
// deflate data flipped, an empty member appended), so that mutations reach the gzip checks
// rather than dying in the deflate data. Such a file is compared with the content read as a
// plain file: undamaged, it must read the same (or fail alike); with a damaged trailer or
// bytes after the last member it must fail; with a flipped data bit it must fail or read
// the same.
//
// Every file is read with read_idx under a payload limit of 8 MiB (large enough for several
// 1 MiB pieces, small enough to keep runs fast). An array that is read must match its
// header; an image file (3 dimensions) is then paired with a generated label file, one
// label per image or one too many, through load_idx_pair. Any exception that is not a
// forgery::error, a sanitizer report or a broken invariant is a finding.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include <zlib.h>

#include "forgery/data/idx.hpp"

#include "fuzz_support.hpp"

namespace {

namespace data = forgery::data;
using Bytes = std::vector<std::uint8_t>;

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
Bytes label_file(std::size_t count) {
  Bytes f{0,
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

// One gzip member (mtime 0, no name) holding p[0, n).
Bytes gzip_member(const std::uint8_t* p, std::size_t n, int level) {
  z_stream z{};
  if (deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    forgery::fuzz::broken("deflateInit2");
  Bytes out(deflateBound(&z, n));
  z.next_in = const_cast<std::uint8_t*>(p);
  z.avail_in = static_cast<uInt>(n);
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) forgery::fuzz::broken("deflate");
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// What a wrapped input does to its gzip file, from bits 2-4 of the control byte.
enum class Damage { none, crc_bit, isize_bit, cut, garbage, data_bit, empty_member, zeros };

// Must this damage make the read fail?
bool must_fail(Damage d) {
  return d == Damage::crc_bit || d == Damage::isize_bit || d == Damage::cut || d == Damage::garbage ||
         d == Damage::zeros;
}

// The gzip file of a wrapped input: control byte c, parameter byte p, content.
Bytes wrap(std::uint8_t c, std::uint8_t p, const std::uint8_t* content, std::size_t n, Damage damage) {
  const int level = (c & 2) ? 9 : 0;
  Bytes file;
  std::size_t last = 0; // where the last member starts
  if (c & 1) {
    const std::size_t split = n * p / 255;
    file = gzip_member(content, split, level);
    last = file.size();
    const Bytes second = gzip_member(content + split, n - split, level);
    file.insert(file.end(), second.begin(), second.end());
  } else {
    file = gzip_member(content, n, level);
  }
  const std::size_t size = file.size(); // each member has at least 10 + 2 + 8 bytes
  switch (damage) {
  case Damage::none:
    break;
  case Damage::crc_bit:
    file[size - 8 + (p % 32) / 8] ^= static_cast<std::uint8_t>(1u << (p % 8));
    break;
  case Damage::isize_bit:
    file[size - 4 + (p % 32) / 8] ^= static_cast<std::uint8_t>(1u << (p % 8));
    break;
  case Damage::cut:
    file.resize(size - 1 - p % 8);
    break;
  case Damage::garbage:
    // Not 1f 8b, so it cannot start another member.
    for (unsigned i = 0; i <= p % 8u; ++i) file.push_back(static_cast<std::uint8_t>(p + i == 0x1f ? 0 : p + i));
    break;
  case Damage::data_bit: {
    // Between the last member's 10-byte header and its trailer.
    const std::size_t span = size - 18 - last;
    file[last + 10 + span * p / 256] ^= static_cast<std::uint8_t>(1u << (p % 8));
    break;
  }
  case Damage::empty_member: {
    const Bytes empty = gzip_member(nullptr, 0, level);
    file.insert(file.end(), empty.begin(), empty.end());
    break;
  }
  case Damage::zeros:
    file.resize(size + 1 + p % 64, 0);
    break;
  }
  return file;
}

std::optional<data::IdxArray> read(const forgery::fuzz::MemFile& f, const data::IdxLimits& limits) {
  try {
    return data::read_idx(f.path(), limits);
  } catch (const forgery::error& e) {
    forgery::fuzz::refused(e);
    return std::nullopt;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  static forgery::fuzz::MemFile input("fuzz_idx");
  static forgery::fuzz::MemFile plain("fuzz_idx_plain");
  static forgery::fuzz::MemFile labels("fuzz_idx_labels");
  data::IdxLimits limits;
  limits.max_bytes = payload_limit;

  std::optional<data::IdxArray> read_back;
  if (size >= 2 && bytes[0] != 0x00 && bytes[0] != 0x1f) {
    const std::uint8_t c = bytes[0], p = bytes[1];
    const std::uint8_t* content = bytes + 2;
    const std::size_t n = size - 2;
    const auto damage = static_cast<Damage>((c >> 2) & 7);
    const Bytes file = wrap(c, p, content, n, damage);
    input.assign(file.data(), file.size());
    read_back = read(input, limits);
    // Content that is itself gzip reads differently as a plain file: no reference then.
    if (n < 2 || content[0] != 0x1f || content[1] != 0x8b) {
      plain.assign(content, n);
      const std::optional<data::IdxArray> reference = read(plain, limits);
      if (must_fail(damage)) FORGERY_FUZZ_CHECK(!read_back);
      const bool same =
          read_back && reference && read_back->dims == reference->dims && read_back->bytes == reference->bytes;
      if (damage == Damage::none || damage == Damage::empty_member)
        FORGERY_FUZZ_CHECK(same || (!read_back && !reference));
      if (damage == Damage::data_bit) FORGERY_FUZZ_CHECK(same || !read_back);
    }
  } else {
    input.assign(bytes, size);
    read_back = read(input, limits);
  }
  if (!read_back) return 0;
  const data::IdxArray& a = *read_back;
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
    const Bytes l = label_file(a.count() + (extra ? 1 : 0));
    labels.assign(l.data(), l.size());
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
