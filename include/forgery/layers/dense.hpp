// Dense (fully connected) layer: Y = W X + b with W of shape out x in, on flat inputs.
#pragma once

#include "forgery/backend/op_set.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/layers/context.hpp"
#include "forgery/layers/init.hpp"

namespace forgery {

namespace detail {

template <index_t In, index_t Out, bool HasBias, class B>
class DenseLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using Trans = ::forgery::backend::Trans;
  using input_shape = Shape<In>;
  using output_shape = Shape<Out>;
  static constexpr index_t weight_count = Out * In;
  /// The weight matrix leads the layer's parameters, weight_rows x weight_cols column-major
  /// (what SpectralNorm normalises).
  static constexpr index_t weight_rows = Out, weight_cols = In;
  static constexpr index_t param_count = weight_count + (HasBias ? Out : 0);
  static constexpr const char* name = "Dense";

  void init_params(S* p, RandomStream& rng, Init scheme) const {
    init_weights<B>(p, weight_count, In, Out, scheme, rng);
    if constexpr (HasBias) B::fill(Out, p + weight_count, S(0));
  }

  void forward(const S* p, ConstBatchView<S> x, BatchView<S> y, const Context&) const { affine(p, x, y); }

  void backward(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S>, ConstBatchView<S> dy, BatchView<S> dx) const {
    const index_t n = x.batch();
    if (g != nullptr) {
      B::gemm(Trans::no, Trans::yes, Out, In, n, S(1), dy.data(), Out, x.data(), In, S(1), g, Out);
      if constexpr (HasBias) B::row_sums(Out, n, dy.data(), Out, S(1), g + weight_count);
    }
    if (!dx.empty()) B::gemm(Trans::yes, Trans::no, In, n, Out, S(1), p, Out, dy.data(), Out, S(0), dx.data(), In);
  }

  // Tangent pass: y = W x + b, ty = W tx.
  void forward_dual(const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context& ctx) const {
    affine(p, x, y);
    forward_tangent(p, x, tx, y, ty, ctx);
  }
  // The tangent alone, ty = W tx (the cached y is not needed).
  void forward_tangent(const S* p, ConstBatchView<S>, ConstBatchView<S> tx, ConstBatchView<S>, BatchView<S> ty,
                       const Context&) const {
    B::gemm(Trans::no, Trans::no, Out, tx.batch(), In, S(1), p, Out, tx.data(), In, S(0), ty.data(), Out);
  }

  // For an objective of (y, ty), with g == nullptr meaning 'no parameter gradients': dW += gy x^T + gty tx^T, db += sum
  // gy, gx = W^T gy, gtx = W^T gty.
  void backward_dual(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S>, ConstBatchView<S>,
                     ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx, BatchView<S> gtx) const {
    const index_t n = x.batch();
    if (g != nullptr) {
      B::gemm(Trans::no, Trans::yes, Out, In, n, S(1), gy.data(), Out, x.data(), In, S(1), g, Out);
      B::gemm(Trans::no, Trans::yes, Out, In, n, S(1), gty.data(), Out, tx.data(), In, S(1), g, Out);
      if constexpr (HasBias) B::row_sums(Out, n, gy.data(), Out, S(1), g + weight_count);
    }
    if (!gx.empty()) B::gemm(Trans::yes, Trans::no, In, n, Out, S(1), p, Out, gy.data(), Out, S(0), gx.data(), In);
    if (!gtx.empty()) B::gemm(Trans::yes, Trans::no, In, n, Out, S(1), p, Out, gty.data(), Out, S(0), gtx.data(), In);
  }

private:
  static void affine(const S* p, ConstBatchView<S> x, BatchView<S> y) {
    const index_t n = x.batch();
    B::gemm(Trans::no, Trans::no, Out, n, In, S(1), p, Out, x.data(), In, S(0), y.data(), Out);
    if constexpr (HasBias) B::add_column_vector(Out, n, p + weight_count, y.data());
  }
};

} // namespace detail

/// Fully connected layer with `Out` outputs; the input size is inferred.
/// \tparam Out number of output features.
/// \tparam HasBias whether the layer adds a learned bias (drop it before a norm layer).
template <index_t Out, bool HasBias = true>
struct Dense {
  static_assert(Out > 0, "fg::Dense<Out>: Out must be positive.");
  template <class In>
  struct bind {
    static_assert(In::rank == 1, "fg::Dense needs a flat (1-D) input: insert fg::Flatten before this Dense "
                                 "(after an Input<C, H, W> or a convolution).");
    using output_shape = Shape<Out>;
    template <class B>
    using layer = detail::DenseLayer<In::size, Out, HasBias, B>;
  };
};

} // namespace forgery
