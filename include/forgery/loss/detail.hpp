// What the adversarial losses share: numerically stable softplus and logistic functions,
// the per-logit term functions, and the two kernels every loss is assembled from.
#pragma once

#include <cmath>
#include <string>

#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"

namespace forgery::loss::detail {

/// log(1 + e^x) as max(x, 0) + log1p(e^-|x|): exp never overflows, and for large |x| the
/// result is x or e^x to full precision instead of log(1 + 0) = 0 or log(inf).
template <class S>
FORGERY_HOST_DEVICE S softplus(S x) {
  return (x > S(0) ? x : S(0)) + std::log1p(std::exp(-std::fabs(x)));
}

/// The logistic function 1 / (1 + e^-x), the derivative of softplus; written so that exp
/// is only ever taken of a non-positive number.
template <class S>
FORGERY_HOST_DEVICE S sigmoid(S x) {
  if (x >= S(0)) return S(1) / (S(1) + std::exp(-x));
  const S e = std::exp(x);
  return e / (S(1) + e);
}

/// Per-logit term functions of z: value(z) and its derivative d1(z).
struct Softplus {
  template <class S>
  FORGERY_HOST_DEVICE S value(S z) const {
    return softplus(z);
  }
  template <class S>
  FORGERY_HOST_DEVICE S d1(S z) const {
    return sigmoid(z);
  }
};

/// max(z, 0). At the kink z = 0 the subgradient 0 is used, so a logit sitting exactly on a
/// hinge margin gets no gradient (as the ReLU layer does). A NaN z gives a NaN value, so
/// that a NaN logit reaches the loss (and a NaN guard) instead of being clipped to 0.
struct Relu {
  template <class S>
  FORGERY_HOST_DEVICE S value(S z) const {
    return z <= S(0) ? S(0) : z;
  }
  template <class S>
  FORGERY_HOST_DEVICE S d1(S z) const {
    return z > S(0) ? S(1) : S(0);
  }
};

/// z^2 / 2.
struct HalfSquare {
  template <class S>
  FORGERY_HOST_DEVICE S value(S z) const {
    return S(0.5) * z * z;
  }
  template <class S>
  FORGERY_HOST_DEVICE S d1(S z) const {
    return z;
  }
};

} // namespace forgery::loss::detail

namespace forgery::kernels {

/// One term of a loss per logit: with z = a x[i] + b, value[i] = c f(z) and
/// grad[i] = g f'(z). The caller folds the chain rule and the 1/n of the mean into g
/// (g = c a / n), or passes g = 1 to keep f'(z) itself for a second pass.
template <class Fn, class S>
struct LossTerm {
  Fn fn;
  const S* x;
  S a, b, c, g;
  S* value;
  S* grad;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const S z = a * x[i] + b;
    value[i] = c * fn.value(z);
    grad[i] = g * fn.d1(z);
  }
};

/// y[i] = alpha * y[i] + beta.
template <class S>
struct AffineInPlace {
  S alpha, beta;
  S* y;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { y[i] = alpha * y[i] + beta; }
};

} // namespace forgery::kernels

namespace forgery::loss::detail {

/// A batch of logits must hold at least one sample: a mean over none has no value.
inline void check_batch(const char* where, index_t n) {
  if (n < 1) throw shape_error(where, "a batch of at least 1 logit", std::to_string(n) + " logits");
}

/// Launches f over the n logits x: value[i] = c f(a x + b), grad[i] = (c a / n) f'(a x + b),
/// so that grad is the gradient of sum(value) / n.
template <class B, class Fn>
void mean_term(Fn fn, index_t n, const typename B::scalar* x, typename B::scalar a, typename B::scalar b,
               typename B::scalar c, typename B::scalar* value, typename B::scalar* grad) {
  using S = typename B::scalar;
  B::for_each(n, kernels::LossTerm<Fn, S>{fn, x, a, b, c, c * a / static_cast<S>(n), value, grad});
}

/// Launches f over the n logits x: value[i] = f(a x + b), grad[i] = f'(a x + b), the bare
/// derivative, for losses that combine the derivatives across the batch in a second pass.
template <class B, class Fn>
void bare_term(Fn fn, index_t n, const typename B::scalar* x, typename B::scalar a, typename B::scalar b,
               typename B::scalar* value, typename B::scalar* grad) {
  using S = typename B::scalar;
  B::for_each(n, kernels::LossTerm<Fn, S>{fn, x, a, b, S(1), S(1), value, grad});
}

/// The logistic discriminator loss of Goodfellow et al. (shared by Minimax and
/// NonSaturating): mean softplus(-real) + mean softplus(fake).
template <class B>
typename B::scalar logistic_discriminator(index_t n, const typename B::scalar* real, const typename B::scalar* fake,
                                          typename B::scalar* d_real, typename B::scalar* d_fake,
                                          typename B::scalar* work) {
  using S = typename B::scalar;
  mean_term<B>(Softplus{}, n, real, S(-1), S(0), S(1), work, d_real);
  mean_term<B>(Softplus{}, n, fake, S(1), S(0), S(1), work + n, d_fake);
  return B::sum(2 * n, work) / static_cast<S>(n);
}

/// -mean fake, the generator loss of the critic-based losses (Wasserstein, Hinge).
template <class B>
typename B::scalar negative_mean(index_t n, const typename B::scalar* fake, typename B::scalar* d_fake) {
  using S = typename B::scalar;
  B::fill(n, d_fake, S(-1) / static_cast<S>(n));
  return -B::sum(n, fake) / static_cast<S>(n);
}

/// "finite number" check for a configuration value, naming the field.
inline void require_finite(const char* field, double value) {
  if (!std::isfinite(value)) throw config_error(field, std::to_string(value), "a finite number");
}

} // namespace forgery::loss::detail
