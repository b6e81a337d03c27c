// Dropout (inverted, Srivastava et al. 2014): in train mode each value is kept with
// probability 1 - P and scaled by 1 / (1 - P); in eval mode the layer is the identity.
#pragma once

#include "forgery/backend/op_set.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/layers/context.hpp"

namespace forgery {

namespace kernels {

/// Turns uniform (0, 1) draws into the mask in place: 0 where u < p, else `scale`.
template <class S>
struct DropoutMask {
  S* mask;
  S p, scale;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { mask[i] = mask[i] < p ? S(0) : scale; }
};

/// y[i] = mask[i] * x[i].
template <class S>
struct DropoutApply {
  const S* mask;
  const S* x;
  S* y;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { y[i] = mask[i] * x[i]; }
};

} // namespace kernels

namespace detail {

template <class In, double P, class B>
class DropoutLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using input_shape = In;
  using output_shape = In;
  static constexpr index_t param_count = 0;
  static constexpr const char* name = "Dropout";

  void forward(const S*, ConstBatchView<S> x, BatchView<S> y, const Context& ctx) {
    if (draw_mask(x.size(), ctx))
      B::for_each(x.size(), kernels::DropoutApply<S>{mask_.data(), x.data(), y.data()});
    else
      B::copy(x.size(), x.data(), y.data());
  }
  void backward(const S*, S*, ConstBatchView<S>, ConstBatchView<S>, ConstBatchView<S> dy, BatchView<S> dx) const {
    pass_back(dy, dx);
  }
  // The tangent goes through the same mask as the value: the layer is linear in x.
  void forward_dual(const S*, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context& ctx) {
    if (draw_mask(x.size(), ctx)) {
      B::for_each(x.size(), kernels::DropoutApply<S>{mask_.data(), x.data(), y.data()});
      B::for_each(tx.size(), kernels::DropoutApply<S>{mask_.data(), tx.data(), ty.data()});
    } else {
      B::copy(x.size(), x.data(), y.data());
      B::copy(tx.size(), tx.data(), ty.data());
    }
  }
  void backward_dual(const S*, S*, ConstBatchView<S>, ConstBatchView<S>, ConstBatchView<S>, ConstBatchView<S>,
                     ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx, BatchView<S> gtx) const {
    pass_back(gy, gx);
    pass_back(gty, gtx);
  }

  /// The multipliers (0 or 1 / (1 - P)) of the last train-mode forward pass.
  [[nodiscard]] const S* mask() const noexcept { return mask_.data(); }

private:
  // Returns whether the pass applies a mask (train mode and P > 0), drawn here from ctx.rng.
  bool draw_mask(index_t n, const Context& ctx) {
    masked_ = ctx.mode == Mode::train && P > 0.0;
    if (!masked_) return false;
    if (ctx.rng == nullptr)
      throw error("fg::Dropout in train mode needs a random stream: call Network::set_random_stream");
    if (mask_.size() < n) mask_.resize(n);
    B::fill_uniform(n, mask_.data(), *ctx.rng, S(0), S(1));
    B::for_each(n, kernels::DropoutMask<S>{mask_.data(), static_cast<S>(P), static_cast<S>(1.0 / (1.0 - P))});
    return true;
  }
  void pass_back(ConstBatchView<S> dy, BatchView<S> dx) const {
    if (dx.empty()) return;
    if (masked_)
      B::for_each(dy.size(), kernels::DropoutApply<S>{mask_.data(), dy.data(), dx.data()});
    else
      B::copy(dy.size(), dy.data(), dx.data());
  }

  typename B::template buffer<S> mask_; // grows, never shrinks
  bool masked_ = false;
};

} // namespace detail

/// Inverted dropout: in train mode each value is zeroed with probability P and the others
/// are scaled by 1 / (1 - P), so the expected output equals the input; eval mode is the
/// identity. The mask is drawn from the network's random stream
/// (Network::set_random_stream), so it does not depend on the thread count.
/// \tparam P the probability of dropping a value, in [0, 1).
template <double P = 0.5>
struct Dropout {
  static_assert(P >= 0.0 && P < 1.0, "fg::Dropout<P>: the drop probability P must lie in [0, 1).");
  template <class In>
  struct bind {
    using output_shape = In;
    template <class B>
    using layer = detail::DropoutLayer<In, P, B>;
  };
};

} // namespace forgery
