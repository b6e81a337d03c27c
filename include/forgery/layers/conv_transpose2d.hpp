// ConvTranspose2d: the adjoint of Conv2d (the upsampling layer of DCGAN generators), run as
// one GEMM over the whole batch followed by col2im.
//
// With P = H W input pixels per sample and N samples, the input is moved to a column-major
// (P N) x C row matrix Xt (row j P + p). Then
//   forward:   cols = Xt W, one GEMM of m = P N giving (P N) x (Out K K), and y = col2im(cols)
//              + bias: the scatter of every input pixel through the kernel, as a gather per
//              output row (no races, fixed order);
//   backward:  dcols = im2col(dy), dW += Xt^T dcols (one GEMM, k = P N), db += channel sums
//              of dy, dXt = dcols W^T, moved back to CHW.
// This is Conv2d's scheme with the roles of input and output swapped, on the geometry of the
// convolution from (Out, Ho, Wo) to (C, H, W) that this layer is the adjoint of. Workspace
// grows to the largest batch and never shrinks.
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
class ConvTranspose2dLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using Trans = ::forgery::backend::Trans;
  static constexpr index_t out_height = positive_or_one(conv_transpose_output_extent(H, K, Stride, Pad));
  static constexpr index_t out_width = positive_or_one(conv_transpose_output_extent(W, K, Stride, Pad));
  using input_shape = Shape<C, H, W>;
  using output_shape = Shape<Out, out_height, out_width>;
  /// The convolution this layer is the adjoint of: from the output (Out, Ho, Wo) to the
  /// input's H x W grid.
  static constexpr ConvGeometry geometry{Out, out_height, out_width, K, Stride, Pad, H, W};
  static constexpr index_t pixels = H * W;
  /// The weight matrix leads the parameters, C x (Out K K) column-major: weight (c, okk) is
  /// at okk * C + c with okk = (o K + ky) K + kx. The same memory as the weight of the
  /// Conv2d<C, K, Stride, Pad> from (Out, Ho, Wo) that this layer is the adjoint of.
  static constexpr index_t weight_rows = C, weight_cols = Out * K * K;
  static constexpr index_t weight_count = weight_rows * weight_cols;
  static constexpr index_t param_count = weight_count + (HasBias ? Out : 0);
  static constexpr const char* name = "ConvTranspose2d";

  // Fans as the forward pass sees them: an output sums over C channels and (up to) K x K taps.
  // PyTorch's default initialisation counts the other way round (fan_in = Out K K).
  void init_params(S* p, RandomStream& rng, Init scheme) const {
    init_weights<B>(p, weight_count, C * K * K, Out * K * K, scheme, rng);
    if constexpr (HasBias) B::fill(Out, p + weight_count, S(0));
  }

  void forward(const S* p, ConstBatchView<S> x, BatchView<S> y, const Context&) const {
    gather(x, x_);
    project(p, x_, y, HasBias ? p + weight_count : nullptr);
  }

  void backward(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S>, ConstBatchView<S> dy, BatchView<S> dx) const {
    if (g != nullptr && HasBias)
      B::channel_sums(x.batch(), Out, out_height * out_width, dy.data(), S(1), g + weight_count);
    pull_back(p, g, x, x_, dy, dx);
  }

  // Tangent pass (the layer is affine in x): y = convT(x) + b, ty = convT(tx).
  void forward_dual(const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context&) const {
    gather(x, x_);
    project(p, x_, y, HasBias ? p + weight_count : nullptr);
    gather(tx, t_);
    project(p, t_, ty, nullptr);
  }

  // For an objective of (y, ty): dW += (gy, x) + (gty, tx) contributions, db += sums of gy,
  // gx = convT^T(gy), gtx = convT^T(gty).
  void backward_dual(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S>, ConstBatchView<S>,
                     ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx, BatchView<S> gtx) const {
    if (g != nullptr && HasBias)
      B::channel_sums(x.batch(), Out, out_height * out_width, gy.data(), S(1), g + weight_count);
    pull_back(p, g, x, x_, gy, gx);
    pull_back(p, g, tx, t_, gty, gtx);
  }

private:
  using Buffer = typename B::template buffer<S>;

  // One input as a (P N) x C row matrix, and which input (pointer, batch) it came from:
  // backward reuses the rows of the matching forward and gathers again otherwise.
  struct Gathered {
    Buffer rows;
    const S* source = nullptr;
    index_t batch = 0;
  };

  static void grow(Buffer& b, index_t n) {
    if (b.size() < n) b.resize(n);
  }

  static void gather(ConstBatchView<S> x, Gathered& r) {
    const index_t n = x.batch();
    grow(r.rows, pixels * n * C);
    B::images_to_rows(n, C, pixels, x.data(), r.rows.data(), pixels * n);
    r.source = x.data();
    r.batch = n;
  }

  // y = convT(x) (+ bias): cols = Xt W, then col2im.
  void project(const S* p, const Gathered& r, BatchView<S> y, const S* bias) const {
    const index_t n = r.batch, m = pixels * n;
    grow(cols_, m * weight_cols);
    B::gemm(Trans::no, Trans::no, m, weight_cols, C, S(1), r.rows.data(), m, p, C, S(0), cols_.data(), m);
    B::col2im(geometry, n, cols_.data(), m, y.data(), bias);
  }

  // With dcols = im2col(dy): dW += Xt^T dcols (g not null), dx = dcols W^T as CHW (dx not empty).
  void pull_back(const S* p, S* g, ConstBatchView<S> x, Gathered& r, ConstBatchView<S> dy, BatchView<S> dx) const {
    const bool params = g != nullptr, input = !dx.empty();
    if (!params && !input) return;
    const index_t n = x.batch(), m = pixels * n;
    grow(cols_, m * weight_cols);
    B::im2col(geometry, n, dy.data(), cols_.data(), m);
    if (params) {
      if (r.source != x.data() || r.batch != n) gather(x, r);
      B::gemm(Trans::yes, Trans::no, C, weight_cols, m, S(1), r.rows.data(), m, cols_.data(), m, S(1), g, C);
    }
    if (input) {
      grow(drows_, m * C);
      B::gemm(Trans::no, Trans::yes, m, C, weight_cols, S(1), cols_.data(), m, p, C, S(0), drows_.data(), m);
      B::rows_to_images(n, C, pixels, drows_.data(), m, dx.data());
    }
  }

  // Workspace, not state: a pass is logically const, and the buffers only grow.
  mutable Gathered x_{}, t_{};
  mutable Buffer cols_{};  // (P N) x (Out K K): the product before col2im, or im2col(dy)
  mutable Buffer drows_{}; // (P N) x C: the input gradient before the move to CHW
};

} // namespace detail

/// Transposed 2-D convolution (the adjoint of Conv2d, as in PyTorch and DCGAN generators)
/// with `Out` output channels and a K x K kernel on (C, H, W) samples; the output is
/// (Out, Ho, Wo) with Ho = (H - 1) Stride - 2 Pad + K, e.g. ConvTranspose2d<64, 4, 2, 1>
/// doubles the height and width.
/// \tparam Out number of output channels.
/// \tparam K kernel height and width.
/// \tparam Stride upsampling factor: input pixels land Stride output pixels apart.
/// \tparam Pad rows and columns cropped from each side of the full output.
/// \tparam HasBias whether the layer adds a learned per-channel bias (drop it before a norm layer).
template <index_t Out, index_t K, index_t Stride = 1, index_t Pad = 0, bool HasBias = true>
struct ConvTranspose2d {
  static_assert(Out > 0,
                "fg::ConvTranspose2d<Out, K, Stride, Pad>: Out, the number of output channels, must be positive.");
  static_assert(K > 0, "fg::ConvTranspose2d<Out, K, Stride, Pad>: the kernel size K must be positive.");
  static_assert(Stride >= 1, "fg::ConvTranspose2d<Out, K, Stride, Pad>: Stride must be at least 1.");
  static_assert(Pad >= 0 && Pad < K, "fg::ConvTranspose2d<Out, K, Stride, Pad>: Pad must lie in [0, K), as for the "
                                     "Conv2d this layer is the adjoint of; lower Pad.");
  template <class In>
  struct bind {
    static_assert(In::rank == 3, "fg::ConvTranspose2d needs a (C, H, W) input: use fg::Input<C, H, W> or "
                                 "fg::Reshape<C, H, W> before it (a generator reshapes its Dense output).");
    static constexpr index_t C = detail::chw_dim<In, 0>(1), H = detail::chw_dim<In, 1>(1),
                             W = detail::chw_dim<In, 2>(1);
    static_assert(conv_transpose_output_extent(H, K, Stride, Pad) >= 1 &&
                      conv_transpose_output_extent(W, K, Stride, Pad) >= 1,
                  "fg::ConvTranspose2d: the padding crops away the whole output ((H - 1) Stride + K <= 2 Pad); "
                  "lower Pad.");
    using output_shape = Shape<Out, detail::positive_or_one(conv_transpose_output_extent(H, K, Stride, Pad)),
                               detail::positive_or_one(conv_transpose_output_extent(W, K, Stride, Pad))>;
    template <class B>
    using layer = detail::ConvTranspose2dLayer<C, H, W, Out, K, Stride, Pad, HasBias, B>;
  };
};

} // namespace forgery
