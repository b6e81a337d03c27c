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
class AdamState {
public:
  using Config = typename Policy::Config;
  using scalar = typename B::scalar;
  using buffer = typename B::template buffer<scalar>;

  /// Validates `cfg`; allocates both moment buffers, zeroed.
  AdamState(const Config& cfg, index_t n) : cfg_(cfg), n_(n) {
    cfg_.validate();
    require_size(Policy::name, n);
    exp_avg_.resize(n);
    exp_avg_sq_.resize(n);
  }

  /// One update of params[0, size()) from grads[0, size()): one fused pass, no allocation.
  /// The config is re-checked first (lr may be 0 here, as a schedule may set it).
  void step(scalar* params, const scalar* grads) {
    cfg_.validate(LrRule::non_negative);
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

  [[nodiscard]] Config& config() noexcept { return cfg_; }
  [[nodiscard]] const Config& config() const noexcept { return cfg_; }
  /// Steps taken; the bias correction of the next step uses t = steps() + 1.
  [[nodiscard]] long long steps() const noexcept { return steps_; }
  [[nodiscard]] index_t size() const noexcept { return n_; }

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
  /// For checkpoints: restores the step count, which the bias correction depends on.
  void set_steps(long long steps) {
    require_steps(Policy::name, steps);
    steps_ = steps;
  }

private:
  Config cfg_;
  index_t n_;
  long long steps_ = 0;
  buffer exp_avg_;
  buffer exp_avg_sq_;
};

} // namespace forgery::optim::detail
