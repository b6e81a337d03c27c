// Adam (Kingma & Ba 2015) with bias correction and L2 weight decay added to the gradient,
// following torch.optim.Adam's formulas (amsgrad off) so that results can be compared.
#pragma once

#include "forgery/core/config.hpp"
#include "forgery/optim/detail.hpp"

namespace forgery::optim {

/// Adam: m and v are exponential averages of g and g^2 with g = grad + weight_decay * p;
/// p -= lr * m_hat / (sqrt(v_hat) + eps) with the bias-corrected m_hat, v_hat.
/// For decoupled weight decay use AdamW.
struct Adam {
  static constexpr const char* name = "Adam";

  struct Config {
    double lr = 1e-3;
    double beta1 = 0.9;        ///< in [0, 1)
    double beta2 = 0.999;      ///< in [0, 1)
    double eps = 1e-8;         ///< > 0, added to sqrt(v_hat)
    double weight_decay = 0.0; ///< L2 penalty, added to the gradient

    /// Throws config_error naming the first invalid field ("Adam.lr", ...).
    void validate(LrRule lr_rule = LrRule::positive) const {
      detail::require_lr("Adam.lr", lr, lr_rule);
      detail::require_decay("Adam.beta1", beta1);
      detail::require_decay("Adam.beta2", beta2);
      detail::require_positive("Adam.eps", eps);
      detail::require_non_negative("Adam.weight_decay", weight_decay);
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
                                             static_cast<scalar>(cfg_.weight_decay),
                                             scalar(1)};
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
