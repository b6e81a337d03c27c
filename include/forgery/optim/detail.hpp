// Pieces shared by the optimizers: Config validation helpers that name the field and what
// is allowed, Adam's bias correction, and the Adam/AdamW update kernel.
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"

namespace forgery::optim {

/// What `Config::validate` requires of the learning rate. A State is built with
/// `positive`; `step()` re-checks the config with `non_negative`, because a schedule may set
/// the rate to 0 between steps (a warm-up that starts from zero) but never to a negative,
/// infinite or NaN value.
enum class LrRule : bool { positive, non_negative };

namespace detail {

inline std::string format_value(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", v);
  return text;
}

inline void require_lr(const char* field, double lr, LrRule rule) {
  if (rule == LrRule::positive && !(lr > 0.0 && std::isfinite(lr)))
    throw config_error(field, format_value(lr), "a finite value > 0");
  if (rule == LrRule::non_negative && !(lr >= 0.0 && std::isfinite(lr)))
    throw config_error(field, format_value(lr), "a finite value >= 0 (0 only between steps, from a schedule)");
}

/// Exponential-average coefficients (Adam's betas, RMSprop's alpha): [0, 1). At 1 the
/// average never moves from its zero start.
inline void require_decay(const char* field, double v) {
  if (!(v >= 0.0 && v < 1.0)) throw config_error(field, format_value(v), "a value in [0, 1)");
}

inline void require_positive(const char* field, double v) {
  if (!(v > 0.0 && std::isfinite(v))) throw config_error(field, format_value(v), "a finite value > 0");
}

inline void require_non_negative(const char* field, double v) {
  if (!(v >= 0.0 && std::isfinite(v))) throw config_error(field, format_value(v), "a finite value >= 0");
}

/// A State's step count; only negative values are wrong (0 means no step taken yet).
inline void require_steps(const char* optimizer, long long steps) {
  if (steps < 0) throw config_error(std::string(optimizer) + ".steps", std::to_string(steps), "a value >= 0");
}

/// A State's buffer count; negative sizes are a caller's bug worth a clear message.
inline void require_size(const char* optimizer, index_t n) {
  if (n < 0) throw config_error(std::string(optimizer) + ".size", std::to_string(n), "a value >= 0");
}

/// Adam's bias corrections for step t (1-based), computed on the host in double as PyTorch
/// does: the step size lr / (1 - beta1^t) and sqrt(1 - beta2^t).
struct AdamCorrection {
  double step_size;
  double sqrt_bias_correction2;
};

inline AdamCorrection adam_correction(double lr, double beta1, double beta2, long long t) {
  const double td = static_cast<double>(t);
  return {lr / (1.0 - std::pow(beta1, td)), std::sqrt(1.0 - std::pow(beta2, td))};
}

/// What every optimizer state shares: its config (validated at construction, changeable
/// between steps), its size and its step count, with the accessors checkpoints use. Each
/// optimizer's State derives from it and adds its buffers and its fused step.
/// \tparam Policy the optimizer (its Config and name). \tparam B the backend.
template <class Policy, class B>
class StateBase {
public:
  using Config = typename Policy::Config;
  using scalar = typename B::scalar;
  using buffer = typename B::template buffer<scalar>;

  [[nodiscard]] Config& config() noexcept { return cfg_; }
  [[nodiscard]] const Config& config() const noexcept { return cfg_; }
  /// Steps taken.
  [[nodiscard]] long long steps() const noexcept { return steps_; }
  [[nodiscard]] index_t size() const noexcept { return n_; }
  /// For checkpoints: restores the step count saved with the buffers.
  void set_steps(long long steps) {
    require_steps(Policy::name, steps);
    steps_ = steps;
  }

protected:
  StateBase(const Config& cfg, index_t n) : cfg_(cfg), n_(n) {
    cfg_.validate();
    require_size(Policy::name, n);
  }

  Config cfg_;
  index_t n_;
  long long steps_ = 0;
};

} // namespace detail

} // namespace forgery::optim

namespace forgery::kernels {

/// One Adam (or AdamW) update of element i, in PyTorch's arrangement:
///   g = grad + l2 * p                         (Adam's weight decay; 0 for AdamW)
///   p = decay * p                             (AdamW's 1 - lr * wd; 1 for Adam)
///   m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2
///   p = p - step_size * m / (sqrt(v) / sqrt_bc2 + eps)
template <class S>
struct AdamStep {
  S* p;
  const S* grad;
  S* m;
  S* v;
  S beta1, one_minus_beta1, beta2, one_minus_beta2;
  S step_size, sqrt_bc2, eps, l2, decay;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    S pi = p[i];
    S g = grad[i];
    if (l2 != S(0)) g += l2 * pi;
    if (decay != S(1)) pi *= decay;
    const S mi = beta1 * m[i] + one_minus_beta1 * g;
    const S vi = beta2 * v[i] + one_minus_beta2 * (g * g);
    m[i] = mi;
    v[i] = vi;
    const S denom = std::sqrt(vi) / sqrt_bc2 + eps;
    p[i] = pi - step_size * (mi / denom);
  }
};

} // namespace forgery::kernels
