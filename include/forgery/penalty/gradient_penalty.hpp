// GradientPenalty: the WGAN-GP penalty of Gulrajani et al. 2017 (and its one-sided form,
// Petzka et al. 2018) on points interpolated between real and generated samples.
#pragma once

#include "forgery/core/batch_view.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/penalty/workspace.hpp"

namespace forgery::penalty {

/// P = lambda * mean_i (||grad_x D(x_hat_i)|| - 1)^2 with x_hat_i = eps_i real_i +
/// (1 - eps_i) fake_i and eps_i ~ U(0, 1) per sample. With one_sided, the term is
/// max(0, ||g|| - 1)^2: only gradients steeper than 1 are penalised.
struct GradientPenalty {
  struct Config {
    /// Weight of the penalty; the paper uses 10.
    double lambda = 10;
    /// Penalise only norms above 1 (Petzka et al. 2018, 'On the regularization of WGANs').
    bool one_sided = false;
    void validate() const { detail::require_finite_at_least("GradientPenalty.lambda", lambda, 0); }
  };
  static constexpr const char* name = "GradientPenalty";
  Config config{};

  GradientPenalty() : GradientPenalty(Config{}) {}
  explicit GradientPenalty(Config c) : config(c) { config.validate(); }

  /// Adds dP/dtheta into critic.grads() (on top of what is there) and returns P. Draws n
  /// uniforms from `rng` (n = batch size) for eps, in sample order. Overwrites the
  /// critic's cached activations.
  /// \tparam Net an fg::Network whose every layer has a tangent pass, with one output.
  template <class Net>
  typename Net::scalar apply(Net& critic, ConstBatchView<typename Net::scalar> real,
                             ConstBatchView<typename Net::scalar> fake, RandomStream& rng,
                             Workspace<typename Net::backend>& ws) const {
    using B = typename Net::backend;
    using S = typename Net::scalar;
    config.validate();
    detail::check_batch<Net>("GradientPenalty::apply real batch", real);
    detail::check_batch<Net>("GradientPenalty::apply fake batch", fake);
    if (fake.batch() != real.batch())
      throw shape_error("GradientPenalty::apply", "real and fake batches of one size",
                        std::to_string(real.batch()) + " real, " + std::to_string(fake.batch()) + " fake");
    const index_t n = real.batch();
    ws.reserve(Net::input_size, n);
    B::fill_uniform(n, ws.coefficients(), rng, S(0), S(1));
    const BatchView<S> x_hat = ws.input();
    B::for_each(x_hat.size(),
                kernels::Interpolate<S>{real.data(), fake.data(), ws.coefficients(), x_hat.data(), Net::input_size});
    return detail::penalise_input_gradient(critic, ConstBatchView<S>(x_hat),
                                           kernels::NormDistance<S>{S(1), config.one_sided},
                                           static_cast<S>(config.lambda) / static_cast<S>(n), ws);
  }
};

} // namespace forgery::penalty
