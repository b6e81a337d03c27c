// SGD with optional (Nesterov) momentum and L2 weight decay, following torch.optim.SGD's
// formulas so that results can be compared with PyTorch. The simplest optimizer to copy
// when writing one's own (see the Optimizer concept in core/concepts.hpp).
#pragma once

#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/optim/detail.hpp"

namespace forgery {

namespace kernels {

/// One SGD update of element i (torch.optim.SGD):
///   g = grad + wd * p
///   with momentum: b = g on the first step, else b = momentum b + (1 - dampening) g;
///                  g = nesterov ? g + momentum b : b
///   p = p - lr g
template <class S>
struct SgdStep {
  S* p;
  const S* grad;
  S* buf; ///< momentum buffer; null when momentum is 0
  S lr, weight_decay, momentum, one_minus_dampening;
  bool first, nesterov;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const S pi = p[i];
    S g = grad[i];
    if (weight_decay != S(0)) g += weight_decay * pi;
    if (buf != nullptr) {
      const S b = first ? g : momentum * buf[i] + one_minus_dampening * g;
      buf[i] = b;
      g = nesterov ? g + momentum * b : b;
    }
    p[i] = pi - lr * g;
  }
};

} // namespace kernels

namespace optim {

/// Stochastic gradient descent: p -= lr * g, with g = grad + weight_decay * p, optionally
/// through a momentum buffer (heavy-ball or Nesterov), exactly as torch.optim.SGD.
struct SGD {
  static constexpr const char* name = "SGD";

  struct Config {
    double lr = 1e-3;          ///< learning rate (PyTorch's default)
    double momentum = 0.0;     ///< 0 disables the momentum buffer
    double dampening = 0.0;    ///< in [0, 1]; scales the gradient entering the buffer by 1 - dampening
    double weight_decay = 0.0; ///< L2 penalty, added to the gradient
    bool nesterov = false;     ///< needs momentum > 0 and dampening 0

    /// Calls f(name, field&) for each field (checkpoints save and restore them by name).
    template <class F>
    void fields(F&& f) {
      f("lr", lr);
      f("momentum", momentum);
      f("dampening", dampening);
      f("weight_decay", weight_decay);
      f("nesterov", nesterov);
    }
    template <class F>
    void fields(F&& f) const {
      f("lr", lr);
      f("momentum", momentum);
      f("dampening", dampening);
      f("weight_decay", weight_decay);
      f("nesterov", nesterov);
    }

    /// Throws config_error naming the first invalid field ("SGD.lr", ...).
    void validate(LrRule lr_rule = LrRule::positive) const {
      detail::require_lr("SGD.lr", lr, lr_rule);
      detail::require_non_negative("SGD.momentum", momentum);
      if (!(dampening >= 0.0 && dampening <= 1.0))
        throw config_error("SGD.dampening", detail::format_value(dampening), "a value in [0, 1]");
      detail::require_non_negative("SGD.weight_decay", weight_decay);
      if (nesterov && !(momentum > 0.0 && dampening == 0.0))
        throw config_error("SGD.nesterov", "true",
                           "momentum > 0 and dampening = 0 (Nesterov momentum is a look-ahead on the momentum buffer)");
    }
  };

  /// The momentum buffer for one parameter buffer of n scalars on backend B.
  /// \tparam B the backend (fg::backend::Cpu<float>, ...).
  template <class B>
  class State : public detail::StateBase<SGD, B> {
    using Base = detail::StateBase<SGD, B>;
    using Base::cfg_, Base::n_, Base::steps_;

  public:
    using typename Base::buffer, typename Base::scalar;

    /// Validates `cfg`; allocates the momentum buffer (zeroed) only if cfg.momentum > 0.
    State(const Config& cfg, index_t n) : Base(cfg, n), has_momentum_(cfg.momentum > 0.0) {
      if (has_momentum_) momentum_buffer_.resize(n);
    }

    /// One update of params[0, size()) from grads[0, size()): one fused pass, no allocation.
    /// The config is re-checked (lr may be 0 here); momentum cannot be switched on after a
    /// State was built without its buffer.
    void step(scalar* params, const scalar* grads) {
      cfg_.validate(LrRule::non_negative);
      if (cfg_.momentum > 0.0 && !has_momentum_)
        throw config_error("SGD.momentum", detail::format_value(cfg_.momentum),
                           "0, as when this State was built without a momentum buffer (build a new State)");
      const kernels::SgdStep<scalar> kernel{params,
                                            grads,
                                            cfg_.momentum > 0.0 ? momentum_buffer_.data() : nullptr,
                                            static_cast<scalar>(cfg_.lr),
                                            static_cast<scalar>(cfg_.weight_decay),
                                            static_cast<scalar>(cfg_.momentum),
                                            static_cast<scalar>(1.0 - cfg_.dampening),
                                            steps_ == 0,
                                            cfg_.nesterov};
      // The first step (steps() == 0) starts the momentum buffer at the gradient.
      B::for_each(n_, kernel);
      ++steps_;
    }

    /// For checkpoints: calls f(name, buffer&) for each state buffer, named as in PyTorch's
    /// state_dict ("momentum_buffer", present when the State was built with momentum > 0).
    template <class F>
    void for_each_state(F&& f) {
      if (has_momentum_) f("momentum_buffer", momentum_buffer_);
    }
    template <class F>
    void for_each_state(F&& f) const {
      if (has_momentum_) f("momentum_buffer", momentum_buffer_);
    }

  private:
    bool has_momentum_;
    buffer momentum_buffer_;
  };
};

} // namespace optim

} // namespace forgery
