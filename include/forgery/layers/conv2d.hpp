// Conv2d: 2-D convolution of (C, H, W) samples, lowered to one GEMM over the whole batch.
//
// With P = Ho * Wo kernel positions per sample and N samples, im2col lays the batch out as a
// column-major (P N) x (C K K) matrix `cols` (row j P + p, column (c K + ky) K + kx). Then
//   forward:   Yt = cols W^T, one GEMM of m = P N, moved to CHW per sample with the bias;
//   backward:  dYt = dy moved to rows, dW += dYt^T cols (one GEMM, k = P N: the sum over the
//              batch is inside the GEMM, so no per-thread partial weight gradients),
//              db += channel sums of dy, dcols = dYt W, dx = col2im(dcols).
// im2col, col2im and the moves are backend functors in which each call writes its own part
// of the output in a fixed order, so results do not depend on the thread count. They are
// indexed finer than per sample (im2col per column and sample, col2im per image row) because
// a backend parallelises a for_each only past a size threshold that batch sizes rarely reach.
// The column and row matrices are workspace that grows to the largest batch, never shrinks.
#pragma once

#include "forgery/backend/kernels.hpp"
#include "forgery/backend/op_set.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/layers/context.hpp"
#include "forgery/layers/conv_geometry.hpp"
#include "forgery/layers/init.hpp"

namespace forgery {

namespace detail {

template <index_t C, index_t H, index_t W, index_t Out, index_t K, index_t Stride, index_t Pad, bool HasBias, class B>
class Conv2dLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using Trans = ::forgery::backend::Trans;
  static constexpr index_t out_height = positive_or_one(conv_output_extent(H, K, Stride, Pad));
  static constexpr index_t out_width = positive_or_one(conv_output_extent(W, K, Stride, Pad));
  using input_shape = Shape<C, H, W>;
  using output_shape = Shape<Out, out_height, out_width>;
  static constexpr ConvGeometry geometry{C, H, W, K, Stride, Pad, out_height, out_width};
  static constexpr index_t pixels = out_height * out_width;
  /// The weight matrix leads the parameters, Out x (C K K) column-major: weight (o, ckk) is
  /// at ckk * Out + o with ckk = (c K + ky) K + kx (what SpectralNorm normalises).
  static constexpr index_t weight_rows = Out, weight_cols = C * K * K;
  static constexpr index_t weight_count = weight_rows * weight_cols;
  static constexpr index_t param_count = weight_count + (HasBias ? Out : 0);
  static constexpr const char* name = "Conv2d";

  void init_params(S* p, RandomStream& rng, Init scheme) const {
    init_weights<B>(p, weight_count, C * K * K, Out * K * K, scheme, rng);
    if constexpr (HasBias) B::fill(Out, p + weight_count, S(0));
  }

  void forward(const S* p, ConstBatchView<S> x, BatchView<S> y, const Context&) const {
    lower(x, x_);
    project(p, x_, y, HasBias ? p + weight_count : nullptr);
  }

  void backward(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S>, ConstBatchView<S> dy, BatchView<S> dx) const {
    if (g != nullptr && HasBias) B::channel_sums(x.batch(), Out, pixels, dy.data(), S(1), g + weight_count);
    pull_back(p, g, x, x_, dy, dx);
  }

  // Tangent pass (the layer is affine in x): y = conv(x) + b, ty = conv(tx).
  void forward_dual(const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context&) const {
    lower(x, x_);
    project(p, x_, y, HasBias ? p + weight_count : nullptr);
    lower(tx, t_);
    project(p, t_, ty, nullptr);
  }

  // For an objective of (y, ty): dW += (gy, x) + (gty, tx) contributions, db += sums of gy,
  // gx = conv^T(gy), gtx = conv^T(gty).
  void backward_dual(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S>, ConstBatchView<S>,
                     ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx, BatchView<S> gtx) const {
    if (g != nullptr && HasBias) B::channel_sums(x.batch(), Out, pixels, gy.data(), S(1), g + weight_count);
    pull_back(p, g, x, x_, gy, gx);
    pull_back(p, g, tx, t_, gty, gtx);
  }

private:
  using Buffer = typename B::template buffer<S>;

  // The column matrix of one input, and which input (pointer, batch) it was lowered from:
  // backward reuses the columns of the matching forward and lowers again otherwise.
  struct Lowered {
    Buffer cols;
    const S* source = nullptr;
    index_t batch = 0;
  };

  static void grow(Buffer& b, index_t n) {
    if (b.size() < n) b.resize(n);
  }

  static void lower(ConstBatchView<S> x, Lowered& l) {
    const index_t n = x.batch();
    grow(l.cols, pixels * n * weight_cols);
    B::im2col(geometry, n, x.data(), l.cols.data(), pixels * n);
    l.source = x.data();
    l.batch = n;
  }

  // y = conv(x) (+ bias): Yt = cols W^T, then the rows are moved to CHW.
  void project(const S* p, const Lowered& l, BatchView<S> y, const S* bias) const {
    const index_t n = l.batch, m = pixels * n;
    grow(rows_, m * Out);
    B::gemm(Trans::no, Trans::yes, m, Out, weight_cols, S(1), l.cols.data(), m, p, Out, S(0), rows_.data(), m);
    B::rows_to_images(n, Out, pixels, rows_.data(), m, y.data(), bias);
  }

  // dW += dYt^T cols(x) (g not null), dx = col2im(dYt W) (dx not empty), with dYt = dy as rows.
  void pull_back(const S* p, S* g, ConstBatchView<S> x, Lowered& l, ConstBatchView<S> dy, BatchView<S> dx) const {
    const bool params = g != nullptr, input = !dx.empty();
    if (!params && !input) return;
    const index_t n = x.batch(), m = pixels * n;
    grow(rows_, m * Out);
    B::images_to_rows(n, Out, pixels, dy.data(), rows_.data(), m);
    if (params) {
      if (l.source != x.data() || l.batch != n) lower(x, l);
      B::gemm(Trans::yes, Trans::no, Out, weight_cols, m, S(1), rows_.data(), m, l.cols.data(), m, S(1), g, Out);
    }
    if (input) {
      grow(dcols_, m * weight_cols);
      B::gemm(Trans::no, Trans::no, m, weight_cols, Out, S(1), rows_.data(), m, p, Out, S(0), dcols_.data(), m);
      B::col2im(geometry, n, dcols_.data(), m, dx.data());
    }
  }

  // Workspace, not state: a pass is logically const, and the buffers only grow.
  mutable Lowered x_{}, t_{};
  mutable Buffer rows_{};  // (P N) x Out: the product before the move to CHW, or dy as rows
  mutable Buffer dcols_{}; // (P N) x (C K K): the gradient of the column matrix
};

} // namespace detail

/// 2-D convolution with `Out` output channels and a K x K kernel on (C, H, W) samples;
/// the output is (Out, Ho, Wo) with Ho = (H + 2 Pad - K) / Stride + 1 (rounded down).
/// \tparam Out number of output channels.
/// \tparam K kernel height and width.
/// \tparam Stride step between kernel positions, in both directions.
/// \tparam Pad zeros added on each side of the image, in both directions.
/// \tparam HasBias whether the layer adds a learned per-channel bias (drop it before a norm layer).
template <index_t Out, index_t K, index_t Stride = 1, index_t Pad = 0, bool HasBias = true>
struct Conv2d {
  static_assert(Out > 0, "fg::Conv2d<Out, K, Stride, Pad>: Out, the number of output channels, must be positive.");
  static_assert(K > 0, "fg::Conv2d<Out, K, Stride, Pad>: the kernel size K must be positive.");
  static_assert(Stride >= 1, "fg::Conv2d<Out, K, Stride, Pad>: Stride must be at least 1.");
  static_assert(Pad >= 0 && Pad < K, "fg::Conv2d<Out, K, Stride, Pad>: Pad must lie in [0, K); a padding of K or more "
                                     "only adds windows that see nothing but zeros, so lower Pad.");
  template <class In>
  struct bind {
    static_assert(In::rank == 3,
                  "fg::Conv2d needs a (C, H, W) input: use fg::Input<C, H, W> or fg::Reshape<C, H, W> before it.");
    static constexpr index_t C = detail::chw_dim<In, 0>(1), H = detail::chw_dim<In, 1>(K),
                             W = detail::chw_dim<In, 2>(K);
    static_assert(K <= H + 2 * Pad && K <= W + 2 * Pad,
                  "fg::Conv2d: the kernel is larger than the padded input (K > H + 2 Pad or K > W + 2 Pad); use a "
                  "smaller K, a larger Pad, or a larger input.");
    using output_shape = Shape<Out, detail::positive_or_one(conv_output_extent(H, K, Stride, Pad)),
                               detail::positive_or_one(conv_output_extent(W, K, Stride, Pad))>;
    template <class B>
    using layer = detail::Conv2dLayer<C, H, W, Out, K, Stride, Pad, HasBias, B>;
  };
};

} // namespace forgery
