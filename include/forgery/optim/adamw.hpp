// AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay, following
// torch.optim.AdamW's formulas (amsgrad off) so that results can be compared.
#pragma once

#include "forgery/core/config.hpp"
#include "forgery/optim/adam_state.hpp"
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

    /// Throws config_error naming the first invalid field ("AdamW.lr", ...).
    void validate(LrRule lr_rule = LrRule::positive) const {
      detail::require_lr("AdamW.lr", lr, lr_rule);
      detail::require_decay("AdamW.beta1", beta1);
      detail::require_decay("AdamW.beta2", beta2);
      detail::require_positive("AdamW.eps", eps);
      detail::require_non_negative("AdamW.weight_decay", weight_decay);
    }
  };

  /// Moments and step count for one parameter buffer on backend B.
  template <class B>
  using State = detail::AdamState<AdamW, B, /*Decoupled=*/true>;
};

} // namespace forgery::optim
