// Adam (Kingma & Ba 2015) with bias correction and L2 weight decay added to the gradient,
// following torch.optim.Adam's formulas (amsgrad off) so that results can be compared.
#pragma once

#include "forgery/core/config.hpp"
#include "forgery/optim/adam_state.hpp"
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

    /// Calls f(name, field&) for each field (checkpoints save and restore them by name).
    template <class F>
    void fields(F&& f) {
      f("lr", lr);
      f("beta1", beta1);
      f("beta2", beta2);
      f("eps", eps);
      f("weight_decay", weight_decay);
    }
    template <class F>
    void fields(F&& f) const {
      f("lr", lr);
      f("beta1", beta1);
      f("beta2", beta2);
      f("eps", eps);
      f("weight_decay", weight_decay);
    }

    /// Throws config_error naming the first invalid field ("Adam.lr", ...).
    void validate(LrRule lr_rule = LrRule::positive) const {
      detail::require_lr("Adam.lr", lr, lr_rule);
      detail::require_decay("Adam.beta1", beta1);
      detail::require_decay("Adam.beta2", beta2);
      detail::require_positive("Adam.eps", eps);
      detail::require_non_negative("Adam.weight_decay", weight_decay);
    }
  };

  /// Moments and step count for one parameter buffer on backend B.
  template <class B>
  using State = detail::AdamState<Adam, B, /*Decoupled=*/false>;
};

} // namespace forgery::optim
