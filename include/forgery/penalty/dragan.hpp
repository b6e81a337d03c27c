// DRAGAN: the gradient penalty of Kodali et al. 2017 ('On convergence and stability of
// GANs') on perturbed real data, as the authors' code computes it.
#pragma once

#include <cmath>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/penalty/workspace.hpp"

namespace forgery::penalty {

namespace kernels {

/// out[i] = real[i] + a_j * spread * out[i], out holding U(0, 1) values on entry; a_j is
/// alpha[j] for sample j, or 1 when alpha is null.
template <class S>
struct Perturb {
  const S* real;
  const S* alpha;
  S spread;
  S* out;
  index_t features;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const S a = alpha != nullptr ? alpha[i / features] : S(1);
    out[i] = real[i] + a * spread * out[i];
  }
};

} // namespace kernels

/// P = lambda * mean_i (||grad_x D(x_hat_i)|| - k)^2 on perturbed real data, following
/// the authors' reference code (DRAGAN.ipynb) rather than the paper's N(0, cI) wording:
///   delta = c * std(real) * U(0, 1), per element, where std is the population standard
///           deviation over all elements of the real batch (numpy's `minibatch.std()`),
///           so the perturbation is one-signed, as in that code;
///   x_hat_i = real_i + alpha_i * delta_i with alpha_i ~ U(0, 1) per sample (the code's
///           interpolation between X and X_p); with interpolate = false, alpha_i = 1.
/// The standard deviation is data, not a function of the critic: no gradient flows into it.
struct DRAGAN {
  struct Config {
    /// Weight of the penalty (the authors use 10).
    double lambda = 10;
    /// The target gradient norm.
    double k = 1;
    /// Perturbation scale relative to the batch standard deviation.
    double c = 0.5;
    /// Interpolate between real and perturbed points with a per-sample alpha, as the
    /// authors' code does.
    bool interpolate = true;
    void validate() const {
      detail::require_finite_at_least("DRAGAN.lambda", lambda, 0);
      detail::require_finite_at_least("DRAGAN.k", k, 0);
      detail::require_finite_at_least("DRAGAN.c", c, 0);
    }
  };
  static constexpr const char* name = "DRAGAN";
  Config config{};

  DRAGAN() : DRAGAN(Config{}) {}
  explicit DRAGAN(Config cfg) : config(cfg) { config.validate(); }

  /// Adds dP/dtheta into critic.grads() and returns P. `fake` is not used (it may be
  /// empty). Draws features * n uniforms for delta (element order), then, with
  /// interpolate, n for alpha (sample order).
  /// \tparam Net an fg::Network whose every layer has a tangent pass, with one output.
  template <class Net>
  typename Net::scalar apply(Net& critic, ConstBatchView<typename Net::scalar> real,
                             ConstBatchView<typename Net::scalar> /*fake*/, RandomStream& rng,
                             Workspace<typename Net::backend>& ws) const {
    using B = typename Net::backend;
    using S = typename Net::scalar;
    config.validate();
    detail::check_batch<Net>("DRAGAN::apply real batch", real);
    const index_t n = real.batch();
    const index_t count = real.size();
    ws.reserve(Net::input_size, n);
    // Population standard deviation of the whole batch; the tangent buffer is scratch here.
    const S mean = B::sum(count, real.data()) / static_cast<S>(count);
    B::for_each(count, kernels::SquaredDeviation<S>{real.data(), mean, ws.tangent().data()});
    const S stddev = std::sqrt(B::sum(count, ws.tangent().data()) / static_cast<S>(count));

    const BatchView<S> x_hat = ws.input();
    B::fill_uniform(count, x_hat.data(), rng, S(0), S(1));
    if (config.interpolate) B::fill_uniform(n, ws.coefficients(), rng, S(0), S(1));
    B::for_each(count, kernels::Perturb<S>{real.data(), config.interpolate ? ws.coefficients() : nullptr,
                                           static_cast<S>(config.c) * stddev, x_hat.data(), Net::input_size});
    return detail::penalise_input_gradient(critic, ConstBatchView<S>(x_hat),
                                           kernels::NormDistance<S>{static_cast<S>(config.k), false},
                                           static_cast<S>(config.lambda) / static_cast<S>(n), ws);
  }
};

} // namespace forgery::penalty
