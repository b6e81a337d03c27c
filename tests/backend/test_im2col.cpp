// The convolution ops of the backend op set: im2col and col2im against their definitions
// written as plain loops, col2im(im2col(x)) as x times each pixel's window count, the moves
// between CHW images and GEMM rows, and Cpu against Reference bitwise on parallel sizes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "forgery/backend/cpu.hpp"
#include "forgery/backend/reference.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fg = forgery;

namespace {

using fg::ConvGeometry;
using fg::index_t;

// Small integers, so every sum below is exact and results compare with ==.
template <class S>
std::vector<S> small_integers(index_t n, std::uint64_t seed) {
  std::vector<S> v(static_cast<std::size_t>(n));
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (S& x : v) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    x = static_cast<S>(static_cast<int>((state >> 33) % 17) - 8);
  }
  return v;
}

template <class S>
bool same_bits(const std::vector<S>& a, const std::vector<S>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(S)) == 0;
}

ConvGeometry geometry(index_t c, index_t h, index_t w, index_t k, index_t s, index_t p) {
  const auto extent = [&](index_t in) { return (in + 2 * p - k) / s + 1; };
  return ConvGeometry{c, h, w, k, s, p, extent(h), extent(w)};
}

// Stride 1 and 2, pad 0 to 2, K 1 to 4, 1 to 3 channels, H != W; two have windows that lie
// wholly in the padding (pad >= K on a side). The last two have stride-2 rows longer than
// one vector (out widths 19 and 14, odd and even image widths): the AVX2 path's lengths.
const ConvGeometry geometries[] = {
    geometry(1, 5, 5, 3, 1, 0),  geometry(2, 5, 7, 3, 1, 1),   geometry(3, 7, 6, 4, 2, 1), geometry(2, 6, 5, 3, 2, 2),
    geometry(3, 4, 5, 1, 1, 0),  geometry(1, 8, 6, 4, 2, 2),   geometry(2, 3, 4, 1, 2, 1), geometry(1, 4, 3, 2, 1, 2),
    geometry(2, 5, 37, 3, 2, 1), geometry(1, 28, 28, 4, 2, 1),
};

std::string describe(const ConvGeometry& g) {
  return "C=" + std::to_string(g.channels) + " H=" + std::to_string(g.height) + " W=" + std::to_string(g.width) +
         " K=" + std::to_string(g.kernel) + " stride=" + std::to_string(g.stride) + " pad=" + std::to_string(g.pad);
}

// The image value a window tap reads, zero in the padding.
template <class S>
S tap(const ConvGeometry& g, const std::vector<S>& x, index_t j, index_t c, index_t iy, index_t ix) {
  if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) return S(0);
  return x[static_cast<std::size_t>(((j * g.channels + c) * g.height + iy) * g.width + ix)];
}

// im2col by its definition, into a matrix with leading dimension ld.
template <class S>
std::vector<S> direct_im2col(const ConvGeometry& g, index_t batch, const std::vector<S>& x, index_t ld) {
  const index_t k = g.kernel;
  std::vector<S> cols(static_cast<std::size_t>(ld * g.columns()), std::numeric_limits<S>::quiet_NaN());
  for (index_t j = 0; j < batch; ++j)
    for (index_t c = 0; c < g.channels; ++c)
      for (index_t ky = 0; ky < k; ++ky)
        for (index_t kx = 0; kx < k; ++kx)
          for (index_t oy = 0; oy < g.out_height; ++oy)
            for (index_t ox = 0; ox < g.out_width; ++ox) {
              const index_t row = j * g.pixels() + oy * g.out_width + ox, col = (c * k + ky) * k + kx;
              cols[static_cast<std::size_t>(col * ld + row)] =
                  tap(g, x, j, c, oy * g.stride - g.pad + ky, ox * g.stride - g.pad + kx);
            }
  return cols;
}

// col2im by its definition: every column entry scattered back onto the pixel it came from.
template <class S>
std::vector<S> direct_col2im(const ConvGeometry& g, index_t batch, const std::vector<S>& cols, index_t ld) {
  const index_t k = g.kernel;
  std::vector<S> x(static_cast<std::size_t>(batch * g.image_size()), S(0));
  for (index_t j = 0; j < batch; ++j)
    for (index_t c = 0; c < g.channels; ++c)
      for (index_t ky = 0; ky < k; ++ky)
        for (index_t kx = 0; kx < k; ++kx)
          for (index_t oy = 0; oy < g.out_height; ++oy)
            for (index_t ox = 0; ox < g.out_width; ++ox) {
              const index_t iy = oy * g.stride - g.pad + ky, ix = ox * g.stride - g.pad + kx;
              if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) continue;
              const index_t row = j * g.pixels() + oy * g.out_width + ox, col = (c * k + ky) * k + kx;
              x[static_cast<std::size_t>(((j * g.channels + c) * g.height + iy) * g.width + ix)] +=
                  cols[static_cast<std::size_t>(col * ld + row)];
            }
  return x;
}

// How many windows (oy, ky) cover row iy, counted by brute force.
index_t window_count(index_t i, index_t size_out, index_t k, index_t s, index_t p) {
  index_t count = 0;
  for (index_t o = 0; o < size_out; ++o)
    for (index_t t = 0; t < k; ++t) count += o * s - p + t == i ? 1 : 0;
  return count;
}

#if defined(_OPENMP)
// Sets the OpenMP thread count and restores it however the test ends.
class ThreadCount {
public:
  explicit ThreadCount(int n) { omp_set_num_threads(n); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;
  ~ThreadCount() { omp_set_num_threads(saved_); }

private:
  int saved_ = omp_get_max_threads();
};
#endif

} // namespace

#define FORGERY_IM2COL_BACKENDS                                                                                        \
  fg::backend::Reference<float>, fg::backend::Cpu<float>, fg::backend::Reference<double>, fg::backend::Cpu<double>

TEST_CASE_TEMPLATE("im2col and col2im follow their definitions", B, FORGERY_IM2COL_BACKENDS) {
  using S = typename B::scalar;
  for (const ConvGeometry& g : geometries) {
    CAPTURE(describe(g));
    const index_t batch = 3, rows = batch * g.pixels();
    for (const index_t ld : {rows, rows + 5}) {
      CAPTURE(ld);
      const std::vector<S> x = small_integers<S>(batch * g.image_size(), 1);
      // im2col writes exactly the batch's rows: the rows between batch * P and ld keep their NaN.
      std::vector<S> cols(static_cast<std::size_t>(ld * g.columns()), std::numeric_limits<S>::quiet_NaN());
      B::im2col(g, batch, x.data(), cols.data(), ld);
      const std::vector<S> expected = direct_im2col(g, batch, x, ld);
      CHECK(same_bits(cols, expected));

      const std::vector<S> c = small_integers<S>(ld * g.columns(), 2);
      std::vector<S> back(static_cast<std::size_t>(batch * g.image_size()), std::numeric_limits<S>::quiet_NaN());
      B::col2im(g, batch, c.data(), ld, back.data());
      CHECK(back == direct_col2im(g, batch, c, ld));

      // With a bias, each channel's plane is offset by it.
      const std::vector<S> bias = small_integers<S>(g.channels, 3);
      std::vector<S> biased(back.size());
      B::col2im(g, batch, c.data(), ld, biased.data(), bias.data());
      bool offset = true;
      for (std::size_t i = 0; i < back.size(); ++i) {
        const auto channel = static_cast<std::size_t>((static_cast<index_t>(i) / (g.height * g.width)) % g.channels);
        offset = offset && biased[i] == back[i] + bias[channel];
      }
      CHECK(offset);
    }
  }
}

TEST_CASE_TEMPLATE("col2im(im2col(x)) is x times the number of windows over each pixel", B, FORGERY_IM2COL_BACKENDS) {
  using S = typename B::scalar;
  for (const ConvGeometry& g : geometries) {
    CAPTURE(describe(g));
    const index_t batch = 2;
    const std::vector<S> x = small_integers<S>(batch * g.image_size(), 4);
    std::vector<S> cols(static_cast<std::size_t>(batch * g.pixels() * g.columns()));
    std::vector<S> back(x.size());
    B::im2col(g, batch, x.data(), cols.data(), batch * g.pixels());
    B::col2im(g, batch, cols.data(), batch * g.pixels(), back.data());
    bool all = true;
    index_t covered = 0;
    for (index_t j = 0; j < batch; ++j)
      for (index_t c = 0; c < g.channels; ++c)
        for (index_t iy = 0; iy < g.height; ++iy)
          for (index_t ix = 0; ix < g.width; ++ix) {
            const index_t count = window_count(iy, g.out_height, g.kernel, g.stride, g.pad) *
                                  window_count(ix, g.out_width, g.kernel, g.stride, g.pad);
            covered += count > 1 ? 1 : 0;
            const auto i = static_cast<std::size_t>(((j * g.channels + c) * g.height + iy) * g.width + ix);
            all = all && back[i] == x[i] * static_cast<S>(count);
          }
    CHECK(all);
    // Overlapping windows are exercised wherever the kernel is wider than the stride.
    CHECK((covered > 0) == (g.kernel > g.stride));
  }
}

TEST_CASE_TEMPLATE("rows_to_images, images_to_rows and channel_sums", B, FORGERY_IM2COL_BACKENDS) {
  using S = typename B::scalar;
  const index_t batch = 3, channels = 4, pixels = 6, ld = batch * pixels + 2;
  const std::vector<S> images = small_integers<S>(batch * channels * pixels, 5);
  std::vector<S> rows(static_cast<std::size_t>(ld * channels), S(99));
  B::images_to_rows(batch, channels, pixels, images.data(), rows.data(), ld);
  bool moved = true;
  for (index_t j = 0; j < batch; ++j)
    for (index_t c = 0; c < channels; ++c)
      for (index_t p = 0; p < pixels; ++p)
        moved = moved && rows[static_cast<std::size_t>(c * ld + j * pixels + p)] ==
                             images[static_cast<std::size_t>((j * channels + c) * pixels + p)];
  CHECK(moved);
  for (index_t c = 0; c < channels; ++c) // the padding rows are left alone
    CHECK(rows[static_cast<std::size_t>(c * ld + batch * pixels)] == S(99));

  std::vector<S> back(images.size());
  B::rows_to_images(batch, channels, pixels, rows.data(), ld, back.data());
  CHECK(back == images);
  const std::vector<S> bias = {S(1), S(-2), S(3), S(0.5)};
  B::rows_to_images(batch, channels, pixels, rows.data(), ld, back.data(), bias.data());
  bool biased = true;
  for (std::size_t i = 0; i < back.size(); ++i)
    biased = biased && back[i] == images[i] + bias[(i / static_cast<std::size_t>(pixels)) % 4];
  CHECK(biased);

  auto channel_total = [&](index_t c) {
    S acc = S(0);
    for (index_t j = 0; j < batch; ++j)
      for (index_t p = 0; p < pixels; ++p) acc += images[static_cast<std::size_t>((j * channels + c) * pixels + p)];
    return acc;
  };
  std::vector<S> sums(4, S(10));
  B::channel_sums(batch, channels, pixels, images.data(), S(1), sums.data());
  for (index_t c = 0; c < channels; ++c) CHECK(sums[static_cast<std::size_t>(c)] == S(10) + channel_total(c));
  // beta == 0 ignores what was there, NaN included.
  std::fill(sums.begin(), sums.end(), std::numeric_limits<S>::quiet_NaN());
  B::channel_sums(batch, channels, pixels, images.data(), S(0), sums.data());
  for (index_t c = 0; c < channels; ++c) CHECK(sums[static_cast<std::size_t>(c)] == channel_total(c));
}

namespace {

// Cpu (one range per thread) against Reference (one call per index), bitwise.
template <class S>
void check_cpu_matches_reference(const ConvGeometry& g) {
  using Cpu = fg::backend::Cpu<S>;
  using Ref = fg::backend::Reference<S>;
  CAPTURE(describe(g));
  const index_t batch = 32, ld = batch * g.pixels();
  REQUIRE(g.columns() * batch >= Cpu::parallel_threshold);
  REQUIRE(batch * g.channels * g.height >= Cpu::parallel_threshold);
  const std::vector<S> x = small_integers<S>(batch * g.image_size(), 6);
  std::vector<S> cols_cpu(static_cast<std::size_t>(ld * g.columns())), cols_ref(cols_cpu.size());
  Cpu::im2col(g, batch, x.data(), cols_cpu.data(), ld);
  Ref::im2col(g, batch, x.data(), cols_ref.data(), ld);
  CHECK(same_bits(cols_cpu, cols_ref));

  // Non-integer values: the summation order itself must agree.
  std::vector<S> c(cols_cpu.size());
  fg::RandomStream rng{7, 0, 0};
  Ref::fill_normal(static_cast<index_t>(c.size()), c.data(), rng, S(0), S(1));
  const std::vector<S> bias = small_integers<S>(g.channels, 8);
  std::vector<S> x_cpu(x.size()), x_ref(x.size());
  Cpu::col2im(g, batch, c.data(), ld, x_cpu.data(), bias.data());
  Ref::col2im(g, batch, c.data(), ld, x_ref.data(), bias.data());
  CHECK(same_bits(x_cpu, x_ref));

  // The moves between images and rows, on the input images (H W pixels each).
  const index_t pixels = g.height * g.width, ld_rows = batch * pixels;
  std::vector<S> rows_cpu(static_cast<std::size_t>(ld_rows * g.channels)), rows_ref(rows_cpu.size());
  Cpu::images_to_rows(batch, g.channels, pixels, x_cpu.data(), rows_cpu.data(), ld_rows);
  Ref::images_to_rows(batch, g.channels, pixels, x_cpu.data(), rows_ref.data(), ld_rows);
  CHECK(same_bits(rows_cpu, rows_ref));
  std::vector<S> img_cpu(x.size()), img_ref(x.size());
  Cpu::rows_to_images(batch, g.channels, pixels, rows_cpu.data(), ld_rows, img_cpu.data(), bias.data());
  Ref::rows_to_images(batch, g.channels, pixels, rows_cpu.data(), ld_rows, img_ref.data(), bias.data());
  CHECK(same_bits(img_cpu, img_ref));
  std::vector<S> sums_cpu(static_cast<std::size_t>(g.channels)), sums_ref(sums_cpu.size());
  Cpu::channel_sums(batch, g.channels, pixels, x_cpu.data(), S(0), sums_cpu.data());
  Ref::channel_sums(batch, g.channels, pixels, x_cpu.data(), S(0), sums_ref.data());
  CHECK(same_bits(sums_cpu, sums_ref));
}

} // namespace

TEST_CASE_TEMPLATE("Cpu convolution ops match Reference bitwise on sizes that run in parallel", S, float, double) {
  // Stride 1 and stride 2 (rows of 10: the AVX2 path), each with at least 16384 im2col and
  // col2im indices, past Cpu's parallel threshold whatever the work per index; 2 and 3
  // threads, so the threads' ranges start and end inside columns and planes.
  const ConvGeometry both[] = {geometry(64, 16, 2, 3, 1, 1), geometry(64, 16, 20, 4, 2, 1)};
  for (const ConvGeometry& g : both)
#if defined(_OPENMP)
    for (const int threads : {2, 3}) {
      const ThreadCount count(threads);
      CAPTURE(threads);
#else
  {
#endif
      check_cpu_matches_reference<S>(g);
    }
}
