// The state shared by Adam and AdamW: moments, step count, the fused update launch and
// checkpoint access, written once.
#pragma once

#include "forgery/core/config.hpp"
#include "forgery/optim/detail.hpp"

namespace forgery::optim::detail {

/// The state of Adam and AdamW for one parameter buffer of n scalars on backend B: the
/// first and second moments and the step count. The two differ only in where the weight
/// decay enters the fused update (L2 in the gradient, or decoupled on the parameters).
/// \tparam Policy Adam or AdamW (its Config and name). \tparam B the backend.
template <class Policy, class B, bool Decoupled>
class AdamState : public StateBase<Policy, B> {
  using Base = StateBase<Policy, B>;
  using Base::cfg_, Base::n_, Base::steps_;

public:
  using typename Base::buffer, typename Base::Config, typename Base::scalar;

  /// Validates `cfg`; allocates both moment buffers, zeroed.
  AdamState(const Config& cfg, index_t n) : Base(cfg, n) {
    exp_avg_.resize(n);
    exp_avg_sq_.resize(n);
  }

  /// One update of params[0, size()) from grads[0, size()): one fused pass, no allocation.
  /// The config is re-checked first (lr may be 0 here, as a schedule may set it).
  void step(scalar* params, const scalar* grads) {
    cfg_.validate(LrRule::non_negative);
    // The bias correction of this step uses t = steps() + 1 (set_steps restores it).
    const auto c = adam_correction(cfg_.lr, cfg_.beta1, cfg_.beta2, steps_ + 1);
    const kernels::AdamStep<scalar> kernel{params,
                                           grads,
                                           exp_avg_.data(),
                                           exp_avg_sq_.data(),
                                           static_cast<scalar>(cfg_.beta1),
                                           static_cast<scalar>(1.0 - cfg_.beta1),
                                           static_cast<scalar>(cfg_.beta2),
                                           static_cast<scalar>(1.0 - cfg_.beta2),
                                           static_cast<scalar>(c.step_size),
                                           static_cast<scalar>(c.sqrt_bias_correction2),
                                           static_cast<scalar>(cfg_.eps),
                                           Decoupled ? scalar(0) : static_cast<scalar>(cfg_.weight_decay),
                                           Decoupled ? static_cast<scalar>(1.0 - cfg_.lr * cfg_.weight_decay)
                                                     : scalar(1)};
    B::for_each(n_, kernel);
    ++steps_;
  }

  /// For checkpoints: calls f(name, buffer&) for "exp_avg" (m) and "exp_avg_sq" (v),
  /// named as in PyTorch's state_dict.
  template <class F>
  void for_each_state(F&& f) {
    f("exp_avg", exp_avg_);
    f("exp_avg_sq", exp_avg_sq_);
  }
  template <class F>
  void for_each_state(F&& f) const {
    f("exp_avg", exp_avg_);
    f("exp_avg_sq", exp_avg_sq_);
  }

private:
  buffer exp_avg_;
  buffer exp_avg_sq_;
};

} // namespace forgery::optim::detail
