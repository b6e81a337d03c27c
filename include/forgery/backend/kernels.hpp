// Kernel bodies shared by every backend: functors called once per index, written once and
// launched by the OpenMP loop (backend::Cpu), a plain loop (backend::Reference) or a CUDA
// grid (backend::Cuda). Each is a small aggregate of pointers and scalars.
#pragma once

#include <cstdint>

#include "forgery/core/config.hpp"
#include "forgery/core/philox.hpp"

namespace forgery::kernels {

/// x[i] = value.
template <class S>
struct Fill {
  S* x;
  S value;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { x[i] = value; }
};

/// dst[i] = src[i].
template <class S>
struct Copy {
  const S* src;
  S* dst;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { dst[i] = src[i]; }
};

/// y[i] = a * x[i] + y[i].
template <class S>
struct Axpy {
  S a;
  const S* x;
  S* y;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { y[i] = a * x[i] + y[i]; }
};

/// y[i] = a * y[i].
template <class S>
struct Scale {
  S a;
  S* y;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { y[i] = a * y[i]; }
};

/// Column j of the features x batch matrix y gets the vector b added (a bias), one index per column.
template <class S>
struct AddColumnVector {
  const S* b;
  S* y;
  index_t rows;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    S* col = y + j * rows;
    for (index_t r = 0; r < rows; ++r) col[r] += b[r];
  }
};

/// out[r] = beta * out[r] + sum_j a(r, j): one index per row, summed in column order.
template <class S>
struct RowSums {
  const S* a;
  index_t rows, cols, lda;
  S beta;
  S* out;
  FORGERY_HOST_DEVICE void operator()(index_t r) const {
    S acc = S(0);
    for (index_t j = 0; j < cols; ++j) acc += a[j * lda + r];
    out[r] = (beta == S(0) ? S(0) : beta * out[r]) + acc;
  }
};

/// out[j] = beta * out[j] + sum_r a(r, j): one index per column, summed in row order.
template <class S>
struct ColSums {
  const S* a;
  index_t rows, lda;
  S beta;
  S* out;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    S acc = S(0);
    const S* col = a + j * lda;
    for (index_t r = 0; r < rows; ++r) acc += col[r];
    out[j] = (beta == S(0) ? S(0) : beta * out[j]) + acc;
  }
};

/// a + b * c, kept unfused on the device (nvcc would contract it into one FMA). On the
/// host the compiler decides: GCC 12 contracts it into an FMA when the target has one, even
/// under -std=c++20, so host backends agree with each other (both contract alike), and the
/// device fills equal the host's only for host builds without FMA.
FORGERY_HOST_DEVICE inline float add_mul_unfused(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, __fmul_rn(b, c));
#else
  return a + b * c;
#endif
}
FORGERY_HOST_DEVICE inline double add_mul_unfused(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, __dmul_rn(b, c));
#else
  return a + b * c;
#endif
}

/// Uniform values in (lo, hi), one Philox block per index.
template <class S>
struct UniformFill {
  S* x;
  index_t n;
  std::uint64_t seed, stream, counter;
  S lo, span;
  FORGERY_HOST_DEVICE void operator()(index_t block) const {
    const PhiloxBlock b = philox_block(seed, stream, counter + static_cast<std::uint64_t>(block));
    constexpr index_t per = values_per_block<S>;
    for (index_t l = 0; l < per; ++l) {
      const index_t i = block * per + l;
      if (i < n) x[i] = add_mul_unfused(lo, span, uniform_from_block<S>(b, static_cast<int>(l)));
    }
  }
};

/// Blocks per index of the host backends' normal fill: 8 blocks are 16 float pairs, one
/// AVX-512 or two AVX2 vectors per step of Box-Muller (16 blocks measured no faster).
inline constexpr index_t normal_fill_group = 8;

/// Normal values with the given mean and standard deviation; index g draws Philox blocks
/// [g Group, (g + 1) Group). Each value is the one normal_from_block gives for its lane, so
/// the fill depends neither on Group nor on how the indices are split. The group's uniforms
/// are gathered first so that the Box-Muller loop over its pairs vectorises (float; double
/// calls libm). A device thread takes one block (Group 1); device log, sin and cos may
/// differ from the host's in the last bits.
template <class S, index_t Group = normal_fill_group>
struct NormalFill {
  S* x;
  index_t n;
  std::uint64_t seed, stream, counter;
  S mean, stddev;
  FORGERY_HOST_DEVICE void operator()(index_t g) const {
    constexpr index_t per = values_per_block<S>, pairs_per_block = per / 2, pairs = Group * pairs_per_block;
    S u1[pairs], u2[pairs], z0[pairs], z1[pairs];
    for (index_t k = 0; k < Group; ++k) {
      const PhiloxBlock b = philox_block(seed, stream, counter + static_cast<std::uint64_t>(g * Group + k));
      for (index_t p = 0; p < pairs_per_block; ++p) {
        u1[k * pairs_per_block + p] = uniform_from_block<S>(b, static_cast<int>(2 * p));
        u2[k * pairs_per_block + p] = uniform_from_block<S>(b, static_cast<int>(2 * p + 1));
      }
    }
    for (index_t p = 0; p < pairs; ++p) box_muller<S>(u1[p], u2[p], z0[p], z1[p]);
    const index_t first = g * Group * per;
    if (first + 2 * pairs <= n) {
      for (index_t p = 0; p < pairs; ++p) {
        x[first + 2 * p] = add_mul_unfused(mean, stddev, z0[p]);
        x[first + 2 * p + 1] = add_mul_unfused(mean, stddev, z1[p]);
      }
    } else { // the last, partial group (its blocks past n are drawn, not stored)
      for (index_t p = 0; p < pairs; ++p) {
        const index_t i = first + 2 * p;
        if (i < n) x[i] = add_mul_unfused(mean, stddev, z0[p]);
        if (i + 1 < n) x[i + 1] = add_mul_unfused(mean, stddev, z1[p]);
      }
    }
  }
};

} // namespace forgery::kernels

// ---------------------------------------------------------------------------------------
// Convolution: lowering images to columns (im2col), its adjoint (col2im), and moving
// between per-sample CHW images and the row blocks of a GEMM over the whole batch.
// ---------------------------------------------------------------------------------------

namespace forgery {

/// The geometry of a 2-D convolution from images (channels x height x width) to a grid of
/// out_height x out_width kernel positions: output pixel (oy, ox) reads the K x K window
/// whose top-left corner is (oy * stride - pad, ox * stride - pad), zeros outside.
/// col2im is the adjoint map, so a transposed convolution uses the same geometry with the
/// roles of image and grid swapped.
struct ConvGeometry {
  index_t channels, height, width;
  index_t kernel, stride, pad;
  index_t out_height, out_width;

  /// Kernel positions per sample (the rows one sample contributes to the column matrix).
  [[nodiscard]] FORGERY_HOST_DEVICE constexpr index_t pixels() const { return out_height * out_width; }
  /// Values of one image.
  [[nodiscard]] FORGERY_HOST_DEVICE constexpr index_t image_size() const { return channels * height * width; }
  /// Columns of the column matrix: channels * kernel * kernel, index (c * K + ky) * K + kx.
  [[nodiscard]] FORGERY_HOST_DEVICE constexpr index_t columns() const { return channels * kernel * kernel; }
};

} // namespace forgery

namespace forgery::kernels {

/// The range [begin, end) of grid positions o in [0, extent) whose tap o * stride + offset
/// lands inside [0, size). Division-free: only the first and last few grid positions of a
/// consistent geometry miss the image, so each loop runs at most about pad / stride times.
struct ConvTapRange {
  index_t begin, end;
};
FORGERY_HOST_DEVICE inline ConvTapRange conv_tap_range(index_t offset, index_t stride, index_t size, index_t extent) {
  index_t begin = 0;
  while (begin < extent && begin * stride + offset < 0) ++begin;
  index_t end = extent;
  while (end > begin && (end - 1) * stride + offset >= size) --end;
  return {begin, end};
}

/// im2col: cols(j * P + p, (c * K + ky) * K + kx) = x_j(c, oy * s - pad + ky, ox * s - pad + kx)
/// (zero outside the image), cols column-major with leading dimension ld >= batch * P.
/// One index per (column, sample): a contiguous run of P outputs, so the index arithmetic
/// is paid once per P values.
template <class S>
struct Im2Col {
  ConvGeometry g;
  index_t batch;
  const S* x;
  S* cols;
  index_t ld;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const index_t j = i % batch, col = i / batch;
    const index_t kx = col % g.kernel, ky = (col / g.kernel) % g.kernel, c = col / (g.kernel * g.kernel);
    const S* plane = x + j * g.image_size() + c * g.height * g.width;
    S* dst = cols + col * ld + j * g.pixels();
    const index_t offset = kx - g.pad;
    const ConvTapRange r = conv_tap_range(offset, g.stride, g.width, g.out_width);
    for (index_t oy = 0; oy < g.out_height; ++oy, dst += g.out_width) {
      const index_t iy = oy * g.stride - g.pad + ky;
      if (iy < 0 || iy >= g.height) {
        for (index_t ox = 0; ox < g.out_width; ++ox) dst[ox] = S(0);
        continue;
      }
      const S* src = plane + iy * g.width;
      for (index_t ox = 0; ox < r.begin; ++ox) dst[ox] = S(0);
      if (g.stride == 1) // contiguous: lets the compiler vectorise the common case
        for (index_t ox = r.begin; ox < r.end; ++ox) dst[ox] = src[ox + offset];
      else
        for (index_t ox = r.begin; ox < r.end; ++ox) dst[ox] = src[ox * g.stride + offset];
      for (index_t ox = r.end; ox < g.out_width; ++ox) dst[ox] = S(0);
    }
  }
};

/// col2im, the adjoint of Im2Col: x_j(c, iy, ix) = bias[c] (or 0) + the sum of every column
/// entry Im2Col would read from there, in increasing (ky, kx) order. One index per image
/// row (sample, channel, iy): each output is written by one call, so there are no races
/// and the summation order does not depend on the launch.
template <class S>
struct Col2Im {
  ConvGeometry g;
  index_t batch;
  const S* cols;
  index_t ld;
  S* x;
  const S* bias; ///< per channel; may be null
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const index_t iy = i % g.height, plane = i / g.height; // plane = j * channels + c
    const index_t c = plane % g.channels, j = plane / g.channels;
    S* dst = x + plane * g.height * g.width + iy * g.width;
    const S b = bias != nullptr ? bias[c] : S(0);
    for (index_t ix = 0; ix < g.width; ++ix) dst[ix] = b;
    // The window rows through iy: oy * stride - pad + ky == iy, i.e. ky = first + q stride
    // with oy = top - q.
    const index_t first = (iy + g.pad) % g.stride, top = (iy + g.pad) / g.stride;
    for (index_t ky = first, oy = top; ky < g.kernel && oy >= 0; ky += g.stride, --oy) {
      if (oy >= g.out_height) continue;
      for (index_t kx = 0; kx < g.kernel; ++kx) {
        const S* src = cols + ((c * g.kernel + ky) * g.kernel + kx) * ld + j * g.pixels() + oy * g.out_width;
        const index_t offset = kx - g.pad;
        const ConvTapRange r = conv_tap_range(offset, g.stride, g.width, g.out_width);
        if (g.stride == 1)
          for (index_t ox = r.begin; ox < r.end; ++ox) dst[ox + offset] += src[ox];
        else
          for (index_t ox = r.begin; ox < r.end; ++ox) dst[ox * g.stride + offset] += src[ox];
      }
    }
  }
};

/// images_j(c, p) = rows(j * pixels + p, c) + bias[c]: a column-major (batch * pixels) x
/// channels GEMM result (leading dimension ld) to per-sample CHW images. One index per
/// (sample, channel).
template <class S>
struct RowsToImages {
  index_t channels, pixels;
  const S* rows;
  index_t ld;
  S* images;
  const S* bias; ///< per channel; may be null
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const index_t c = i % channels, j = i / channels;
    const S* src = rows + c * ld + j * pixels;
    S* dst = images + i * pixels;
    const S b = bias != nullptr ? bias[c] : S(0);
    for (index_t p = 0; p < pixels; ++p) dst[p] = src[p] + b;
  }
};

/// The inverse move: rows(j * pixels + p, c) = images_j(c, p). One index per (sample, channel).
template <class S>
struct ImagesToRows {
  index_t channels, pixels;
  const S* images;
  S* rows;
  index_t ld;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const index_t c = i % channels, j = i / channels;
    const S* src = images + i * pixels;
    S* dst = rows + c * ld + j * pixels;
    for (index_t p = 0; p < pixels; ++p) dst[p] = src[p];
  }
};

/// out[c] = beta * out[c] + sum over samples and pixels of images_j(c, p), summed sample by
/// sample in pixel order: one index per channel (a convolution's bias gradient).
template <class S>
struct ChannelSums {
  index_t batch, channels, pixels;
  const S* images;
  S beta;
  S* out;
  FORGERY_HOST_DEVICE void operator()(index_t c) const {
    S acc = S(0);
    for (index_t j = 0; j < batch; ++j) {
      const S* src = images + (j * channels + c) * pixels;
      for (index_t p = 0; p < pixels; ++p) acc += src[p];
    }
    out[c] = (beta == S(0) ? S(0) : beta * out[c]) + acc;
  }
};

} // namespace forgery::kernels
