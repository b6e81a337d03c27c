// loss::Wasserstein: the WGAN critic loss of Arjovsky et al. (2017). Pair it with a
// Lipschitz constraint on the critic (a gradient penalty or spectral normalisation).
#pragma once

#include "forgery/core/config.hpp"
#include "forgery/loss/detail.hpp"

namespace forgery::loss {

/// Critic: mean fake - mean real. Generator: -mean fake. The logits are the critic's raw
/// scores; no squashing, so the gradient with respect to each logit is the constant +-1/n.
struct Wasserstein {
  struct Config {};
  Config config{};
  static constexpr const char* name = "Wasserstein";
  static constexpr bool generator_uses_real = false;

  explicit Wasserstein(Config c = {}) : config(c) {}

  /// Loss of the critic's scores `real` and `fake` (n each); writes its gradient with
  /// respect to each score into d_real and d_fake. `work` is not used.
  template <class B>
  typename B::scalar discriminator(index_t n, const typename B::scalar* real, const typename B::scalar* fake,
                                   typename B::scalar* d_real, typename B::scalar* d_fake,
                                   typename B::scalar* /*work*/) const {
    using S = typename B::scalar;
    detail::check_batch("loss::Wasserstein::discriminator", n);
    const S inv_n = S(1) / static_cast<S>(n);
    B::fill(n, d_real, -inv_n);
    B::fill(n, d_fake, inv_n);
    return B::sum(n, fake) / static_cast<S>(n) - B::sum(n, real) / static_cast<S>(n);
  }

  /// Generator loss of the scores `fake` (n); `real` is not read and may be null.
  template <class B>
  typename B::scalar generator(index_t n, const typename B::scalar* /*real*/, const typename B::scalar* fake,
                               typename B::scalar* d_fake, typename B::scalar* /*work*/) const {
    detail::check_batch("loss::Wasserstein::generator", n);
    return detail::negative_mean<B>(n, fake, d_fake);
  }
};

} // namespace forgery::loss
