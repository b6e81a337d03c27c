// loss::LeastSquares: the LSGAN loss of Mao et al. (2017), with the fake, real and
// generator targets a, b, c as run-time configuration.
#pragma once

#include <string>

#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/loss/detail.hpp"

namespace forgery::loss {

/// Critic: 0.5 mean (real - b)^2 + 0.5 mean (fake - a)^2. Generator: 0.5 mean (fake - c)^2.
/// The logits are the critic's raw outputs (no sigmoid).
struct LeastSquares {
  struct Config {
    /// Target of the critic for fake samples.
    double a = 0.0;
    /// Target of the critic for real samples.
    double b = 1.0;
    /// Value the generator wants the critic to give its samples. The defaults are the
    /// paper's 0-1-1 scheme; a = -1, b = 1, c = 0 is its Pearson chi-squared scheme.
    double c = 1.0;

    /// Throws forgery::config_error naming the field: all targets must be finite, and the
    /// real and fake targets must differ (with a == b the critic has nothing to learn).
    void validate() const {
      detail::require_finite("LeastSquares.a", a);
      detail::require_finite("LeastSquares.b", b);
      detail::require_finite("LeastSquares.c", c);
      if (a == b)
        throw config_error("LeastSquares.a", std::to_string(a),
                           "a value different from LeastSquares.b = " + std::to_string(b));
    }
  };
  Config config{};
  static constexpr const char* name = "LeastSquares";
  static constexpr bool generator_uses_real = false;

  // Two constructors, not one `explicit LeastSquares(Config c = {})`: a default argument
  // may not use Config's member initializers inside the enclosing class (CWG 1397).
  LeastSquares() : LeastSquares(Config{}) {}
  explicit LeastSquares(Config c) : config(c) { config.validate(); }

  /// Loss of the critic's outputs `real` and `fake` (n each); writes its gradient with
  /// respect to each output into d_real and d_fake. `work` holds at least 2n scalars.
  template <class B>
  typename B::scalar discriminator(index_t n, const typename B::scalar* real, const typename B::scalar* fake,
                                   typename B::scalar* d_real, typename B::scalar* d_fake,
                                   typename B::scalar* work) const {
    using S = typename B::scalar;
    detail::check_batch("loss::LeastSquares::discriminator", n);
    detail::mean_term<B>(detail::HalfSquare{}, n, real, S(1), -static_cast<S>(config.b), S(1), work, d_real);
    detail::mean_term<B>(detail::HalfSquare{}, n, fake, S(1), -static_cast<S>(config.a), S(1), work + n, d_fake);
    return B::sum(2 * n, work) / static_cast<S>(n);
  }

  /// Generator loss of the outputs `fake` (n); `real` is not read and may be null.
  template <class B>
  typename B::scalar generator(index_t n, const typename B::scalar* /*real*/, const typename B::scalar* fake,
                               typename B::scalar* d_fake, typename B::scalar* work) const {
    using S = typename B::scalar;
    detail::check_batch("loss::LeastSquares::generator", n);
    detail::mean_term<B>(detail::HalfSquare{}, n, fake, S(1), -static_cast<S>(config.c), S(1), work, d_fake);
    return B::sum(n, work) / static_cast<S>(n);
  }
};

} // namespace forgery::loss
