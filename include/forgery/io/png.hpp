// PNG sample grids: a batch of images with values in [-1, 1] laid out in rows, encoded in
// memory with stb_image_write and written atomically.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <stb_image_write.h>
#include <xtensor/xtensor.hpp>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/error.hpp"
#include "forgery/io/atomic_file.hpp"

namespace forgery::io {

/// How save_png_grid lays images out.
struct GridOptions {
  index_t padding = 2;  ///< pixels between images and around the grid
  double pad_value = 0; ///< the padding's value on the images' [-1, 1] scale (0: mid grey)
  index_t scale = 1;    ///< integer upscaling of each image (nearest neighbour)
};

namespace detail {

/// [-1, 1] -> 0..255, rounded to nearest, clamped; NaN -> 0.
inline std::uint8_t to_pixel(double v) noexcept {
  if (!(v == v)) return 0;
  const double t = std::clamp((v + 1.0) * 127.5, 0.0, 255.0);
  return static_cast<std::uint8_t>(t + 0.5);
}

inline void append_to_string(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<std::size_t>(size));
}

} // namespace detail

/// A PNG file's bytes, held in memory, and the size of its image.
struct EncodedPng {
  std::string bytes; ///< the whole file, signature first
  index_t width = 0, height = 0;
  index_t channels = 0; ///< 1 grey, 3 RGB
};

namespace detail {

// The grid of encode_png_grid, encoded; `where` names the caller in its errors. Leaves
// `bytes` empty when stb cannot encode it, for the caller to report with its own context.
template <class T>
EncodedPng encode_grid(const char* where, BatchView<T> images, index_t channels, index_t height, index_t width,
                       index_t columns, const GridOptions& options) {
  const std::string name = where;
  if (channels != 1 && channels != 3)
    throw shape_error(name + " channels", "1 (grey) or 3 (RGB)", std::to_string(channels));
  if (height < 1 || width < 1)
    throw shape_error(name, "a positive image height and width",
                      std::to_string(height) + " x " + std::to_string(width));
  if (images.features() != channels * height * width)
    throw shape_error(name, "C*H*W = " + std::to_string(channels * height * width) + " features per image",
                      std::to_string(images.features()));
  if (images.batch() < 1 || images.data() == nullptr)
    throw shape_error(name, "at least one image", std::to_string(images.batch()) + " images");
  if (columns < 1) throw config_error(name + " columns", std::to_string(columns), "at least 1");
  if (options.scale < 1) throw config_error("GridOptions.scale", std::to_string(options.scale), "at least 1");
  if (options.padding < 0) throw config_error("GridOptions.padding", std::to_string(options.padding), "at least 0");

  const index_t n = images.batch();
  const index_t cols = std::min(columns, n);
  const index_t rows = (n + cols - 1) / cols;
  const index_t pad = options.padding, s = options.scale;
  // Sizes in double first: stb takes ints, and an absurd scale must not overflow index_t.
  const double wd = static_cast<double>(cols) * static_cast<double>(width * s + pad) + static_cast<double>(pad);
  const double hd = static_cast<double>(rows) * static_cast<double>(height * s + pad) + static_cast<double>(pad);
  if (wd * hd * static_cast<double>(channels) > static_cast<double>(std::numeric_limits<int>::max()))
    throw shape_error(name, "a grid below 2^31 bytes",
                      std::to_string(static_cast<long long>(wd)) + " x " + std::to_string(static_cast<long long>(hd)) +
                          " pixels x " + std::to_string(channels) + " channels");
  const auto grid_w = static_cast<index_t>(wd), grid_h = static_cast<index_t>(hd);

  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(grid_w * grid_h * channels), to_pixel(options.pad_value));
  for (index_t k = 0; k < n; ++k) {
    const index_t x0 = pad + (k % cols) * (width * s + pad);
    const index_t y0 = pad + (k / cols) * (height * s + pad);
    const T* img = images.sample(k);
    for (index_t y = 0; y < height * s; ++y)
      for (index_t x = 0; x < width * s; ++x)
        for (index_t c = 0; c < channels; ++c)
          pixels[static_cast<std::size_t>(((y0 + y) * grid_w + x0 + x) * channels + c)] =
              to_pixel(static_cast<double>(img[(c * height + y / s) * width + x / s]));
  }

  EncodedPng png{{}, grid_w, grid_h, channels};
  if (stbi_write_png_to_func(&append_to_string, &png.bytes, static_cast<int>(grid_w), static_cast<int>(grid_h),
                             static_cast<int>(channels), pixels.data(), static_cast<int>(grid_w * channels)) == 0)
    png.bytes.clear();
  return png;
}

} // namespace detail

/// Lays `images` (features x batch, each column a C x H x W image, C = 1 grey or 3 RGB) out
/// as one grid, `columns` images per row (fewer when the batch is smaller), separated and
/// framed by `options.padding` pixels of `options.pad_value`; cells after the last image
/// are padding; and encodes it as a PNG in memory. Throws shape_error when features !=
/// C*H*W or C is not 1 or 3, config_error for a non-positive columns or scale or a
/// negative padding, and error when the encoder fails (it fails only to allocate).
template <class T>
EncodedPng encode_png_grid(BatchView<T> images, index_t channels, index_t height, index_t width, index_t columns,
                           const GridOptions& options = {}) {
  EncodedPng png = detail::encode_grid("encode_png_grid", images, channels, height, width, columns, options);
  if (png.bytes.empty())
    throw error("forgery: encode_png_grid: PNG encoding of a " + std::to_string(png.width) + " x " +
                std::to_string(png.height) + " grid failed");
  return png;
}

/// Writes the grid of encode_png_grid as one PNG file, atomically. Throws as
/// encode_png_grid does, and io_error when encoding or writing fails.
template <class T>
void save_png_grid(const std::filesystem::path& path, BatchView<T> images, index_t channels, index_t height,
                   index_t width, index_t columns, const GridOptions& options = {}) {
  const EncodedPng png = detail::encode_grid("save_png_grid", images, channels, height, width, columns, options);
  if (png.bytes.empty())
    throw io_error(path.string(), "PNG encoding of a " + std::to_string(png.width) + " x " +
                                      std::to_string(png.height) + " grid failed");
  write_file_atomically(path, png.bytes);
}

/// The same for an (N, C, H, W) tensor.
/// \tparam S the scalar type of the images.
template <class S>
void save_png_grid(const std::filesystem::path& path, const xt::xtensor<S, 4>& images, index_t columns,
                   const GridOptions& options = {}) {
  const auto& sh = images.shape();
  const auto c = static_cast<index_t>(sh[1]), h = static_cast<index_t>(sh[2]), w = static_cast<index_t>(sh[3]);
  save_png_grid(path, ConstBatchView<S>(images.data(), c * h * w, static_cast<index_t>(sh[0])), c, h, w, columns,
                options);
}

} // namespace forgery::io
