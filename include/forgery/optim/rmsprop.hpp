// RMSprop (Hinton's lecture 6e; centered variant after Graves 2013) with optional momentum
// and L2 weight decay, following torch.optim.RMSprop's formulas so results can be compared.
#pragma once

#include <cmath>

#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/optim/detail.hpp"

namespace forgery {

namespace kernels {

/// One RMSprop update of element i (torch.optim.RMSprop):
///   g = grad + wd * p
///   v = alpha v + (1 - alpha) g^2
///   centered: a = alpha a + (1 - alpha) g;  d = sqrt(v - a^2) + eps,  else d = sqrt(v) + eps
///   with momentum: b = momentum b + g / d;  p = p - lr b,  else p = p - lr g / d
template <class S>
struct RmspropStep {
  S* p;
  const S* grad;
  S* square_avg;
  S* grad_avg;        ///< null unless centered
  S* momentum_buffer; ///< null unless momentum > 0
  S lr, alpha, one_minus_alpha, eps, weight_decay, momentum;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const S pi = p[i];
    S g = grad[i];
    if (weight_decay != S(0)) g += weight_decay * pi;
    const S v = alpha * square_avg[i] + one_minus_alpha * (g * g);
    square_avg[i] = v;
    S d;
    if (grad_avg != nullptr) {
      const S a = alpha * grad_avg[i] + one_minus_alpha * g;
      grad_avg[i] = a;
      d = std::sqrt(v - a * a) + eps;
    } else {
      d = std::sqrt(v) + eps;
    }
    if (momentum_buffer != nullptr) {
      const S b = momentum * momentum_buffer[i] + g / d;
      momentum_buffer[i] = b;
      p[i] = pi - lr * b;
    } else {
      p[i] = pi - lr * (g / d);
    }
  }
};

} // namespace kernels

namespace optim {

/// RMSprop: divides the gradient by a running root mean square of recent gradients (minus
/// their running mean when centered), optionally through a momentum buffer.
struct RMSprop {
  static constexpr const char* name = "RMSprop";

  struct Config {
    double lr = 1e-2;
    double alpha = 0.99;       ///< smoothing of the square average, in [0, 1)
    double eps = 1e-8;         ///< > 0, added to the root mean square
    double weight_decay = 0.0; ///< L2 penalty, added to the gradient
    double momentum = 0.0;     ///< 0 disables the momentum buffer
    bool centered = false;     ///< normalise by an estimate of the variance instead

    /// Calls f(name, field&) for each field (checkpoints save and restore them by name).
    template <class F>
    void fields(F&& f) {
      f("lr", lr);
      f("alpha", alpha);
      f("eps", eps);
      f("weight_decay", weight_decay);
      f("momentum", momentum);
      f("centered", centered);
    }
    template <class F>
    void fields(F&& f) const {
      f("lr", lr);
      f("alpha", alpha);
      f("eps", eps);
      f("weight_decay", weight_decay);
      f("momentum", momentum);
      f("centered", centered);
    }

    /// Throws config_error naming the first invalid field ("RMSprop.lr", ...).
    void validate(LrRule lr_rule = LrRule::positive) const {
      detail::require_lr("RMSprop.lr", lr, lr_rule);
      detail::require_decay("RMSprop.alpha", alpha);
      detail::require_positive("RMSprop.eps", eps);
      detail::require_non_negative("RMSprop.weight_decay", weight_decay);
      detail::require_non_negative("RMSprop.momentum", momentum);
    }
  };

  /// The square average (and, as configured, gradient average and momentum buffer) for one
  /// parameter buffer of n scalars on backend B.
  /// \tparam B the backend (fg::backend::Cpu<float>, ...).
  template <class B>
  class State : public detail::StateBase<RMSprop, B> {
    using Base = detail::StateBase<RMSprop, B>;
    using Base::cfg_, Base::n_, Base::steps_;

  public:
    using typename Base::buffer, typename Base::scalar;

    /// Validates `cfg`; allocates the buffers it needs, zeroed: square_avg always,
    /// momentum_buffer if momentum > 0, grad_avg if centered.
    State(const Config& cfg, index_t n) : Base(cfg, n), has_momentum_(cfg.momentum > 0.0), has_grad_avg_(cfg.centered) {
      square_avg_.resize(n);
      if (has_momentum_) momentum_buffer_.resize(n);
      if (has_grad_avg_) grad_avg_.resize(n);
    }

    /// One update of params[0, size()) from grads[0, size()): one fused pass, no allocation.
    /// The config is re-checked (lr may be 0 here); momentum and centering cannot be
    /// switched on after a State was built without their buffers.
    void step(scalar* params, const scalar* grads) {
      cfg_.validate(LrRule::non_negative);
      if (cfg_.momentum > 0.0 && !has_momentum_)
        throw config_error("RMSprop.momentum", detail::format_value(cfg_.momentum),
                           "0, as when this State was built without a momentum buffer (build a new State)");
      if (cfg_.centered != has_grad_avg_)
        throw config_error("RMSprop.centered", cfg_.centered ? "true" : "false",
                           has_grad_avg_ ? "true, as when this State was built (build a new State)"
                                         : "false, as when this State was built (build a new State)");
      const kernels::RmspropStep<scalar> kernel{params,
                                                grads,
                                                square_avg_.data(),
                                                has_grad_avg_ ? grad_avg_.data() : nullptr,
                                                cfg_.momentum > 0.0 ? momentum_buffer_.data() : nullptr,
                                                static_cast<scalar>(cfg_.lr),
                                                static_cast<scalar>(cfg_.alpha),
                                                static_cast<scalar>(1.0 - cfg_.alpha),
                                                static_cast<scalar>(cfg_.eps),
                                                static_cast<scalar>(cfg_.weight_decay),
                                                static_cast<scalar>(cfg_.momentum)};
      B::for_each(n_, kernel);
      ++steps_;
    }

    /// For checkpoints: calls f(name, buffer&) for "square_avg", then "momentum_buffer" and
    /// "grad_avg" when the State was built with them; named as in PyTorch's state_dict.
    template <class F>
    void for_each_state(F&& f) {
      f("square_avg", square_avg_);
      if (has_momentum_) f("momentum_buffer", momentum_buffer_);
      if (has_grad_avg_) f("grad_avg", grad_avg_);
    }
    template <class F>
    void for_each_state(F&& f) const {
      f("square_avg", square_avg_);
      if (has_momentum_) f("momentum_buffer", momentum_buffer_);
      if (has_grad_avg_) f("grad_avg", grad_avg_);
    }

  private:
    bool has_momentum_;
    bool has_grad_avg_;
    buffer square_avg_;
    buffer momentum_buffer_;
    buffer grad_avg_;
  };
};

} // namespace optim

} // namespace forgery
