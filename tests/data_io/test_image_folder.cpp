// load_image_folder: real PNG, BMP and JPEG files written with stb_image_write into a scratch
// folder; decoded values, grey/RGB conversion, resizing and cropping, labels from class
// subfolders, order, every refusal, skipping, the pixel limit before decoding, and the
// .npy cache (used, invalidated, damaged and rebuilt).
#include "../support.hpp"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif
#include <stb_image_write.h>

#include "forgery/data/image_folder.hpp"

namespace {

namespace fs = std::filesystem;
using fg::index_t;
using fg::data::FolderLayout;
using fg::data::ImageFolderOptions;
using fg::data::OnBadFile;
using Folder = fg::data::ImageFolder<float>;

std::vector<std::uint8_t> solid(int w, int h, std::vector<std::uint8_t> colour) {
  std::vector<std::uint8_t> px;
  for (int i = 0; i < w * h; ++i) px.insert(px.end(), colour.begin(), colour.end());
  return px;
}

void write_png(const fs::path& p, int w, int h, int c, const std::vector<std::uint8_t>& px) {
  fs::create_directories(p.parent_path());
  REQUIRE(stbi_write_png(p.c_str(), w, h, c, px.data(), w * c) != 0);
}

void write_bytes(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

float unit(int b) { return fg::data::detail::byte_to_unit<float>(static_cast<std::uint8_t>(b)); }

/// Every value of channel `c` of image `i`.
std::vector<float> channel(const Folder& f, index_t i, index_t c) {
  const auto& d = f.dataset;
  const float* p = d.images().data() + (i * d.channels() + c) * d.height() * d.width();
  return {p, p + d.height() * d.width()};
}

bool all_equal(const std::vector<float>& v, float x) {
  return std::all_of(v.begin(), v.end(), [x](float y) { return y == x; });
}

/// Everything under `dir`, with sizes and times: to prove a load modified nothing.
std::vector<std::string> snapshot(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out.push_back(e.path().string() + " " + (e.is_regular_file() ? std::to_string(e.file_size()) : "dir") + " " +
                  std::to_string(e.last_write_time().time_since_epoch().count()));
  std::sort(out.begin(), out.end());
  return out;
}

/// Two classes of small images in four formats (and a text file, ignored).
fs::path make_classes(const fs::path& root) {
  write_png(root / "cats" / "a.png", 40, 20, 3, solid(40, 20, {200, 30, 90}));
  REQUIRE(stbi_write_bmp((root / "cats" / "b.bmp").c_str(), 8, 8, 3, solid(8, 8, {10, 250, 0}).data()) != 0);
  write_bytes(root / "cats" / "readme.txt", "not an image");
  fs::create_directories(root / "dogs");
  REQUIRE(stbi_write_jpg((root / "dogs" / "c.jpg").c_str(), 16, 16, 3, solid(16, 16, {128, 64, 32}).data(), 95) != 0);
  write_png(root / "dogs" / "D.PNG", 16, 16, 1, solid(16, 16, {77}));
  return root;
}

} // namespace

TEST_CASE("load_image_folder: class subfolders give labels, names and a sorted order; values are scaled exactly") {
  fg::test::Scratch s;
  const fs::path root = make_classes(s.dir / "pets");
  const auto before = snapshot(root);
  ImageFolderOptions o;
  o.height = o.width = 16;
  const Folder f = fg::data::load_image_folder<float>(root, o);
  CHECK(snapshot(root) == before);
  REQUIRE(f.dataset.size() == 4);
  CHECK(f.dataset.channels() == 3);
  CHECK(f.dataset.height() == 16);
  CHECK(f.dataset.width() == 16);
  CHECK(f.class_names == std::vector<std::string>{"cats", "dogs"});
  CHECK(f.dataset.classes() == 2);
  REQUIRE(f.files.size() == 4);
  // Bytewise name order: "D.PNG" comes before "c.jpg".
  CHECK(f.files[0].filename() == "a.png");
  CHECK(f.files[1].filename() == "b.bmp");
  CHECK(f.files[2].filename() == "D.PNG");
  CHECK(f.files[3].filename() == "c.jpg");
  CHECK(f.dataset.labels()(0) == 0);
  CHECK(f.dataset.labels()(1) == 0);
  CHECK(f.dataset.labels()(2) == 1);
  CHECK(f.dataset.labels()(3) == 1);
  CHECK(f.skipped.empty());
  CHECK(f.cache == Folder::Cache::off);

  // A solid colour stays exactly that colour through the 40x20 -> 16x16 resize and crop.
  CHECK(all_equal(channel(f, 0, 0), unit(200)));
  CHECK(all_equal(channel(f, 0, 1), unit(30)));
  CHECK(all_equal(channel(f, 0, 2), unit(90)));
  // BMP, upscaled 8 -> 16.
  CHECK(all_equal(channel(f, 1, 0), unit(10)));
  CHECK(all_equal(channel(f, 1, 1), unit(250)));
  CHECK(all_equal(channel(f, 1, 2), unit(0)));
  // Grey PNG to RGB: the grey value in every channel.
  for (index_t c = 0; c < 3; ++c) CHECK(all_equal(channel(f, 2, c), unit(77)));
  // JPEG is lossy: close to the colour written.
  const int jpeg[3] = {128, 64, 32};
  for (index_t c = 0; c < 3; ++c)
    for (const float v : channel(f, 3, c)) CHECK(std::abs(v - unit(jpeg[c])) <= 4 / 127.5f);
}

TEST_CASE("load_image_folder: grey from RGB by stb's BT.601 luma, alpha dropped, flat folders unlabelled") {
  fg::test::Scratch s;
  const fs::path root = s.dir / "flat";
  write_png(root / "rgb.png", 12, 12, 3, solid(12, 12, {200, 30, 90}));
  write_png(root / "rgba.png", 12, 12, 4, solid(12, 12, {10, 20, 30, 0}));
  ImageFolderOptions o;
  o.channels = 1;
  o.height = o.width = 12;
  const Folder grey = fg::data::load_image_folder<float>(root, o);
  REQUIRE(grey.dataset.size() == 2);
  CHECK_FALSE(grey.dataset.labelled());
  CHECK(grey.class_names.empty());
  CHECK(grey.dataset.channels() == 1);
  CHECK(all_equal(channel(grey, 0, 0), unit((77 * 200 + 150 * 30 + 29 * 90) >> 8)));
  CHECK(all_equal(channel(grey, 1, 0), unit((77 * 10 + 150 * 20 + 29 * 30) >> 8)));
  o.channels = 3;
  const auto rgb = fg::data::load_image_folder<double>(root, o);
  const double* p = rgb.dataset.images().data() + 3 * 144; // image 1: RGBA with alpha 0
  CHECK(p[0] == fg::data::detail::byte_to_unit<double>(10));
  CHECK(p[144] == fg::data::detail::byte_to_unit<double>(20));
  CHECK(p[288] == fg::data::detail::byte_to_unit<double>(30));
}

TEST_CASE("load_image_folder: a wide image keeps its centre, a tall one too, and any target aspect") {
  fg::test::Scratch s;
  const fs::path root = s.dir / "shapes";
  // 40 x 10: red, green, blue bands of 15, 10 and 15 columns; the 10 x 10 centre is green.
  std::vector<std::uint8_t> wide;
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 40; ++x) {
      const bool r = x < 15, g = x >= 15 && x < 25;
      wide.insert(wide.end(), {std::uint8_t(r ? 255 : 0), std::uint8_t(g ? 255 : 0), std::uint8_t(r || g ? 0 : 255)});
    }
  write_png(root / "a_wide.png", 40, 10, 3, wide);
  // 10 x 40 grey: black above row 20, white from it: the centre's top half is black.
  std::vector<std::uint8_t> tall;
  for (int y = 0; y < 40; ++y)
    for (int x = 0; x < 10; ++x) tall.push_back(y < 20 ? 0 : 255);
  write_png(root / "b_tall.png", 10, 40, 1, tall);
  ImageFolderOptions o;
  o.height = o.width = 10;
  const Folder f = fg::data::load_image_folder<float>(root, o);
  REQUIRE(f.dataset.size() == 2);
  const auto r = channel(f, 0, 0), g = channel(f, 0, 1);
  for (int y = 0; y < 10; ++y)
    for (int x = 2; x < 8; ++x) { // the filter blends two columns at each edge
      CHECK(g[static_cast<std::size_t>(y * 10 + x)] == 1.0f);
      CHECK(r[static_cast<std::size_t>(y * 10 + x)] == -1.0f);
    }
  const auto t = channel(f, 1, 0);
  for (int x = 0; x < 10; ++x) {
    CHECK(t[static_cast<std::size_t>(x)] == -1.0f);
    CHECK(t[static_cast<std::size_t>(90 + x)] == 1.0f);
  }
  // A 16 x 8 target from a 16 x 16 image: the middle 8 rows.
  fg::test::Scratch s2;
  std::vector<std::uint8_t> band;
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x) band.push_back(y >= 4 && y < 12 ? 255 : 0);
  write_png(s2.dir / "band" / "x.png", 16, 16, 1, band);
  o.channels = 1;
  o.height = 8;
  o.width = 16;
  const Folder b = fg::data::load_image_folder<float>(s2.dir / "band", o);
  CHECK(b.dataset.height() == 8);
  CHECK(b.dataset.width() == 16);
  const auto v = channel(b, 0, 0);
  for (int x = 0; x < 16; ++x)
    for (int y = 2; y < 6; ++y) CHECK(v[static_cast<std::size_t>(y * 16 + x)] == 1.0f);
}

TEST_CASE("load_image_folder: the same bytes for any thread count") {
  fg::test::Scratch s;
  const fs::path root = s.dir / "many";
  for (int i = 0; i < 24; ++i) {
    std::vector<std::uint8_t> px;
    for (int k = 0; k < 20 * 14 * 3; ++k) px.push_back(static_cast<std::uint8_t>((k * 7 + i * 31) % 256));
    write_png(root / (std::to_string(100 + i) + ".png"), 20, 14, 3, px);
  }
  ImageFolderOptions o;
  o.height = o.width = 9;
#if defined(_OPENMP)
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
#endif
  const Folder one = fg::data::load_image_folder<float>(root, o);
#if defined(_OPENMP)
  omp_set_num_threads(std::max(2, threads));
#endif
  const Folder many = fg::data::load_image_folder<float>(root, o);
#if defined(_OPENMP)
  omp_set_num_threads(threads);
#endif
  REQUIRE(one.dataset.size() == 24);
  CHECK(std::equal(one.dataset.images().begin(), one.dataset.images().end(), many.dataset.images().begin()));
  CHECK(one.files == many.files);
}

TEST_CASE("load_image_folder: refusals name the folder or the file") {
  fg::test::Scratch s;
  using fg::test::io_error_of;
  const auto load = [](const fs::path& p, ImageFolderOptions o = {}) {
    return [p, o] { (void)fg::data::load_image_folder<float>(p, o); };
  };
  const fs::path missing = s.dir / "missing";
  CHECK(io_error_of(load(missing)).find(missing.string() + ": no such folder") != std::string::npos);

  write_bytes(s.dir / "file.png", "x");
  CHECK(io_error_of(load(s.dir / "file.png")).find("is a file, not a folder") != std::string::npos);

  fs::create_directories(s.dir / "empty");
  CHECK(io_error_of(load(s.dir / "empty")).find("empty folder: no images (accepted: .png, .jpg") != std::string::npos);

  for (const char* name : {"a.txt", "b.gif", "c"}) write_bytes(s.dir / "text" / name, "hello");
  const std::string text = io_error_of(load(s.dir / "text"));
  CHECK(text.find("no images among the 3 files") != std::string::npos);
  CHECK(text.find(".jpeg, .bmp (any case)") != std::string::npos);

  write_png(s.dir / "mixed" / "x.png", 4, 4, 1, solid(4, 4, {1}));
  write_png(s.dir / "mixed" / "sub" / "y.png", 4, 4, 1, solid(4, 4, {1}));
  CHECK(io_error_of(load(s.dir / "mixed")).find("holds both images (1) and subfolders (1)") != std::string::npos);
  ImageFolderOptions flat;
  flat.layout = FolderLayout::flat;
  CHECK(fg::data::load_image_folder<float>(s.dir / "mixed", flat).dataset.size() == 1);
  ImageFolderOptions classes;
  classes.layout = FolderLayout::classes;
  CHECK(fg::data::load_image_folder<float>(s.dir / "mixed", classes).class_names == std::vector<std::string>{"sub"});

  write_png(s.dir / "hollow" / "full" / "y.png", 4, 4, 1, solid(4, 4, {1}));
  write_bytes(s.dir / "hollow" / "none" / "notes.txt", "x");
  const std::string hollow = io_error_of(load(s.dir / "hollow"));
  CHECK(hollow.find((s.dir / "hollow" / "none").string() + ": class folder holds no images") != std::string::npos);

  write_png(s.dir / "bad" / "good.png", 4, 4, 3, solid(4, 4, {1, 2, 3}));
  write_bytes(s.dir / "bad" / "junk.png", "this is not a PNG file at all");
  const std::string junk = io_error_of(load(s.dir / "bad"));
  CHECK(junk.find((s.dir / "bad" / "junk.png").string() + ": cannot read its header (stb_image: ") !=
        std::string::npos);

  ImageFolderOptions bad_channels;
  bad_channels.channels = 2;
  CHECK(fg::test::error_of(load(s.dir / "bad", bad_channels)).find("ImageFolderOptions.channels") != std::string::npos);
}

TEST_CASE("load_image_folder: OnBadFile::skip leaves bad files out with a warning") {
  fg::test::Scratch s;
  const fs::path root = s.dir / "bad";
  write_png(root / "good.png", 4, 4, 3, solid(4, 4, {1, 2, 3}));
  write_bytes(root / "junk.jpg", "not a JPEG");
  // A real PNG cut after its header: stbi_info passes, decoding fails.
  write_png(s.dir / "whole.png", 64, 64, 3, solid(64, 64, {9, 9, 9}));
  write_bytes(root / "cut.png", read_bytes(s.dir / "whole.png").substr(0, 40));
  ImageFolderOptions o;
  o.height = o.width = 4;
  const std::string cut = fg::test::io_error_of([&] { (void)fg::data::load_image_folder<float>(root, o); });
  CHECK(cut.find((root / "cut.png").string() + ": cannot decode it (stb_image: ") != std::string::npos);
  o.on_bad_file = OnBadFile::skip;
  const Folder f = fg::data::load_image_folder<float>(root, o);
  CHECK(f.dataset.size() == 1);
  CHECK(f.files == std::vector<fs::path>{fs::canonical(root) / "good.png"});
  CHECK(f.skipped == std::vector<fs::path>{fs::canonical(root) / "cut.png", fs::canonical(root) / "junk.jpg"});
  fs::remove(root / "good.png");
  const std::string none = fg::test::io_error_of([&] { (void)fg::data::load_image_folder<float>(root, o); });
  CHECK(none.find("none of its 2 images could be used") != std::string::npos);
}

TEST_CASE("load_image_folder: the pixel limit refuses from the header, before decoding") {
  fg::test::Scratch s;
  const fs::path root = s.dir / "big";
  write_png(s.dir / "small.png", 8, 8, 1, solid(8, 8, {5}));
  // The same PNG with its header saying 30000 x 20000 (stb_image does not check chunk
  // CRCs): decoding it would fail, so a refusal that names the size proves none was tried.
  std::string png = read_bytes(s.dir / "small.png");
  const auto put32 = [&](std::size_t at, std::uint32_t v) {
    for (int k = 0; k < 4; ++k) png[at + static_cast<std::size_t>(k)] = static_cast<char>((v >> (24 - 8 * k)) & 0xff);
  };
  put32(16, 30000);
  put32(20, 20000);
  write_bytes(root / "huge.png", png);
  const std::string e = fg::test::io_error_of([&] { (void)fg::data::load_image_folder<float>(root); });
  CHECK(e.find((root / "huge.png").string() + ": 30000 x 20000 = 600000000 pixels, above the limit of 67108864") !=
        std::string::npos);
  CHECK(e.find("not decoded") != std::string::npos);
  // A real image over a lowered limit.
  fs::remove(root / "huge.png");
  write_png(root / "real.png", 100, 50, 3, solid(100, 50, {1, 2, 3}));
  ImageFolderOptions o;
  o.max_pixels = 4999;
  CHECK(fg::test::io_error_of([&] {
          (void)fg::data::load_image_folder<float>(root, o);
        }).find("100 x 50 = 5000 pixels, above the limit of 4999") != std::string::npos);
  o.max_pixels = 5000;
  CHECK(fg::data::load_image_folder<float>(root, o).dataset.size() == 1);
}

TEST_CASE("load_image_folder: the cache is used, keyed by options and files, and rebuilt when damaged") {
  fg::test::Scratch s;
  const fs::path root = make_classes(s.dir / "pets");
  const auto before = snapshot(root);
  ImageFolderOptions o;
  o.height = o.width = 16;
  o.cache = true;
  const auto load = [&] { return fg::data::load_image_folder<float>(root, o); };
  const Folder first = load();
  CHECK(first.cache == Folder::Cache::written);
  CHECK(first.cache_problem.empty());
  CHECK(first.cache_key_file.parent_path() == fs::canonical(s.dir) / "pets.forgery-cache");
  CHECK(fs::exists(first.cache_key_file.parent_path() / "c3_16x16_classes.images.npy"));
  CHECK(snapshot(root) == before); // the cache lies beside the folder, not in it

  Folder second = load();
  CHECK(second.cache == Folder::Cache::loaded);
  CHECK(second.dataset.images() == first.dataset.images());
  CHECK(second.dataset.labels() == first.dataset.labels());
  CHECK(second.class_names == first.class_names);
  CHECK(second.files == first.files);

  // New content with the same size and time is not seen: proof the cache was read.
  const fs::path a = root / "cats" / "a.png";
  const auto when = fs::last_write_time(a);
  std::string bytes = read_bytes(a);
  write_png(s.dir / "other.png", 40, 20, 3, solid(40, 20, {1, 2, 3}));
  const std::string other = read_bytes(s.dir / "other.png");
  REQUIRE(other.size() == bytes.size());
  write_bytes(a, other);
  fs::last_write_time(a, when);
  CHECK(load().cache == Folder::Cache::loaded);
  CHECK(all_equal(channel(load(), 0, 0), unit(200)));
  // A new time is seen.
  fs::last_write_time(a, when + std::chrono::seconds(5));
  second = load();
  CHECK(second.cache == Folder::Cache::written);
  CHECK(all_equal(channel(second, 0, 0), unit(1)));
  CHECK(load().cache == Folder::Cache::loaded);
  // A removed file is seen.
  fs::remove(root / "cats" / "b.bmp");
  second = load();
  CHECK(second.cache == Folder::Cache::written);
  CHECK(second.dataset.size() == 3);
  // Other sizes or channels: another cache file; other options: rebuilt.
  o.channels = 1;
  CHECK(load().cache == Folder::Cache::written);
  CHECK(load().cache == Folder::Cache::loaded);
  o.on_bad_file = OnBadFile::skip;
  CHECK(load().cache == Folder::Cache::written);
  // Back to the first options: their cache file is still current.
  o.channels = 3;
  o.on_bad_file = OnBadFile::refuse;
  CHECK(load().cache == Folder::Cache::loaded);

  // Damaged caches are reported and rebuilt, never used.
  const fs::path images = second.cache_key_file.parent_path() / "c3_16x16_classes.images.npy";
  const fs::path labels = second.cache_key_file.parent_path() / "c3_16x16_classes.labels.npy";
  std::string npy = read_bytes(images);
  npy[npy.size() / 2] = static_cast<char>(npy[npy.size() / 2] ^ 0x40);
  write_bytes(images, npy);
  Folder rebuilt = load();
  CHECK(rebuilt.cache == Folder::Cache::written);
  CHECK(rebuilt.cache_problem.find("damaged cache, rebuilt: ") != std::string::npos);
  CHECK(rebuilt.cache_problem.find(images.string() + ": CRC-32 does not match") != std::string::npos);
  CHECK(rebuilt.dataset.images() == second.dataset.images());
  CHECK(load().cache == Folder::Cache::loaded);

  write_bytes(labels, read_bytes(labels).substr(0, 100));
  rebuilt = load();
  CHECK(rebuilt.cache_problem.find(labels.string() + ": the key file records") != std::string::npos);
  CHECK(rebuilt.dataset.labels() == second.dataset.labels());

  const std::string key = read_bytes(rebuilt.cache_key_file);
  write_bytes(rebuilt.cache_key_file, key.substr(0, key.size() - 12)); // cut in the checksums
  rebuilt = load();
  CHECK(rebuilt.cache_problem.find("malformed key file") != std::string::npos);
  CHECK(load().cache == Folder::Cache::loaded);

  // A cache folder of the user's choosing.
  o.cache_dir = s.dir / "elsewhere";
  CHECK(load().cache == Folder::Cache::written);
  CHECK(fs::exists(s.dir / "elsewhere" / "c3_16x16_classes.key"));
  CHECK(load().cache == Folder::Cache::loaded);
}
