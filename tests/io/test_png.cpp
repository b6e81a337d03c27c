// PNG sample grids: read back with stb_image, the layout, the value mapping ([-1, 1] to
// 0..255, clamped, NaN to 0), padding, RGB interleaving and upscaling are exact; nothing is
// left at a temporary name; bad shapes and unwritable paths are reported.
#include "../support.hpp"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <stb_image.h>
#include <unistd.h>

#include <xtensor/xtensor.hpp>

#include "forgery/io/png.hpp"

namespace {

namespace fs = std::filesystem;
using fg::index_t;

using fg::test::Scratch;

// A decoded PNG: width, height, channels and the interleaved bytes.
struct Image {
  int w = 0, h = 0, c = 0;
  std::vector<std::uint8_t> px;
  [[nodiscard]] int at(int x, int y, int ch = 0) const { return px[static_cast<std::size_t>((y * w + x) * c + ch)]; }
};

Image load(const fs::path& path) {
  Image img;
  unsigned char* data = stbi_load(path.c_str(), &img.w, &img.h, &img.c, 0);
  REQUIRE_MESSAGE(data != nullptr, "stbi_load failed on " << path);
  img.px.assign(data, data + static_cast<std::size_t>(img.w) * static_cast<std::size_t>(img.h) *
                                 static_cast<std::size_t>(img.c));
  stbi_image_free(data);
  return img;
}

int entries(const fs::path& dir) {
  int n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

TEST_CASE_TEMPLATE("a grey grid maps values to bytes and lays images out in rows", S, FORGERY_SCALARS) {
  Scratch s;
  // Three 2 x 3 images, two per row, 1 pixel of padding at 0 (grey 128).
  const S nan = std::numeric_limits<S>::quiet_NaN();
  std::vector<S> v = {
      -1, -1,  -1, -1, -1,      -1,    // image 0: black
      1,  1,   1,  1,  1,       1,     // image 1: white
      0,  nan, 2,  -3, S(-0.5), S(0.5) // image 2: grey, NaN, clamped, clamped, quarter, three quarters
  };
  const auto path = s.dir / "grid.png";
  fg::io::save_png_grid(path, fg::ConstBatchView<S>(v.data(), 6, 3), 1, 2, 3, 2, {.padding = 1, .pad_value = 0});
  CHECK(entries(s.dir) == 1); // no temporary file left behind
  const Image img = load(path);
  CHECK(img.c == 1);
  CHECK(img.w == 2 * 3 + 3); // two columns, three padding strips
  CHECK(img.h == 2 * 2 + 3); // two rows
  CHECK(img.at(0, 0) == 128);
  CHECK(img.at(4, 2) == 128); // between images 0 and 1
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x) {
      CHECK(img.at(1 + x, 1 + y) == 0);
      CHECK(img.at(5 + x, 1 + y) == 255);
    }
  const int expected[6] = {128, 0, 255, 0, 64, 191}; // 0.5 * 127.5 = 63.75 -> 64; 1.5 * 127.5 = 191.25 -> 191
  for (int k = 0; k < 6; ++k) CHECK(img.at(1 + k % 3, 4 + k / 3) == expected[k]);
  for (int y = 4; y < 6; ++y)
    for (int x = 5; x < 8; ++x) CHECK(img.at(x, y) == 128); // the empty cell is padding
}

TEST_CASE("an RGB grid interleaves channels and upscales by nearest neighbour") {
  Scratch s;
  // One 1 x 2 image: pixel 0 = (-1, 0, 1), pixel 1 = (1, 1, -1); scale 2, no padding.
  xt::xtensor<float, 4> images = xt::xtensor<float, 4>::from_shape({1, 3, 1, 2});
  const float values[6] = {-1, 1, 0, 1, 1, -1}; // CHW: R row, G row, B row
  std::copy(values, values + 6, images.data());
  const auto path = s.dir / "rgb.png";
  fg::io::save_png_grid(path, images, 4, {.padding = 0, .pad_value = -1, .scale = 2});
  const Image img = load(path);
  CHECK(img.c == 3);
  CHECK(img.w == 4); // one column though four were allowed: the batch has one image
  CHECK(img.h == 2);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 4; ++x) {
      const bool first = x < 2;
      CHECK(img.at(x, y, 0) == (first ? 0 : 255));
      CHECK(img.at(x, y, 1) == (first ? 128 : 255));
      CHECK(img.at(x, y, 2) == (first ? 255 : 0));
    }
  // Writing again replaces the file and still leaves one entry.
  fg::io::save_png_grid(path, images, 1, {.padding = 3, .pad_value = 1});
  CHECK(load(path).w == 2 + 6);
  CHECK(load(path).at(0, 0, 1) == 255);
  CHECK(entries(s.dir) == 1);
}

TEST_CASE("save_png_grid rejects inconsistent shapes and reports unwritable paths") {
  Scratch s;
  std::vector<float> v(12, 0.f);
  const fg::ConstBatchView<float> four(v.data(), 4, 3);
  try {
    fg::io::save_png_grid(s.dir / "x.png", four, 1, 2, 3, 2);
    FAIL("expected a shape_error");
  } catch (const fg::shape_error& e) {
    CHECK(std::string(e.what()).find("C*H*W = 6 features per image") != std::string::npos);
  }
  CHECK_THROWS_AS(fg::io::save_png_grid(s.dir / "x.png", four, 2, 1, 2, 2), fg::shape_error); // 2 channels
  CHECK_THROWS_AS(fg::io::save_png_grid(s.dir / "x.png", four, 1, 2, 2, 0), fg::config_error);
  CHECK_THROWS_AS(fg::io::save_png_grid(s.dir / "x.png", four, 1, 2, 2, 2, {.scale = 0}), fg::config_error);
  CHECK_THROWS_AS(fg::io::save_png_grid(s.dir / "x.png", fg::ConstBatchView<float>(v.data(), 4, 0), 1, 2, 2, 2),
                  fg::shape_error);
  CHECK(entries(s.dir) == 0);
  const auto missing = s.dir / "no" / "such" / "dir" / "x.png";
  try {
    fg::io::save_png_grid(missing, four, 1, 2, 2, 2);
    FAIL("expected an io_error");
  } catch (const fg::io_error& e) {
    CHECK(std::string(e.what()).find((s.dir / "no" / "such" / "dir").string()) != std::string::npos);
  }
}

} // namespace
