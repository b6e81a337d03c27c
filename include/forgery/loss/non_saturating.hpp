// loss::NonSaturating: the logistic GAN loss with the generator objective of Goodfellow et
// al. (2014, section 3) that keeps its gradient when the critic rejects the fakes.
#pragma once

#include "forgery/core/config.hpp"
#include "forgery/loss/detail.hpp"

namespace forgery::loss {

/// Discriminator: mean softplus(-real) + mean softplus(fake), i.e. the binary cross-entropy
/// of sigma(logit) with real labelled 1 and fake 0. Generator: mean softplus(-fake), the
/// cross-entropy of the fakes labelled real, whose gradient tends to -1/n (not 0) as the
/// critic grows confident that a sample is fake.
struct NonSaturating {
  struct Config {};
  Config config{};
  static constexpr const char* name = "NonSaturating";
  static constexpr bool generator_uses_real = false;

  explicit NonSaturating(Config c = {}) : config(c) {}

  /// Loss of the critic's logits `real` and `fake` (n each); writes its gradient with
  /// respect to each logit into d_real and d_fake. `work` holds at least 2n scalars.
  template <class B>
  typename B::scalar discriminator(index_t n, const typename B::scalar* real, const typename B::scalar* fake,
                                   typename B::scalar* d_real, typename B::scalar* d_fake,
                                   typename B::scalar* work) const {
    detail::check_batch("loss::NonSaturating::discriminator", n);
    return detail::logistic_discriminator<B>(n, real, fake, d_real, d_fake, work);
  }

  /// Generator loss of the logits `fake` (n); `real` is not read and may be null.
  template <class B>
  typename B::scalar generator(index_t n, const typename B::scalar* /*real*/, const typename B::scalar* fake,
                               typename B::scalar* d_fake, typename B::scalar* work) const {
    using S = typename B::scalar;
    detail::check_batch("loss::NonSaturating::generator", n);
    detail::mean_term<B>(detail::Softplus{}, n, fake, S(-1), S(0), S(1), work, d_fake);
    return B::sum(n, work) / static_cast<S>(n);
  }
};

} // namespace forgery::loss
