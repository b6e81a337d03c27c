// IDX reading: files written here (plain and .gz) read back exactly; every malformed file
// (truncated, foreign, unsupported, oversized, inconsistent, missing) is an io_error whose
// message names the file and what was wrong.
#include "../support.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

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

// The message of the io_error `f` throws; fails the test for no exception or another type.
template <class F>
std::string io_error_of(F&& f) {
  try {
    f();
  } catch (const fg::io_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL_CHECK("expected an io_error, got: " << e.what());
    return {};
  }
  FAIL_CHECK("expected an io_error, nothing was thrown");
  return {};
}

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
  CHECK(has(msg, "read failed"));
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
    CHECK(has(msg, "above the limit of 1073741824 bytes (IdxLimits::max_bytes)"));
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

} // namespace
