// load_npy_images and load_npy_tensor: files written by xtensor's dump_npy and hand-made
// headers in a scratch folder; values bitwise as expected for every dtype and both ranks,
// uint8 scaled as the IDX path scales it, labels, every refusal naming the file and the
// field, the size limit, and the loaded datasets feeding ShuffledBatches and a Trainer.
#include "../support.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <xtensor/xnpy.hpp>
#include <xtensor/xtensor.hpp>

#include "forgery/data/npy_dataset.hpp"
#include "forgery/train/trainer.hpp"

namespace {

namespace fs = std::filesystem;
using fg::index_t;
using fg::data::NpyOptions;
using fg::test::error_of;
using fg::test::io_error_of;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The raw bytes of `values`, as a .npy payload holds them on this (little-endian) host.
template <class T>
std::string raw(const std::vector<T>& values) {
  std::string s(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(s.data(), values.data(), s.size());
  return s;
}

// A .npy file by hand: a header dict with these fields (padded to 64 bytes, as numpy pads
// it), then `payload`.
std::string npy(const std::string& descr, const std::string& shape, const std::string& payload, bool fortran = false,
                int version = 1) {
  std::string dict =
      "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': " + shape + ", }";
  const std::size_t pre = version == 1 ? 10 : 12;
  while ((pre + dict.size() + 1) % 64 != 0) dict += ' ';
  dict += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(version);
  out += '\0';
  const std::size_t len = dict.size();
  for (std::size_t i = 0; i < pre - 8; ++i) out += static_cast<char>((len >> (8 * i)) & 0xff);
  return out + dict + payload;
}

fs::path write(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return p;
}

template <class T, std::size_t R>
fs::path dump(const fs::path& p, const xt::xtensor<T, R>& t) {
  xt::dump_npy(p.string(), t);
  return p;
}

// Values in [-1, 1] that are not round in binary: index k -> sin(k).
template <class T, std::size_t R>
xt::xtensor<T, R> sines(const std::array<std::size_t, R>& shape) {
  auto t = xt::xtensor<T, R>::from_shape(shape);
  for (std::size_t k = 0; k < t.size(); ++k) t.data()[k] = static_cast<T>(std::sin(static_cast<double>(k)));
  return t;
}

template <std::size_t R>
xt::xtensor<std::uint8_t, R> bytes_of(const std::array<std::size_t, R>& shape) {
  auto t = xt::xtensor<std::uint8_t, R>::from_shape(shape);
  for (std::size_t k = 0; k < t.size(); ++k) t.data()[k] = static_cast<std::uint8_t>((k * 7) % 256);
  return t;
}

// Every value of `got` is exactly static_cast<S>(want's) (bitwise, through ==: no NaN here).
template <class G, class W>
bool same_values(const G& got, const W& want) {
  using S = typename G::value_type;
  if (got.size() != want.size()) return false;
  for (std::size_t k = 0; k < got.size(); ++k)
    if (got.data()[k] != static_cast<S>(want.data()[k])) return false;
  return true;
}

} // namespace

TEST_CASE_TEMPLATE("load_npy_images and load_npy_tensor read float32 and float64 as they are", S, FORGERY_SCALARS) {
  fg::test::Scratch s;
  // 1.2 million values: several 1 MiB pieces read straight into the tensor, and many
  // 64 KiB pieces for a conversion.
  const std::array<std::size_t, 4> shape4{100, 3, 40, 100};
  const std::array<std::size_t, 2> shape2{1200, 1000};
  const auto f4 = sines<float>(shape4);
  const auto f8 = sines<double>(shape4);
  const auto images4 = fg::data::load_npy_images<S>(dump(s.dir / "f4.npy", f4));
  const auto images8 = fg::data::load_npy_images<S>(dump(s.dir / "f8.npy", f8));
  CHECK(images4.size() == 100);
  CHECK(images4.channels() == 3);
  CHECK(images4.height() == 40);
  CHECK(images4.width() == 100);
  CHECK_FALSE(images4.labelled());
  CHECK(same_values(images4.images(), f4));
  CHECK(same_values(images8.images(), f8));

  const auto flat4 = sines<float>(shape2);
  const auto flat8 = sines<double>(shape2);
  const auto t4 = fg::data::load_npy_tensor<S>(dump(s.dir / "t4.npy", flat4));
  const auto t8 = fg::data::load_npy_tensor<S>(dump(s.dir / "t8.npy", flat8));
  CHECK(t4.size() == 1200);
  CHECK(t4.features() == 1000);
  CHECK(same_values(t4.samples(), flat4));
  CHECK(same_values(t8.samples(), flat8));

  // (N, H, W) is one channel; the ends of the range are accepted.
  xt::xtensor<float, 3> grey = {{{-1.0f, 1.0f}, {0.0f, -0.0f}}};
  const auto g = fg::data::load_npy_images<S>(dump(s.dir / "grey.npy", grey));
  CHECK(g.channels() == 1);
  CHECK(g.height() == 2);
  CHECK(same_values(g.images(), grey));
  CHECK(std::signbit(g.images()(0, 0, 1, 1)));
}

TEST_CASE_TEMPLATE("uint8 is scaled to [-1, 1] exactly as the IDX path scales it", S, FORGERY_SCALARS) {
  fg::test::Scratch s;
  const std::array<std::size_t, 4> shape4{30, 2, 50, 50}; // 150000 bytes: several 64 KiB pieces
  const auto u4 = bytes_of(shape4);
  const auto images = fg::data::load_npy_images<S>(dump(s.dir / "u1.npy", u4));
  const auto table = fg::data::detail::byte_to_unit_table<S>();
  bool all = true;
  for (std::size_t k = 0; k < u4.size(); ++k) all = all && images.images().data()[k] == table[u4.data()[k]];
  CHECK(all);
  CHECK(images.images().data()[0] == S(-1)); // byte 0

  xt::xtensor<std::uint8_t, 2> ends = {{0, 255, 128}, {1, 254, 127}};
  const auto t = fg::data::load_npy_tensor<S>(dump(s.dir / "ends.npy", ends));
  CHECK(t.samples()(0, 0) == S(-1));
  CHECK(t.samples()(0, 1) == S(1));
  CHECK(t.samples()(0, 2) == fg::data::detail::byte_to_unit<S>(128));
  CHECK(t.samples()(1, 2) == fg::data::detail::byte_to_unit<S>(127));

  // A one-byte dtype has no byte order: '<u1' reads as numpy's '|u1'.
  const auto lt = write(s.dir / "lt.npy", npy("<u1", "(1, 2)", std::string("\x00\xff", 2)));
  CHECK(fg::data::load_npy_tensor<S>(lt).samples()(0, 1) == S(1));
}

TEST_CASE("labels: int32, int64 and uint8, counted or given classes, kept with their images") {
  fg::test::Scratch s;
  const auto images = dump(s.dir / "img.npy", bytes_of(std::array<std::size_t, 4>{6, 1, 2, 2}));
  const auto i4 = dump(s.dir / "i4.npy", xt::xtensor<std::int32_t, 1>{0, 1, 2, 0, 1, 4});
  const auto i8 = dump(s.dir / "i8.npy", xt::xtensor<std::int64_t, 1>{0, 1, 2, 0, 1, 4});
  const auto u1 = dump(s.dir / "u1.npy", xt::xtensor<std::uint8_t, 1>{0, 1, 2, 0, 1, 4});
  for (const auto& labels : {i4, i8, u1}) {
    CAPTURE(labels);
    const auto d = fg::data::load_npy_images<float>(images, labels);
    CHECK(d.labelled());
    CHECK(d.classes() == 5);
    CHECK(d.labels() == xt::xtensor<std::int32_t, 1>{0, 1, 2, 0, 1, 4});
    CHECK(fg::data::load_npy_images<double>(images, labels, 10).classes() == 10);
  }

  std::string msg = io_error_of([&] { (void)fg::data::load_npy_images<float>(images, i8, 4); });
  CHECK(has(msg, i8.string()));
  CHECK(has(msg, "label 4 at index 5 is not below the class count 4"));
  const auto negative = dump(s.dir / "neg.npy", xt::xtensor<std::int64_t, 1>{0, 1, -1, 0, 1, 2});
  msg = io_error_of([&] { (void)fg::data::load_npy_images<float>(images, negative); });
  CHECK(has(msg, negative.string()));
  CHECK(has(msg, "label -1 at index 2 is negative"));
  const auto huge = dump(s.dir / "huge.npy", xt::xtensor<std::int64_t, 1>{0, 1, std::int64_t{1} << 40, 0, 1, 2});
  msg = io_error_of([&] { (void)fg::data::load_npy_images<float>(images, huge); });
  CHECK(has(msg, "label 1099511627776 at index 2 is above the largest class index"));

  const auto five = dump(s.dir / "five.npy", xt::xtensor<std::int32_t, 1>{0, 1, 2, 0, 1});
  msg = io_error_of([&] { (void)fg::data::load_npy_images<float>(images, five); });
  CHECK(has(msg, five.string()));
  CHECK(has(msg, "has 5 labels but " + images.string() + " has 6 images: expected one label per image"));

  const auto f4 = dump(s.dir / "f4labels.npy", xt::xtensor<float, 1>{0, 1, 2, 0, 1, 4});
  msg = io_error_of([&] { (void)fg::data::load_npy_images<float>(images, f4); });
  CHECK(has(msg, f4.string()));
  CHECK(has(msg, "dtype '<f4', expected '<i4' (int32), '<i8' (int64) or '|u1' (uint8) labels"));
  const auto two_d = dump(s.dir / "2d.npy", xt::xtensor<std::int32_t, 2>{{0, 1, 2}, {0, 1, 4}});
  msg = io_error_of([&] { (void)fg::data::load_npy_images<float>(images, two_d); });
  CHECK(has(msg, "shape (2, 3), expected labels of shape (N,)"));
  const auto truncated = write(s.dir / "cut.npy", npy("<i4", "(6,)", raw(std::vector<std::int32_t>{0, 1, 2, 0, 1})));
  msg = io_error_of([&] { (void)fg::data::load_npy_images<float>(images, truncated); });
  CHECK(has(msg, truncated.string()));
  CHECK(has(msg, "truncated: header promises 24 payload bytes (shape (6,) of int32), the file has 20"));
  CHECK(
      has(error_of([&] { (void)fg::data::load_npy_images<float>(images, i4, -1); }), "'load_npy_images classes' = -1"));
}

TEST_CASE("refusals name the file and what was expected and found") {
  fg::test::Scratch s;
  const std::string four = raw(std::vector<float>{0.5f, -0.5f, 0.25f, 0.0f});
  const auto images_of = [](const fs::path& p) {
    return io_error_of([&] { (void)fg::data::load_npy_images<float>(p); });
  };
  const auto tensor_of = [](const fs::path& p) {
    return io_error_of([&] { (void)fg::data::load_npy_tensor<float>(p); });
  };
  const auto check = [&](const std::string& msg, const fs::path& p, const std::string& part) {
    CAPTURE(msg);
    CHECK(has(msg, p.string()));
    CHECK(has(msg, part));
  };

  const std::string expected = "expected '|u1' (uint8, scaled to [-1, 1]), '<f4' (float32) or '<f8' (float64)";
  const auto big = write(s.dir / "big.npy", npy(">f4", "(1, 4)", four));
  check(tensor_of(big), big, "dtype '>f4' (big-endian), " + expected);
  const auto half = write(s.dir / "half.npy", npy("<f2", "(1, 4)", four.substr(0, 8)));
  check(images_of(half), half, "dtype '<f2', " + expected);
  const auto ints = dump(s.dir / "ints.npy", xt::xtensor<std::int32_t, 2>{{1, 2}});
  check(tensor_of(ints), ints, "dtype '<i4', " + expected);

  const auto fortran = write(s.dir / "fortran.npy", npy("<f4", "(2, 2)", four, true));
  check(tensor_of(fortran), fortran, "fortran_order is True, expected C order");

  const auto flat = write(s.dir / "flat.npy", npy("<f4", "(1, 4)", four));
  check(images_of(flat), flat, "shape (1, 4), expected images: 4 dimensions (N, C, H, W) or 3 (N, H, W)");
  const auto four_d = write(s.dir / "4d.npy", npy("<f4", "(1, 1, 2, 2)", four));
  check(tensor_of(four_d), four_d, "shape (1, 1, 2, 2), expected 2 dimensions (N, F)");
  const auto scalar = write(s.dir / "scalar.npy", npy("<f4", "()", four.substr(0, 4)));
  check(tensor_of(scalar), scalar, "shape (), expected 2 dimensions (N, F)");

  const auto none = write(s.dir / "none.npy", npy("<f4", "(0, 4)", ""));
  check(tensor_of(none), none, "shape (0, 4) has no values: every extent, N included, must be positive");
  const auto empty = write(s.dir / "empty.npy", npy("<f4", "(3, 1, 0, 2)", ""));
  check(images_of(empty), empty, "shape (3, 1, 0, 2) has no values");

  const auto cut = write(s.dir / "cut.npy", npy("<f4", "(2, 4)", four + four.substr(0, 15)));
  check(tensor_of(cut), cut, "truncated: header promises 32 payload bytes (shape (2, 4) of float32), the file has 31");
  const auto trailing = write(s.dir / "trailing.npy", npy("<f4", "(1, 4)", four + "x"));
  check(tensor_of(trailing), trailing, "trailing bytes: header promises 16 payload bytes");
  check(tensor_of(trailing), trailing, "the file has 1 more");

  // Extents whose product wraps 2^64 are above any limit, even the largest.
  const auto wraps = write(s.dir / "wraps.npy", npy("<f4", "(4611686018427387904, 4611686018427387905)", four));
  check(tensor_of(wraps), wraps, "header promises shape (4611686018427387904, 4611686018427387905) of float32 = ");
  check(tensor_of(wraps), wraps, "above the limit of 268435456 bytes (NpyOptions::max_bytes");
  const std::string all = io_error_of([&] {
    (void)fg::data::load_npy_tensor<double>(wraps, {.max_bytes = std::numeric_limits<std::uint64_t>::max()});
  });
  check(all, wraps, "above the limit of 18446744073709551615 bytes");
  // A header that promises far more than the file holds is refused before anything is allocated.
  const auto promise = write(s.dir / "promise.npy", npy("|u1", "(20000, 3, 64, 64)", "abc"));
  check(images_of(promise), promise,
        "truncated: header promises 245760000 payload bytes (shape (20000, 3, 64, 64) of uint8), the file has 3");
  const auto many = write(s.dir / "many.npy", npy("|u1", "(4294967296, 1)", ""));
  check(io_error_of([&] { (void)fg::data::load_npy_tensor<float>(many, {.max_bytes = std::uint64_t{1} << 40}); }), many,
        "the file has 0");

  const auto foreign = write(s.dir / "foreign.npy", std::string("PK\x03\x04 a zip file, not an array", 30));
  check(tensor_of(foreign), foreign, "not a .npy file: expected the magic \\x93NUMPY");
  const auto tiny = write(s.dir / "tiny.npy", "\x93NUM");
  check(tensor_of(tiny), tiny, "not a .npy file");
  const auto v9 = write(s.dir / "v9.npy", npy("<f4", "(1, 4)", four, false, 9));
  check(tensor_of(v9), v9, "unsupported .npy format version 9");
  std::string long_header = npy("<f4", "(1, 4)", four, false, 2);
  long_header[8] = '\0';
  long_header[9] = '\0';
  long_header[10] = '\x10'; // 1 MiB
  const auto huge_header = write(s.dir / "huge_header.npy", long_header);
  check(tensor_of(huge_header), huge_header, "a .npy header of 1048588 bytes, expected at most 65547");
  const std::string whole = npy("<f4", "(1, 4)", four);
  const auto cut_header = write(s.dir / "cut_header.npy", whole.substr(0, 40));
  check(tensor_of(cut_header), cut_header, "truncated .npy header: it promises 118 bytes, the file has 30");
  std::string misspelt = npy("<f4", "(1, 4)", four);
  misspelt.replace(misspelt.find("'shape'"), 7, "'shapx'");
  const auto no_shape = write(s.dir / "no_shape.npy", misspelt);
  check(tensor_of(no_shape), no_shape, "malformed .npy header: no 'shape'");
  // The header parser is io::detail::parse_npy_header, as for weights: a file it reads is
  // also a file load_npy_tensor reads (version 2 here).
  CHECK(fg::data::load_npy_tensor<float>(write(s.dir / "v2.npy", npy("<f4", "(1, 4)", four, false, 2))).size() == 1);

  check(tensor_of(s.dir / "missing.npy"), s.dir / "missing.npy", "cannot open: no such file");
  check(tensor_of(s.dir), s.dir, "not a .npy file: it is a directory (only regular files are read)");
  if (fs::exists("/dev/zero")) check(tensor_of("/dev/zero"), "/dev/zero", "it is a character device");
}

TEST_CASE("values: finite and within the range asked for, else the first offender is named") {
  fg::test::Scratch s;
  const auto file = [&](const std::string& name, const std::vector<float>& v) {
    return write(s.dir / name, npy("<f4", "(2, 3)", raw(v)));
  };
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const auto has_nan = file("nan.npy", {0, 0.5f, 2.0f, 0, nan, 0});
  // The first offender in file order: 2 at index 2, not the NaN at 4.
  std::string msg = io_error_of([&] { (void)fg::data::load_npy_tensor<float>(has_nan); });
  CHECK(has(msg, has_nan.string()));
  CHECK(has(msg, "value 2 at index 2 (sample 0, value 2) is outside [-1, 1] (NpyOptions::low and high"));
  // Without the range check the NaN is still refused.
  msg = io_error_of([&] { (void)fg::data::load_npy_tensor<double>(has_nan, {.check_range = false}); });
  CHECK(has(msg, "value nan at index 4 (sample 1, value 1) is not finite"));
  const auto has_inf = file("inf.npy", {0, 0, 0, 0, 0, -inf});
  msg = io_error_of([&] { (void)fg::data::load_npy_images<float>(has_inf, {.check_range = false}); });
  CHECK(has(msg, "expected images")); // (2, 3) is not an image array
  msg = io_error_of([&] { (void)fg::data::load_npy_tensor<float>(has_inf, {.check_range = false}); });
  CHECK(has(msg, "value -inf at index 5 (sample 1, value 2) is not finite"));

  const auto wide = file("wide.npy", {0, 0.5f, 2.0f, 0, 1.5f, 0.125f});
  CHECK(fg::data::load_npy_tensor<float>(wide, {.check_range = false}).samples()(1, 1) == 1.5f);
  CHECK(fg::data::load_npy_tensor<double>(wide, {.low = 0, .high = 2}).samples()(0, 2) == 2.0);
  msg = io_error_of([&] { (void)fg::data::load_npy_tensor<float>(wide, {.low = 0.25, .high = 2}); });
  CHECK(has(msg, "value 0 at index 0 (sample 0, value 0) is outside [0.25, 2]"));
  CHECK(has(error_of([&] { (void)fg::data::load_npy_tensor<float>(wide, {.low = 1, .high = 0}); }),
            "'NpyOptions low, high' = 1, 0: expected low <= high"));

  // float64 values: checked as they are in the file, before they become S.
  const auto doubles =
      write(s.dir / "f8.npy", npy("<f8", "(1, 3)", raw(std::vector<double>{0.1, 1e300, 1.0000000001})));
  msg = io_error_of([&] { (void)fg::data::load_npy_tensor<float>(doubles); });
  CHECK(has(msg, "value 1e+300 at index 1 (sample 0, value 1) is outside [-1, 1]"));
  msg = io_error_of([&] { (void)fg::data::load_npy_tensor<float>(doubles, {.check_range = false}); });
  CHECK(has(msg, "value 1e+300 at index 1 does not fit float32"));
  CHECK(fg::data::load_npy_tensor<double>(doubles, {.check_range = false}).samples()(0, 1) == 1e300);
  CHECK(error_of([&] { (void)fg::data::load_npy_tensor<double>(doubles, {.low = -1, .high = 1e301}); }).empty());
  const auto just_over = write(s.dir / "over.npy", npy("<f8", "(1, 1)", raw(std::vector<double>{1.0000000001})));
  msg = io_error_of([&] { (void)fg::data::load_npy_tensor<float>(just_over); });
  CHECK(has(msg, "value 1.0000000001 at index 0"));
}

TEST_CASE("the network's sample shape: checked, with both shapes in the error") {
  fg::test::Scratch s;
  const auto images = dump(s.dir / "img.npy", bytes_of(std::array<std::size_t, 4>{5, 3, 4, 2}));
  CHECK(fg::data::load_npy_images<float, fg::Shape<3, 4, 2>>(images).size() == 5);
  CHECK(fg::data::load_npy_images<float, fg::Shape<24>>(images).features() == 24); // a flat network
  std::string msg = io_error_of([&] { (void)fg::data::load_npy_images<float, fg::Shape<1, 28, 28>>(images); });
  CHECK(has(msg, images.string()));
  CHECK(has(msg, "samples of shape (3, 4, 2) (file shape (5, 3, 4, 2)), expected samples of shape (1, 28, 28)"));
  msg = io_error_of([&] { (void)fg::data::load_npy_images<float, fg::Shape<784>>(images); });
  CHECK(has(msg, "samples of shape (3, 4, 2) (file shape (5, 3, 4, 2)), expected samples of shape (784,)"));
  // Checked with the labels too, before either file's values are read.
  const auto labels = dump(s.dir / "lab.npy", xt::xtensor<std::uint8_t, 1>{0, 1, 0, 1, 0});
  CHECK(fg::data::load_npy_images<double, fg::Shape<3, 4, 2>>(images, labels).classes() == 2);
  CHECK(has(io_error_of([&] { (void)fg::data::load_npy_images<float, fg::Shape<3, 2, 4>>(images, labels); }),
            "expected samples of shape (3, 2, 4)"));

  const auto flat = dump(s.dir / "flat.npy", sines<float>(std::array<std::size_t, 2>{4, 6}));
  CHECK(fg::data::load_npy_tensor<double, fg::Shape<6>>(flat).features() == 6);
  msg = io_error_of([&] { (void)fg::data::load_npy_tensor<float, fg::Shape<2>>(flat); });
  CHECK(has(msg, flat.string()));
  CHECK(has(msg, "samples of shape (6,) (file shape (4, 6)), expected samples of shape (2,)"));
  // A shape that is wrong and a file that is short: the shape is named, as the likelier mistake.
  const auto short_file = write(s.dir / "short.npy", npy("<f4", "(100, 6)", ""));
  CHECK(has(io_error_of([&] { (void)fg::data::load_npy_tensor<float, fg::Shape<2>>(short_file); }),
            "expected samples of shape (2,)"));
}

TEST_CASE("the limit: checked before allocating, raised by the caller") {
  fg::test::Scratch s;
  const auto f8 = dump(s.dir / "f8.npy", sines<double>(std::array<std::size_t, 4>{10, 1, 2, 2}));
  // 40 values of 8 bytes: 320 payload bytes.
  const std::string msg = io_error_of([&] { (void)fg::data::load_npy_images<float>(f8, {.max_bytes = 319}); });
  CHECK(has(msg, f8.string()));
  CHECK(has(msg, "header promises shape (10, 1, 2, 2) of float64 = 320 bytes, above the limit of 319 bytes "
                 "(NpyOptions::max_bytes; pass a larger one to load larger files)"));
  CHECK(fg::data::load_npy_images<float>(f8, {.max_bytes = 320}).size() == 10);
  // The labels are under the same limit: 10 int64 labels are 80 bytes, 10 uint8 images 40.
  const auto u1 = dump(s.dir / "u1.npy", bytes_of(std::array<std::size_t, 4>{10, 1, 2, 2}));
  const auto labels = dump(s.dir / "lab.npy", xt::xtensor<std::int64_t, 1>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  const std::string label_msg =
      io_error_of([&] { (void)fg::data::load_npy_images<float>(u1, labels, 0, {.max_bytes = 79}); });
  CHECK(has(label_msg, labels.string()));
  CHECK(has(label_msg, "shape (10,) of int64 = 80 bytes, above the limit of 79 bytes"));
  CHECK(fg::data::load_npy_images<float>(u1, labels, 0, {.max_bytes = 80}).classes() == 1);
}

TEST_CASE("loaded datasets feed ShuffledBatches and a Trainer") {
  static_assert(fg::DataSource<fg::data::TensorDataset<float, 2>, float>);
  fg::test::Scratch s;
  // Image i's four pixels are the bytes 20 i + k, its label i % 3.
  auto pixels = xt::xtensor<std::uint8_t, 4>::from_shape({10, 1, 2, 2});
  auto labels = xt::xtensor<std::int32_t, 1>::from_shape({10});
  for (std::size_t i = 0; i < 10; ++i) {
    for (std::size_t k = 0; k < 4; ++k) pixels.data()[4 * i + k] = static_cast<std::uint8_t>(20 * i + k);
    labels(i) = static_cast<std::int32_t>(i % 3);
  }
  using G = fg::Sequential<fg::Input<2>, fg::Dense<4>, fg::Tanh>;
  using D = fg::Sequential<fg::Input<4>, fg::Dense<4>, fg::LeakyReLU<>, fg::Dense<1>>;
  const auto d = fg::data::load_npy_images<float, D::input_shape>(dump(s.dir / "img.npy", pixels),
                                                                  dump(s.dir / "lab.npy", labels));
  fg::data::ShuffledBatches<float> batches(d);
  fg::RandomStream rng{7, 1, 0};
  std::vector<float> out(4 * 10);
  std::vector<std::int32_t> drawn(10);
  batches.sample(rng, fg::BatchView<float>(out.data(), 4, 10), drawn);
  std::vector<int> seen(10, 0);
  for (std::size_t j = 0; j < 10; ++j) {
    const long first = std::lround((out[4 * j] + 1.0) * 127.5);
    CHECK(first % 20 == 0);
    CHECK(std::lround((out[4 * j + 3] + 1.0) * 127.5) == first + 3);
    CHECK(drawn[j] == (first / 20) % 3);
    ++seen[static_cast<std::size_t>(first / 20)];
  }
  CHECK(seen == std::vector<int>(10, 1)); // one epoch: every image once

  fg::Trainer<G, D, fg::loss::NonSaturating> trainer({.batch = 4, .seed = 5});
  fg::data::ShuffledBatches<float> fed(d);
  trainer.fit(fed, 3);
  CHECK(fed.position(*trainer.random_streams()[1]) == fg::data::ShuffledBatches<float>::Position{1, 2});

  // An (N, F) file as a TensorDataset, drawn with replacement by the Trainer.
  const auto t = fg::data::load_npy_tensor<float, D::input_shape>(
      dump(s.dir / "flat.npy", sines<double>(std::array<std::size_t, 2>{50, 4})));
  fg::Trainer<G, D, fg::loss::NonSaturating> flat_trainer({.batch = 8, .seed = 5});
  flat_trainer.fit(t, 3);
  CHECK(std::isfinite(flat_trainer.generator().params()[0]));
}
