// WeightClip: the original WGAN's Lipschitz constraint (Arjovsky et al. 2017). A
// constraint, not a penalty: after each critic step it clamps the critic's parameters.
#pragma once

#include "forgery/core/config.hpp"
#include "forgery/penalty/workspace.hpp"

namespace forgery::penalty {

namespace kernels {

/// x[i] = clamp(x[i], -c, c); a NaN stays NaN (for the NaN guard to see).
template <class S>
struct Clamp {
  S* x;
  S c;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const S v = x[i];
    x[i] = v < -c ? -c : (v > c ? c : v);
  }
};

} // namespace kernels

/// Clamps every parameter of the critic, weights and biases alike (as the WGAN reference
/// code clamps all of the critic's parameters), into [-c, c]. Gradients are not touched.
struct WeightClip {
  struct Config {
    /// Clipping bound; the paper uses 0.01.
    double c = 0.01;
    void validate() const { detail::require_finite_at_least("WeightClip.c", c, 0, /*strict=*/true); }
  };
  static constexpr const char* name = "WeightClip";
  Config config{};

  WeightClip() : WeightClip(Config{}) {}
  explicit WeightClip(Config cfg) : config(cfg) { config.validate(); }

  /// Call after each optimizer step of the critic.
  /// \tparam Net an fg::Network (anything with param_count, params() and a backend).
  template <class Net>
  void after_critic_step(Net& critic) const {
    using B = typename Net::backend;
    using S = typename Net::scalar;
    config.validate();
    if constexpr (Net::param_count > 0)
      B::for_each(Net::param_count, kernels::Clamp<S>{critic.params(), static_cast<S>(config.c)});
  }
};

} // namespace forgery::penalty
