// R1 and R2: the zero-centred gradient penalties of Mescheder et al. 2018 ('Which
// training methods for GANs do actually converge?'), on real (R1) or generated (R2) data.
#pragma once

#include "forgery/core/batch_view.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/penalty/workspace.hpp"

namespace forgery::penalty {

namespace detail {

// P = gamma / 2 * mean_i ||grad_x D(x_i)||^2 on x itself: no random draw, no copy of x.
template <class Net>
typename Net::scalar squared_gradient_norm(Net& critic, ConstBatchView<typename Net::scalar> x, double gamma,
                                           Workspace<typename Net::backend>& ws) {
  using S = typename Net::scalar;
  ws.reserve(Net::input_size, x.batch());
  return penalise_input_gradient(critic, x, kernels::SquaredNorm<S>{},
                                 static_cast<S>(gamma) / (S(2) * static_cast<S>(x.batch())), ws);
}

} // namespace detail

/// P = gamma / 2 * mean_i ||grad_x D(real_i)||^2.
struct R1 {
  struct Config {
    /// Weight of the penalty (gamma in the paper; 10 is its usual value).
    double gamma = 10;
    void validate() const { detail::require_finite_at_least("R1.gamma", gamma, 0); }
  };
  static constexpr const char* name = "R1";
  Config config{};

  R1() : R1(Config{}) {}
  explicit R1(Config c) : config(c) { config.validate(); }

  /// Adds dP/dtheta into critic.grads() and returns P. Uses neither `fake` (it may be
  /// empty) nor `rng`.
  /// \tparam Net an fg::Network whose every layer has a tangent pass, with one output.
  template <class Net>
  typename Net::scalar apply(Net& critic, ConstBatchView<typename Net::scalar> real,
                             ConstBatchView<typename Net::scalar> /*fake*/, RandomStream& /*rng*/,
                             Workspace<typename Net::backend>& ws) const {
    config.validate();
    detail::check_batch<Net>("R1::apply real batch", real);
    return detail::squared_gradient_norm(critic, real, config.gamma, ws);
  }
};

/// P = gamma / 2 * mean_i ||grad_x D(fake_i)||^2.
struct R2 {
  struct Config {
    /// Weight of the penalty.
    double gamma = 10;
    void validate() const { detail::require_finite_at_least("R2.gamma", gamma, 0); }
  };
  static constexpr const char* name = "R2";
  Config config{};

  R2() : R2(Config{}) {}
  explicit R2(Config c) : config(c) { config.validate(); }

  /// Adds dP/dtheta into critic.grads() and returns P. Uses neither `real` (it may be
  /// empty) nor `rng`.
  /// \tparam Net an fg::Network whose every layer has a tangent pass, with one output.
  template <class Net>
  typename Net::scalar apply(Net& critic, ConstBatchView<typename Net::scalar> /*real*/,
                             ConstBatchView<typename Net::scalar> fake, RandomStream& /*rng*/,
                             Workspace<typename Net::backend>& ws) const {
    config.validate();
    detail::check_batch<Net>("R2::apply fake batch", fake);
    return detail::squared_gradient_norm(critic, fake, config.gamma, ws);
  }
};

} // namespace forgery::penalty
