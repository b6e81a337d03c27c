// Kernel bodies shared by every backend: functors called once per index, written once and
// launched by the OpenMP loop (backend::Cpu), a plain loop (backend::Reference) or a CUDA
// grid (backend::Cuda). Each is a small aggregate of pointers and scalars.
#pragma once

#include <cstdint>
#include <type_traits>

#include "forgery/core/config.hpp"
#include "forgery/core/philox.hpp"

// Host builds with AVX2 vectorise the stride-2 rows of im2col (the usual down-sampling
// convolutions), which the compiler leaves scalar: their rows are a few values long. Not
// under nvcc, whose device code has its own launch per index.
#if defined(__AVX2__) && !defined(__CUDACC__)
#include <immintrin.h>
#define FORGERY_CONV_AVX2 1
#else
#define FORGERY_CONV_AVX2 0
#endif

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

#if FORGERY_CONV_AVX2
namespace conv_avx2 {

/// Lanes l < n set.
inline __m256i first_lanes(index_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// out[o] = src[2 o] for o < count; src[0 .. 2 count - 1) is readable. Exact copies.
inline void take_even(const float* src, index_t count, float* out) {
  for (; count > 0; count -= 8, src += 16, out += 8) {
    const index_t avail = 2 * count - 1; // readable values from src on
    const __m256 lo = _mm256_maskload_ps(src, first_lanes(avail));
    const __m256 hi = avail > 8 ? _mm256_maskload_ps(src + 8, first_lanes(avail - 8)) : _mm256_setzero_ps();
    // [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then the 64-bit pairs in order 0 2 1 3.
    const __m256 even = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    const __m256 ordered = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0)));
    _mm256_maskstore_ps(out, first_lanes(count), ordered);
  }
}

} // namespace conv_avx2
#endif

/// im2col: cols(j * P + p, (c * K + ky) * K + kx) = x_j(c, oy * s - pad + ky, ox * s - pad + kx)
/// (zero outside the image), cols column-major with leading dimension ld >= batch * P.
/// One index per (column, sample), i = column * batch + j: a contiguous run of P outputs.
/// On the host, range() runs a thread's share of indices with the column's setup paid once
/// per column rather than once per index.
template <class S>
struct Im2Col {
  ConvGeometry g;
  index_t batch;
  const S* x;
  S* cols;
  index_t ld;

  /// What every sample of column `col` shares: its channel, its tap offsets and the output
  /// rows and columns whose taps land inside the image.
  struct Column {
    index_t c, ky, kx;
    ConvTapRange rows, xs;
  };
  [[nodiscard]] FORGERY_HOST_DEVICE Column column(index_t col) const {
    const index_t kx = col % g.kernel, ky = (col / g.kernel) % g.kernel, c = col / (g.kernel * g.kernel);
    return {c, ky, kx, conv_tap_range(ky - g.pad, g.stride, g.height, g.out_height),
            conv_tap_range(kx - g.pad, g.stride, g.width, g.out_width)};
  }
  /// out[o] = row[o * stride + offset] for o in [begin, end) (taps inside the row).
  FORGERY_HOST_DEVICE static void taps(const S* row, index_t offset, index_t stride, index_t begin, index_t end,
                                       S* out) {
    if (begin >= end) return;
    const S* src = row + (begin * stride + offset); // the first tap: inside the row
    if (stride == 1) {                              // contiguous: the compiler vectorises it
      for (index_t o = 0; o < end - begin; ++o) out[begin + o] = src[o];
      return;
    }
#if FORGERY_CONV_AVX2 && !defined(__CUDA_ARCH__)
    if constexpr (std::is_same_v<S, float>) {
      if (stride == 2) {
        conv_avx2::take_even(src, end - begin, out + begin);
        return;
      }
    }
#endif
    for (index_t o = 0; o < end - begin; ++o) out[begin + o] = src[o * stride];
  }
  /// Sample j's P outputs of column `col`.
  FORGERY_HOST_DEVICE void run(const Column& k, index_t col, index_t j) const {
    const S* plane = x + j * g.image_size() + k.c * g.height * g.width;
    S* dst = cols + col * ld + j * g.pixels();
    const index_t ow = g.out_width, offset = k.kx - g.pad;
    for (index_t q = 0; q < k.rows.begin * ow; ++q) dst[q] = S(0);
    for (index_t oy = k.rows.begin; oy < k.rows.end; ++oy) {
      S* out = dst + oy * ow;
      for (index_t ox = 0; ox < k.xs.begin; ++ox) out[ox] = S(0);
      taps(plane + (oy * g.stride - g.pad + k.ky) * g.width, offset, g.stride, k.xs.begin, k.xs.end, out);
      for (index_t ox = k.xs.end; ox < ow; ++ox) out[ox] = S(0);
    }
    for (index_t q = k.rows.end * ow; q < g.pixels(); ++q) dst[q] = S(0);
  }
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const index_t col = i / batch;
    run(column(col), col, i % batch);
  }
  void range(index_t lo, index_t hi) const {
    if (lo >= hi) return;
    index_t col = lo / batch, j = lo % batch;
    for (index_t i = lo; i < hi; ++col, j = 0) {
      const Column k = column(col);
      for (; j < batch && i < hi; ++j, ++i) run(k, col, j);
    }
  }
};

/// col2im, the adjoint of Im2Col: x_j(c, iy, ix) = bias[c] (or 0) + the sum of every column
/// entry Im2Col would read from there, in increasing (ky, kx) order. One index per image
/// row, i = (c * batch + j) * height + iy (channel-major: consecutive indices read the same
/// columns at consecutive rows): each output is written by one call, so there are no races
/// and the summation order does not depend on the launch. On the host, range() runs each
/// whole plane of its share tap by tap (a column's stretch read as one stream, the plane
/// kept in L1), each pixel still receiving its taps in (ky, kx) order: the same bits.
template <class S>
struct Col2Im {
  ConvGeometry g;
  index_t batch;
  const S* cols;
  index_t ld;
  S* x;
  const S* bias; ///< per channel; may be null

  /// row[o * stride + offset] += src[o] for o in [begin, end) (taps inside the row), one
  /// add each.
  FORGERY_HOST_DEVICE static void add_taps(const S* src, index_t offset, index_t stride, index_t begin, index_t end,
                                           S* row) {
    if (begin >= end) return;
    S* dst = row + (begin * stride + offset);
    src += begin;
    if (stride == 1) {
      for (index_t o = 0; o < end - begin; ++o) dst[o] += src[o];
      return;
    }
    for (index_t o = 0; o < end - begin; ++o) dst[o * stride] += src[o];
  }
  [[nodiscard]] FORGERY_HOST_DEVICE S* plane_of(index_t c, index_t j) const {
    return x + (j * g.channels + c) * g.height * g.width;
  }
  [[nodiscard]] FORGERY_HOST_DEVICE const S* column(index_t c, index_t ky, index_t kx, index_t j) const {
    return cols + ((c * g.kernel + ky) * g.kernel + kx) * ld + j * g.pixels();
  }
  /// Image row iy of channel c of sample j.
  FORGERY_HOST_DEVICE void row(index_t c, index_t j, index_t iy) const {
    S* dst = plane_of(c, j) + iy * g.width;
    const S b = bias != nullptr ? bias[c] : S(0);
    for (index_t ix = 0; ix < g.width; ++ix) dst[ix] = b;
    // The window rows through iy: oy * stride - pad + ky == iy, i.e. ky = first + q stride
    // with oy = top - q.
    const index_t first = (iy + g.pad) % g.stride, top = (iy + g.pad) / g.stride;
    for (index_t ky = first, oy = top; ky < g.kernel && oy >= 0; ky += g.stride, --oy) {
      if (oy >= g.out_height) continue;
      for (index_t kx = 0; kx < g.kernel; ++kx) {
        const ConvTapRange r = conv_tap_range(kx - g.pad, g.stride, g.width, g.out_width);
        add_taps(column(c, ky, kx, j) + oy * g.out_width, kx - g.pad, g.stride, r.begin, r.end, dst);
      }
    }
  }
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const index_t iy = i % g.height, q = i / g.height;
    row(q / batch, q % batch, iy);
  }
  /// The whole plane of channel c of sample j, tap by tap.
  void plane(index_t c, index_t j) const {
    S* dst = plane_of(c, j);
    const S b = bias != nullptr ? bias[c] : S(0);
    for (index_t q = 0; q < g.height * g.width; ++q) dst[q] = b;
    for (index_t ky = 0; ky < g.kernel; ++ky) {
      const ConvTapRange rows = conv_tap_range(ky - g.pad, g.stride, g.height, g.out_height);
      for (index_t kx = 0; kx < g.kernel; ++kx) {
        const ConvTapRange xs = conv_tap_range(kx - g.pad, g.stride, g.width, g.out_width);
        const S* src = column(c, ky, kx, j);
        for (index_t oy = rows.begin; oy < rows.end; ++oy)
          add_taps(src + oy * g.out_width, kx - g.pad, g.stride, xs.begin, xs.end,
                   dst + (oy * g.stride - g.pad + ky) * g.width);
      }
    }
  }
  void range(index_t lo, index_t hi) const {
    for (index_t i = lo; i < hi;) {
      const index_t iy = i % g.height, q = i / g.height;
      if (iy == 0 && hi - i >= g.height) {
        plane(q / batch, q % batch);
        i += g.height;
      } else {
        row(q / batch, q % batch, iy);
        ++i;
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

/// One index per output o: acc = the sum of term(o, n, k) over n in [0, batch) and k in
/// [0, inner), n-major, then finish(o, acc). The host backends' form of OpSet::sum_each; a
/// device backend splits each sum over a block of threads instead (backend::Cuda).
template <class Acc, class Term, class Finish>
struct SumEach {
  index_t batch, inner;
  Term term;
  Finish finish;
  FORGERY_HOST_DEVICE void operator()(index_t o) const {
    Acc acc{};
    for (index_t n = 0; n < batch; ++n)
      for (index_t k = 0; k < inner; ++k) acc += term(o, n, k);
    finish(o, acc);
  }
};

/// Two sums carried through one sum_each (BatchNorm's gradient sums).
template <class S>
struct SumPair {
  S first, second;
  FORGERY_HOST_DEVICE SumPair& operator+=(const SumPair& t) {
    first += t.first;
    second += t.second;
    return *this;
  }
};

/// images_j(c, p) as sum_each's term over channels c, samples j and pixels p.
template <class S>
struct ChannelValue {
  index_t channels, pixels;
  const S* images;
  FORGERY_HOST_DEVICE S operator()(index_t c, index_t j, index_t p) const {
    return images[(j * channels + c) * pixels + p];
  }
};

/// out[o] = beta * out[o] + acc; beta 0 ignores out's old value (NaN included).
template <class S>
struct ScaleAdd {
  S beta;
  S* out;
  FORGERY_HOST_DEVICE void operator()(index_t o, S acc) const { out[o] = (beta == S(0) ? S(0) : beta * out[o]) + acc; }
};

} // namespace forgery::kernels
