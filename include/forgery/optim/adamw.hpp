// AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay, following
// torch.optim.AdamW's formulas (amsgrad off) so that results can be compared.
#pragma once

#include "forgery/core/config.hpp"
#include "forgery/optim/detail.hpp"

namespace forgery::optim {

/// AdamW: p -= lr * weight_decay * p, then the Adam update (without an L2 term) on the
/// decayed p. The decay does not pass through the moments, unlike Adam's weight_decay.
struct AdamW {
  static constexpr const char* name = "AdamW";

  struct Config {
    double lr = 1e-3;
    double beta1 = 0.9;         ///< in [0, 1)
    double beta2 = 0.999;       ///< in [0, 1)
    double eps = 1e-8;          ///< > 0, added to sqrt(v_hat)
    double weight_decay = 1e-2; ///< decoupled decay rate, scaled by lr (PyTorch's default)

    /// Throws config_error naming the first invalid field ("AdamW.lr", ...).
    void validate(LrRule lr_rule = LrRule::positive) const {
      detail::require_lr("AdamW.lr", lr, lr_rule);
      detail::require_decay("AdamW.beta1", beta1);
      detail::require_decay("AdamW.beta2", beta2);
      detail::require_positive("AdamW.eps", eps);
      detail::require_non_negative("AdamW.weight_decay", weight_decay);
    }
  };

  /// The first and second moments for one parameter buffer of n scalars on backend B.
  /// \tparam B the backend (fg::backend::Cpu<float>, ...).
  template <class B>
  class State {
  public:
    using scalar = typename B::scalar;
    using buffer = typename B::template buffer<scalar>;

    /// Validates `cfg`; allocates both moment buffers, zeroed.
    State(const Config& cfg, index_t n) : cfg_(cfg), n_(n) {
      cfg_.validate();
      detail::require_size(name, n);
      exp_avg_.resize(n);
      exp_avg_sq_.resize(n);
    }

    /// One update of params[0, size()) from grads[0, size()): one fused pass, no allocation.
    /// The config is re-checked first (lr may be 0 here, as a schedule may set it).
    void step(scalar* params, const scalar* grads) {
      cfg_.validate(LrRule::non_negative);
      const auto c = detail::adam_correction(cfg_.lr, cfg_.beta1, cfg_.beta2, steps_ + 1);
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
                                             scalar(0),
                                             static_cast<scalar>(1.0 - cfg_.lr * cfg_.weight_decay)};
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
      detail::require_steps(name, steps);
      steps_ = steps;
    }

  private:
    Config cfg_;
    index_t n_;
    long long steps_ = 0;
    buffer exp_avg_;
    buffer exp_avg_sq_;
  };
};

} // namespace forgery::optim
