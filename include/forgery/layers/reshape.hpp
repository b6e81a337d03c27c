// Reshape and Flatten: change the per-sample shape, keep the values (a sample is already
// contiguous, so the data are copied unchanged).
#pragma once

#include "forgery/core/batch_view.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/layers/context.hpp"

namespace forgery {

namespace detail {

template <class In, class Out, class B>
class ReshapeLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using input_shape = In;
  using output_shape = Out;
  static constexpr index_t param_count = 0;
  static constexpr const char* name = "Reshape";

  void forward(const S*, ConstBatchView<S> x, BatchView<S> y, const Context&) const {
    B::copy(x.size(), x.data(), y.data());
  }
  void backward(const S*, S*, ConstBatchView<S>, ConstBatchView<S>, ConstBatchView<S> dy, BatchView<S> dx) const {
    if (!dx.empty()) B::copy(dy.size(), dy.data(), dx.data());
  }
  void forward_dual(const S*, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context&) const {
    B::copy(x.size(), x.data(), y.data());
    B::copy(tx.size(), tx.data(), ty.data());
  }
  void backward_dual(const S*, S*, ConstBatchView<S>, ConstBatchView<S>, ConstBatchView<S>, ConstBatchView<S>,
                     ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx, BatchView<S> gtx) const {
    if (!gx.empty()) B::copy(gy.size(), gy.data(), gx.data());
    if (!gtx.empty()) B::copy(gty.size(), gty.data(), gtx.data());
  }
};

} // namespace detail

/// Gives each sample the shape Dims... (same number of values), e.g. Reshape<128, 7, 7>.
template <index_t... Dims>
struct Reshape {
  template <class In>
  struct bind {
    static_assert(In::size == Shape<Dims...>::size,
                  "fg::Reshape<Dims...>: the new shape must hold as many values as the input shape; "
                  "make the product of Dims equal the previous layer's output size.");
    using output_shape = Shape<Dims...>;
    template <class B>
    using layer = detail::ReshapeLayer<In, output_shape, B>;
  };
};

/// Flattens each sample to one dimension (C*H*W), as Dense expects.
struct Flatten {
  template <class In>
  struct bind {
    using output_shape = Shape<In::size>;
    template <class B>
    using layer = detail::ReshapeLayer<In, output_shape, B>;
  };
};

} // namespace forgery
