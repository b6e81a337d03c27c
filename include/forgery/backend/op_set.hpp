// The backend op set expressed once over a backend's for_each: everything except gemm and
// the launch itself. A backend derives from OpSet<Self, S> and provides gemm and for_each.
#pragma once

#include "forgery/backend/kernels.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/philox.hpp"

namespace forgery::backend {

/// Whether a gemm operand is used as stored or transposed.
enum class Trans : bool { no = false, yes = true };

/// Ops shared by every backend, written once over `Self::for_each` (CRTP).
template <class Self, class S>
struct OpSet {
  using scalar = S;

  /// Copies n values of any trivially copyable T from the backend's memory to host memory.
  /// Host backends copy; a device backend (backend::Cuda) hides these with its transfers.
  template <class T>
  static void to_host(index_t n, const T* src, T* host_dst) {
    for (index_t i = 0; i < n; ++i) host_dst[i] = src[i];
  }
  /// Copies n values from host memory into the backend's memory.
  template <class T>
  static void to_device(index_t n, const T* host_src, T* dst) {
    for (index_t i = 0; i < n; ++i) dst[i] = host_src[i];
  }

  static void fill(index_t n, S* x, S value) { Self::for_each(n, kernels::Fill<S>{x, value}); }
  static void copy(index_t n, const S* src, S* dst) { Self::for_each(n, kernels::Copy<S>{src, dst}); }
  /// y += a * x.
  static void axpy(index_t n, S a, const S* x, S* y) { Self::for_each(n, kernels::Axpy<S>{a, x, y}); }
  /// y *= a.
  static void scale(index_t n, S a, S* y) { Self::for_each(n, kernels::Scale<S>{a, y}); }
  /// Adds the vector b (length rows) to every column of the rows x cols matrix y.
  static void add_column_vector(index_t rows, index_t cols, const S* b, S* y) {
    Self::for_each(cols, kernels::AddColumnVector<S>{b, y, rows}, rows);
  }
  /// out[r] = beta * out[r] + sum over columns of a(r, :). Fixed summation order.
  static void row_sums(index_t rows, index_t cols, const S* a, index_t lda, S beta, S* out) {
    Self::for_each(rows, kernels::RowSums<S>{a, rows, cols, lda, beta, out}, cols);
  }
  /// out[j] = beta * out[j] + sum over rows of a(:, j). Fixed summation order.
  static void col_sums(index_t rows, index_t cols, const S* a, index_t lda, S beta, S* out) {
    Self::for_each(cols, kernels::ColSums<S>{a, rows, lda, beta, out}, rows);
  }
  /// Lowers `batch` CHW images (g.image_size() values each, contiguous) to the column matrix
  /// of a convolution: cols(j * P + p, (c * K + ky) * K + kx), column-major with leading
  /// dimension ld >= batch * g.pixels(), zeros where the window leaves the image.
  static void im2col(const ConvGeometry& g, index_t batch, const S* x, S* cols, index_t ld) {
    Self::for_each(g.columns() * batch, kernels::Im2Col<S>{g, batch, x, cols, ld}, g.pixels());
  }
  /// The adjoint of im2col: each image value is the sum of the column entries im2col would
  /// copy from it, plus bias[c] when bias is not null. Overwrites x.
  static void col2im(const ConvGeometry& g, index_t batch, const S* cols, index_t ld, S* x, const S* bias = nullptr) {
    Self::for_each(batch * g.channels * g.height, kernels::Col2Im<S>{g, batch, cols, ld, x, bias}, g.width * g.kernel);
  }
  /// images_j(c, p) = rows(j * pixels + p, c) + bias[c] (bias may be null): a column-major
  /// (batch * pixels) x channels matrix with leading dimension ld to CHW images.
  static void rows_to_images(index_t batch, index_t channels, index_t pixels, const S* rows, index_t ld, S* images,
                             const S* bias = nullptr) {
    Self::for_each(batch * channels, kernels::RowsToImages<S>{channels, pixels, rows, ld, images, bias}, pixels);
  }
  /// rows(j * pixels + p, c) = images_j(c, p), the inverse of rows_to_images without bias.
  static void images_to_rows(index_t batch, index_t channels, index_t pixels, const S* images, S* rows, index_t ld) {
    Self::for_each(batch * channels, kernels::ImagesToRows<S>{channels, pixels, images, rows, ld}, pixels);
  }
  /// For each of `outputs` sums, finish(o, acc) with acc = the sum of term(o, n, k) (an Acc:
  /// value-initialised to zero, added with +=) over n in [0, batch) and k in [0, inner).
  /// Term and Finish are functors callable on the device (FORGERY_HOST_DEVICE), like
  /// for_each's. The order is fixed per backend: host backends add n-major, one index per
  /// output; backend::Cuda gives each output a block whose threads split the terms, then
  /// adds their partial sums in a fixed tree, the grouping depending on batch * inner only.
  template <class Acc, class Term, class Finish>
  static void sum_each(index_t outputs, index_t batch, index_t inner, Term term, Finish finish) {
    Self::for_each(outputs, kernels::SumEach<Acc, Term, Finish>{batch, inner, term, finish}, batch * inner);
  }
  /// out[c] = beta * out[c] + sum over samples and pixels of images_j(c, p) (sum_each's order).
  static void channel_sums(index_t batch, index_t channels, index_t pixels, const S* images, S beta, S* out) {
    Self::template sum_each<S>(channels, batch, pixels, kernels::ChannelValue<S>{channels, pixels, images},
                               kernels::ScaleAdd<S>{beta, out});
  }
  /// n uniform values in (lo, hi); advances `rng` by the blocks used.
  static void fill_uniform(index_t n, S* x, RandomStream& rng, S lo, S hi) {
    const index_t blocks = (n + values_per_block<S> - 1) / values_per_block<S>;
    const auto first = rng.take(static_cast<std::uint64_t>(blocks));
    Self::for_each(blocks, kernels::UniformFill<S>{x, n, rng.seed, rng.stream, first, lo, hi - lo},
                   values_per_block<S>);
  }
  /// n normal values N(mean, stddev^2); advances `rng` by the blocks used.
  static void fill_normal(index_t n, S* x, RandomStream& rng, S mean, S stddev) {
    const index_t blocks = (n + values_per_block<S> - 1) / values_per_block<S>;
    const auto first = rng.take(static_cast<std::uint64_t>(blocks));
    // Host backends take a group of blocks per index (a vectorised Box-Muller loop); the
    // device, one block per thread. The values are the same either way.
    constexpr index_t group = Self::host_memory ? kernels::normal_fill_group : 1;
    // Work hint: a normal value (log, square root, sin, cos) costs about four elementwise ops.
    Self::for_each((blocks + group - 1) / group,
                   kernels::NormalFill<S, group>{x, n, rng.seed, rng.stream, first, mean, stddev},
                   4 * group * values_per_block<S>);
  }
};

} // namespace forgery::backend
