// IDX reading: files written here (plain and .gz) read back exactly; every malformed file
// (truncated, foreign, unsupported, oversized, inconsistent, missing, a gzip member damaged,
// cut or followed by garbage) is an io_error whose message names the file and what was wrong.
#include "../support.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include "forgery/data/idx.hpp"

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

using fg::test::Scratch;

// An IDX header for `dims` with type byte `type`, followed by `payload`.
Bytes idx_bytes(const std::vector<std::uint32_t>& dims, const Bytes& payload, std::uint8_t type = 0x08) {
  Bytes b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (const std::uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(d >> shift));
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

Bytes ramp(std::size_t n, unsigned step = 7) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * step % 256);
  return b;
}

fs::path write_raw(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
  return path;
}

fs::path write_gz(const fs::path& path, const Bytes& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
  return path;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// One gzip member (mtime 0, no name: the same bytes every time) holding `plain`.
Bytes gzip_member(const Bytes& plain, int level = 9) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  Bytes out(deflateBound(&z, plain.size()));
  z.next_in = const_cast<Bytef*>(plain.data());
  z.avail_in = static_cast<uInt>(plain.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes cut(const Bytes& b, std::size_t n) { return Bytes(b.begin(), b.end() - static_cast<std::ptrdiff_t>(n)); }

// A file in memory (memfd), read through /proc/self/fd/N: rewritten thousands of times by
// the bit-flip test without waiting on a disk.
class MemFile {
public:
  MemFile() : fd_(memfd_create("forgery_test_idx", MFD_CLOEXEC)) {
    REQUIRE(fd_ >= 0);
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  ~MemFile() { close(fd_); }
  const fs::path& write(const Bytes& b) {
    REQUIRE(ftruncate(fd_, 0) == 0);
    REQUIRE(pwrite(fd_, b.data(), b.size(), 0) == static_cast<ssize_t>(b.size()));
    return path_;
  }

private:
  int fd_;
  fs::path path_;
};

// The largest resident set of this process so far, in KiB.
long peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

using fg::test::io_error_of;

TEST_CASE("read_idx reads plain and .gz files back exactly") {
  Scratch s;
  const Bytes images = ramp(3 * 4 * 5);
  const Bytes labels{2, 0, 1};
  for (const bool gz : {false, true}) {
    CAPTURE(gz);
    const auto write = gz ? write_gz : write_raw;
    const auto img = write(s.dir / (gz ? "img.gz" : "img"), idx_bytes({3, 4, 5}, images));
    const auto lab = write(s.dir / (gz ? "lab.gz" : "lab"), idx_bytes({3}, labels));
    const fg::data::IdxArray a = fg::data::read_idx(img);
    CHECK(a.dims == std::vector<std::size_t>{3, 4, 5});
    CHECK(a.bytes == images);
    CHECK(a.count() == 3);
    CHECK(a.path == img);
    const auto pair = fg::data::load_idx_pair(img, lab);
    CHECK(pair.images.bytes == images);
    CHECK(pair.labels.bytes == labels);
    CHECK(pair.labels.dims == std::vector<std::size_t>{3});
    // Four dimensions, the most IDX allows, and a payload larger than one read chunk.
    const Bytes big = ramp(2 * 3 * 300 * 700, 13);
    const auto four = write(s.dir / (gz ? "four.gz" : "four"), idx_bytes({2, 3, 300, 700}, big));
    const auto b = fg::data::read_idx(four);
    CHECK(b.dims == std::vector<std::size_t>{2, 3, 300, 700});
    CHECK(b.bytes == big);
  }
}

TEST_CASE("a truncated payload names the bytes promised and found") {
  Scratch s;
  const Bytes cut = idx_bytes({3, 4, 5}, ramp(10));
  for (const auto& path : {write_raw(s.dir / "cut", cut), write_gz(s.dir / "cut.gz", cut)}) {
    const std::string msg = io_error_of([&] { fg::data::read_idx(path); });
    CHECK(has(msg, path.string()));
    CHECK(has(msg, "truncated"));
    CHECK(has(msg, "promises 60 payload bytes (3 x 4 x 5)"));
    CHECK(has(msg, "after 10"));
  }
  // A .gz file cut in the middle of its compressed stream.
  const auto whole = write_gz(s.dir / "whole.gz", idx_bytes({40, 50}, ramp(2000, 97)));
  std::ifstream in(whole, std::ios::binary);
  const Bytes gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(gz.size() > 40);
  for (const std::size_t keep : {gz.size() / 2, gz.size() - 4}) {
    CAPTURE(keep);
    const auto path = write_raw(s.dir / "half.gz", Bytes(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(keep)));
    const std::string msg = io_error_of([&] { fg::data::read_idx(path); });
    CHECK(has(msg, path.string()));
    CHECK(has(msg, "truncated"));
    CHECK(has(msg, "gzip stream is cut short"));
  }
}

TEST_CASE("a truncated header is reported as such") {
  Scratch s;
  const auto two = write_raw(s.dir / "two", Bytes{0, 0});
  std::string msg = io_error_of([&] { fg::data::read_idx(two); });
  CHECK(has(msg, two.string()));
  CHECK(has(msg, "truncated header: expected 4 magic bytes"));
  CHECK(has(msg, "file has 2"));

  const auto sizes = write_raw(s.dir / "sizes.gz", Bytes{0, 0, 8, 3, 0, 0, 0, 9, 0});
  msg = io_error_of([&] { fg::data::read_idx(sizes); });
  CHECK(has(msg, sizes.string()));
  CHECK(has(msg, "truncated header: 3 dimensions need 12 size bytes"));
  CHECK(has(msg, "file has 5"));

  const auto empty = write_raw(s.dir / "empty", Bytes{});
  CHECK(has(io_error_of([&] { fg::data::read_idx(empty); }), "file has 0"));
}

TEST_CASE("a foreign file is not an IDX file") {
  Scratch s;
  const auto png = write_raw(s.dir / "image.png", Bytes{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13});
  std::string msg = io_error_of([&] { fg::data::read_idx(png); });
  CHECK(has(msg, png.string()));
  CHECK(has(msg, "not an IDX file: expected magic bytes 00 00 08 0n, found 89 50 4e 47"));

  const std::string text = "step,d_loss,g_loss\n1,0.5,0.7\n";
  const auto csv = write_raw(s.dir / "log.csv", Bytes(text.begin(), text.end()));
  msg = io_error_of([&] { fg::data::read_idx(csv); });
  CHECK(has(msg, csv.string()));
  CHECK(has(msg, "not an IDX file"));

  // gzip magic with a corrupt body: zlib's complaint, with the file name.
  const auto bad = write_raw(s.dir / "bad.gz", Bytes{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff});
  msg = io_error_of([&] { fg::data::read_idx(bad); });
  CHECK(has(msg, bad.string()));
  CHECK(has(msg, "corrupt gzip member 1 (at byte 0)"));
  CHECK(has(msg, "zlib says invalid block type"));
}

TEST_CASE("unsupported element types and dimension counts are named") {
  Scratch s;
  const auto floats = write_raw(s.dir / "floats", idx_bytes({2}, ramp(8), 0x0D));
  std::string msg = io_error_of([&] { fg::data::read_idx(floats); });
  CHECK(has(msg, floats.string()));
  CHECK(has(msg, "unsupported IDX element type 0x0d (float): only 0x08 (unsigned byte) is supported"));

  for (const std::uint8_t nd : {std::uint8_t{0}, std::uint8_t{5}}) {
    const auto path = write_raw(s.dir / "nd", Bytes{0, 0, 8, nd, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1});
    msg = io_error_of([&] { fg::data::read_idx(path); });
    CHECK(has(msg, path.string()));
    CHECK(has(msg, "unsupported IDX dimension count " + std::to_string(nd) + ": expected 1 to 4"));
  }

  const auto zero = write_raw(s.dir / "zero", idx_bytes({3, 0, 5}, {}));
  msg = io_error_of([&] { fg::data::read_idx(zero); });
  CHECK(has(msg, zero.string()));
  CHECK(has(msg, "dimension 1 is 0"));
}

TEST_CASE("a header promising more than IdxLimits allows is rejected before allocating") {
  Scratch s;
  // 10^12 bytes: allocating them would abort (and ASan would report it), so the error
  // proves the check comes first. Raw and gz take different read paths.
  const Bytes tera = idx_bytes({1000000, 1000, 1000}, ramp(16));
  for (const auto& path : {write_raw(s.dir / "tera", tera), write_gz(s.dir / "tera.gz", tera)}) {
    const std::string msg = io_error_of([&] { fg::data::read_idx(path); });
    CHECK(has(msg, path.string()));
    CHECK(has(msg, "header promises 1000000 x 1000 x 1000 = 1e+12 bytes"));
    CHECK(has(msg, "above the limit of 268435456 bytes (IdxLimits::max_bytes"));
  }
  // A product that overflows 64 bits.
  const auto wrap = write_raw(s.dir / "wrap", idx_bytes({0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {}));
  CHECK(has(io_error_of([&] { fg::data::read_idx(wrap); }), "above the limit"));
  // The limit is the caller's: a valid 60-byte file against a 59-byte limit.
  const auto small = write_raw(s.dir / "small", idx_bytes({3, 4, 5}, ramp(60)));
  CHECK(fg::data::read_idx(small, {.max_bytes = 60}).bytes.size() == 60);
  CHECK(has(io_error_of([&] { fg::data::read_idx(small, {.max_bytes = 59}); }), "above the limit of 59 bytes"));
}

TEST_CASE("trailing bytes after the payload are an error") {
  Scratch s;
  const Bytes extra = idx_bytes({2, 3}, ramp(8));
  for (const auto& path : {write_raw(s.dir / "extra", extra), write_gz(s.dir / "extra.gz", extra)}) {
    const std::string msg = io_error_of([&] { fg::data::read_idx(path); });
    CHECK(has(msg, path.string()));
    CHECK(has(msg, "trailing bytes: header promises 6 payload bytes (2 x 3), file has 2 more"));
  }
}

TEST_CASE("a missing file, a directory and the wrong kind of IDX file are named") {
  Scratch s;
  const auto missing = s.dir / "train-images-idx3-ubyte.gz";
  std::string msg = io_error_of([&] { fg::data::read_idx(missing); });
  CHECK(has(msg, missing.string()));
  CHECK(has(msg, "no such file"));
  CHECK(has(io_error_of([&] { fg::data::read_idx(s.dir); }), "is a directory"));

  const auto labels = write_raw(s.dir / "labels", idx_bytes({4}, ramp(4)));
  const auto images = write_raw(s.dir / "images", idx_bytes({4, 2, 2}, ramp(16)));
  msg = io_error_of([&] { fg::data::load_idx_images(labels); });
  CHECK(has(msg, labels.string()));
  CHECK(has(msg, "expected an image file with 3 dimensions (N x H x W), found 1 (4)"));
  msg = io_error_of([&] { fg::data::load_idx_labels(images); });
  CHECK(has(msg, images.string()));
  CHECK(has(msg, "expected a label file with 1 dimension (N), found 3 (4 x 2 x 2)"));
}

TEST_CASE("a label count different from the image count names both files") {
  Scratch s;
  const auto images = write_gz(s.dir / "images.gz", idx_bytes({3, 2, 2}, ramp(12)));
  const auto labels = write_gz(s.dir / "labels.gz", idx_bytes({2}, Bytes{1, 0}));
  const std::string msg = io_error_of([&] { fg::data::load_idx_pair(images, labels); });
  CHECK(has(msg, images.string()));
  CHECK(has(msg, labels.string()));
  CHECK(has(msg, "has 2 labels"));
  CHECK(has(msg, "has 3 images"));
}

// --- gzip members: every trailer checked, nothing after the last member -------------------

// Bytes that do not compress (a linear congruential sequence's high bytes).
Bytes noise(std::size_t n) {
  Bytes b(n);
  std::uint32_t x = 12345;
  for (auto& v : b) v = static_cast<std::uint8_t>((x = x * 1664525u + 1013904223u) >> 24);
  return b;
}

TEST_CASE("a .gz file cut by 1 to 8 bytes, inside its trailer, is refused") {
  Scratch s;
  // gzread noticed the cut in a small member but not in one of more than its buffer (8 KiB).
  for (const Bytes& payload : {ramp(120), noise(60000)}) {
    CAPTURE(payload.size());
    const Bytes gz = gzip_member(idx_bytes({4, 5, static_cast<std::uint32_t>(payload.size() / 20)}, payload));
    for (std::size_t n = 1; n <= 8; ++n) {
      CAPTURE(n);
      const auto path = write_raw(s.dir / ("cut" + std::to_string(n) + ".gz"), cut(gz, n));
      for (const auto& read : {+[](const fs::path& p) { fg::data::read_idx(p); },
                               +[](const fs::path& p) { fg::data::load_idx_images(p); }}) {
        const std::string msg = io_error_of([&] { read(path); });
        CHECK(has(msg, path.string()));
        CHECK(has(msg, "truncated: the gzip stream is cut short inside member 1 (at byte 0), after the whole payload"));
        CHECK(has(msg, "8-byte trailer (CRC-32 and length) is missing"));
      }
    }
    // The whole member reads: the cuts above are the only difference.
    CHECK(fg::data::read_idx(write_raw(s.dir / "whole.gz", gz)).bytes == payload);
  }
}

TEST_CASE("a flipped bit in the deflate data is refused, or changes nothing") {
  MemFile file;
  // Repetitive, so that level 9 codes it (Huffman codes and back-references) rather than
  // storing it: a flip there changes how the rest decodes. Level 0 stores the bytes as they
  // are, so each flip there changes the data.
  Bytes payload(120);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::uint8_t>(i % 10 * 25 + i / 40);
  const Bytes plain = idx_bytes({3, 40}, payload);
  for (const int level : {0, 9}) {
    CAPTURE(level);
    const Bytes gz = gzip_member(plain, level);
    CHECK((gz.size() < plain.size()) == (level == 9));
    int refused = 0, same = 0;
    for (std::size_t at = 10; at < gz.size() - 8; ++at) // between the 10-byte header and the trailer
      for (int bit = 0; bit < 8; ++bit) {
        Bytes bad = gz;
        bad[at] ^= static_cast<std::uint8_t>(1u << bit);
        const fs::path& path = file.write(bad);
        try {
          const fg::data::IdxArray a = fg::data::read_idx(path);
          // A flip that decodes to the same bytes (the last byte's padding bits) is harmless.
          CHECK(a.bytes == payload);
          CHECK(a.dims == std::vector<std::size_t>{3, 40});
          ++same;
        } catch (const fg::io_error& e) {
          CHECK(has(e.what(), path.string()));
          ++refused;
        }
        // The case: a flipped bit and the trailer cut, so no CRC is there to catch it.
        for (const std::size_t n : {4u, 8u}) {
          const fs::path& cut_path = file.write(cut(bad, n));
          CHECK(has(io_error_of([&] { fg::data::read_idx(cut_path); }), cut_path.string()));
        }
      }
    MESSAGE("level " << level << ": " << refused << " flips refused, " << same << " decoded to the same bytes");
    CHECK(refused > 0);
    // Stored, the only flips that change nothing are the 5 padding bits after the block's
    // 3-bit header; coded, the few padding bits after the last code.
    if (level == 0) CHECK(same == 5);
    CHECK(same <= 7);
  }
  // A member larger than gzread's buffer, Huffman-coded, flipped at 40 places along it.
  Bytes labels = noise(60000);
  for (auto& v : labels) v &= 0x0f;
  const Bytes big = gzip_member(idx_bytes({60000}, labels));
  for (std::size_t at = 10; at < big.size() - 8; at += big.size() / 40) {
    CAPTURE(at);
    Bytes bad = big;
    bad[at] ^= static_cast<std::uint8_t>(1u << (at % 8));
    for (const std::size_t n : {0u, 4u, 8u}) {
      const fs::path& path = file.write(cut(bad, n));
      CHECK(has(io_error_of([&] { fg::data::read_idx(path); }), path.string()));
    }
  }
}

TEST_CASE("a gzip trailer whose CRC-32 or length does not match is refused") {
  Scratch s;
  const Bytes plain = idx_bytes({5, 7}, ramp(35));
  const Bytes gz = gzip_member(plain);
  const std::size_t crc_at = gz.size() - 8, isize_at = gz.size() - 4;
  for (int bit = 0; bit < 32; ++bit) {
    CAPTURE(bit);
    Bytes bad = gz;
    bad[crc_at + static_cast<std::size_t>(bit / 8)] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    const auto crc = write_raw(s.dir / "crc.gz", bad);
    std::string msg = io_error_of([&] { fg::data::read_idx(crc); });
    CHECK(has(msg, crc.string()));
    CHECK(has(msg, "gzip member 1 (at byte 0) fails its CRC-32 check"));

    bad = gz;
    bad[isize_at + static_cast<std::size_t>(bit / 8)] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    const auto isize = write_raw(s.dir / "isize.gz", bad);
    msg = io_error_of([&] { fg::data::read_idx(isize); });
    CHECK(has(msg, isize.string()));
    CHECK(has(msg, "gzip member 1 (at byte 0) decompresses to 47 bytes, but its trailer's length field (ISIZE)"));
  }
}

TEST_CASE("anything after the last gzip member is refused") {
  Scratch s;
  const Bytes plain = idx_bytes({2, 3}, ramp(6));
  const Bytes gz = gzip_member(plain);
  struct Case {
    const char* name;
    Bytes tail;
    const char* expect;
  };
  const Case cases[] = {
      {"text", {'e', 'x', 't', 'r', 'a'}, "trailing bytes after gzip member 1, from byte "},
      {"zeros", Bytes(512, 0), "found 00 00 00 00 ..."},
      {"one byte", {0x1f}, "expected another member (1f 8b) or the end of the file, found 1f"},
      {"gzip magic alone", {0x1f, 0x8b}, "truncated: the gzip stream is cut short inside member 2"},
      {"a corrupt member", {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff}, "corrupt gzip member 2"},
      {"a cut empty member", cut(gzip_member({}), 3), "truncated: the gzip stream is cut short inside member 2"},
      {"a cut member with data", cut(gzip_member(Bytes{1, 2, 3}), 3),
       "trailing bytes: header promises 6 payload bytes"},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.name));
    const auto path = write_raw(s.dir / "tail.gz", cat(gz, c.tail));
    const std::string msg = io_error_of([&] { fg::data::read_idx(path); });
    CHECK(has(msg, path.string()));
    CHECK(has(msg, c.expect));
  }
  CHECK(has(io_error_of([&] {
              fg::data::read_idx(write_raw(s.dir / "text.gz", cat(gz, {'e', 'x', 't', 'r', 'a'})));
            }),
            "from byte " + std::to_string(gz.size()) + ": expected another member (1f 8b)"));
}

TEST_CASE("concatenated gzip members read as one stream, each member checked") {
  Scratch s;
  const Bytes plain = idx_bytes({4, 25}, ramp(100, 3));
  // Split anywhere: inside the magic, inside the sizes, in the payload; with an empty member.
  for (const std::size_t at : {std::size_t{2}, std::size_t{7}, std::size_t{12}, std::size_t{60}, plain.size()}) {
    CAPTURE(at);
    const Bytes first(plain.begin(), plain.begin() + static_cast<std::ptrdiff_t>(at));
    const Bytes second(plain.begin() + static_cast<std::ptrdiff_t>(at), plain.end());
    const Bytes two = cat(gzip_member(first), gzip_member(second, 1));
    const fg::data::IdxArray a = fg::data::read_idx(write_raw(s.dir / "two.gz", two));
    CHECK(a.dims == std::vector<std::size_t>{4, 25});
    CHECK(a.bytes == ramp(100, 3));
  }
  const Bytes m1 = gzip_member(Bytes(plain.begin(), plain.begin() + 50));
  const Bytes m2 = gzip_member(Bytes(plain.begin() + 50, plain.end()));
  CHECK(fg::data::read_idx(write_raw(s.dir / "three.gz", cat(cat(m1, gzip_member({})), m2))).bytes == ramp(100, 3));

  // The second member's trailer is checked as the first's.
  Bytes bad_crc = m2;
  bad_crc[bad_crc.size() - 6] ^= 0x10;
  auto path = write_raw(s.dir / "crc2.gz", cat(m1, bad_crc));
  std::string msg = io_error_of([&] { fg::data::read_idx(path); });
  CHECK(has(msg, path.string()));
  CHECK(has(msg, "gzip member 2 (at byte " + std::to_string(m1.size()) + ") fails its CRC-32 check"));
  Bytes bad_isize = m2;
  bad_isize[bad_isize.size() - 1] ^= 0x01;
  path = write_raw(s.dir / "isize2.gz", cat(m1, bad_isize));
  CHECK(
      has(io_error_of([&] { fg::data::read_idx(path); }), "gzip member 2 (at byte " + std::to_string(m1.size()) +
                                                              ") decompresses to 62 bytes, but its trailer's length"));
  for (std::size_t n = 1; n <= 8; ++n) {
    CAPTURE(n);
    path = write_raw(s.dir / "cut2.gz", cat(m1, cut(m2, n)));
    msg = io_error_of([&] { fg::data::read_idx(path); });
    CHECK(has(msg, path.string()));
    CHECK(has(msg, "the gzip stream is cut short inside member 2"));
  }
  // The first member is checked too, though more follow.
  Bytes bad_first = m1;
  bad_first[bad_first.size() - 8] ^= 0x01;
  path = write_raw(s.dir / "crc1.gz", cat(bad_first, m2));
  CHECK(has(io_error_of([&] { fg::data::read_idx(path); }), "gzip member 1 (at byte 0) fails its CRC-32 check"));
}

// --- how much memory a header can make the reader take ------------------------------------

TEST_CASE("the default IdxLimits refuses a header that promises 1.3 million images, and says how to raise it") {
  Scratch s;
  CHECK(fg::data::IdxLimits{}.max_bytes == std::uint64_t{256} << 20);
  CHECK(std::uint64_t{60000} * 28 * 28 <= fg::data::IdxLimits{}.max_bytes); // Fashion-MNIST's training images
  // A small file whose header claims 1.3 million 28 x 28 images (1.02 GB, or 4.1 GB as floats).
  const auto path = write_gz(s.dir / "claims.gz", idx_bytes({1300000, 28, 28}, ramp(784)));
  const std::string msg = io_error_of([&] { fg::data::read_idx(path); });
  CHECK(has(msg, path.string()));
  CHECK(has(msg, "header promises 1300000 x 28 x 28 = 1.019e+09 bytes, above the limit of 268435456 bytes"));
  CHECK(has(msg, "IdxLimits::max_bytes; to read larger files pass a larger limit to read_idx, load_idx_dataset or "
                 "load_fashion_mnist"));
  // Raised, the same header passes the limit and the file fails at the end of its data.
  const std::string raised = io_error_of([&] { fg::data::read_idx(path, {.max_bytes = std::uint64_t{2} << 30}); });
  CHECK(has(raised, "truncated: header promises 1019200000 payload bytes (1300000 x 28 x 28)"));
  CHECK(has(raised, "the decompressed data end after 784"));
}

TEST_CASE("a header that promises more than the file holds fails when the data end, without taking what it promised") {
  Scratch s;
  // 240 MB promised, 4 KB held: the payload may be reserved, not written.
  const Bytes held = ramp(4096);
  const auto path = write_gz(s.dir / "lies.gz", idx_bytes({300000, 800}, held));
  const long before = peak_rss_kib();
  const std::string msg = io_error_of([&] { fg::data::read_idx(path); });
  const long grew = peak_rss_kib() - before;
  CHECK(has(msg, path.string()));
  CHECK(has(msg, "truncated: header promises 240000000 payload bytes (300000 x 800), the decompressed data end after "
                 "4096"));
  MESSAGE("peak resident set grew by " << grew << " KiB reading a file that promises 240000000 bytes");
  CHECK(grew < 64 * 1024);
}

TEST_CASE("a payload that cannot be allocated is an io_error naming the file and the limit") {
#if defined(__SANITIZE_ADDRESS__)
  MESSAGE("skipped under AddressSanitizer, which aborts on an allocation of 256 TiB instead of throwing");
#else
  Scratch s;
  // 2^48 bytes, more than a 47-bit address space holds, under a limit raised to allow them.
  const auto path = write_gz(s.dir / "huge.gz", idx_bytes({65536, 65536, 65536}, ramp(64)));
  const std::string msg = io_error_of([&] { fg::data::read_idx(path, {.max_bytes = std::uint64_t{1} << 50}); });
  CHECK(has(msg, path.string()));
  CHECK(has(msg, "cannot allocate 281474976710656 bytes for the payload: header promises 281474976710656 payload "
                 "bytes (65536 x 65536 x 65536) (within IdxLimits::max_bytes = 1125899906842624)"));
#endif
}

} // namespace
