// loss::Hinge: the hinge GAN loss of Lim & Ye (2017), as used with spectral normalisation
// by Miyato et al. (2018) and in SAGAN/BigGAN.
#pragma once

#include "forgery/core/config.hpp"
#include "forgery/loss/detail.hpp"

namespace forgery::loss {

/// Critic: mean relu(1 - real) + mean relu(1 + fake): only logits inside the margin
/// (real < 1, fake > -1) contribute. Generator: -mean fake. At the kinks (real = 1 or
/// fake = -1 exactly) the subgradient 0 is used.
struct Hinge {
  struct Config {};
  Config config{};
  static constexpr const char* name = "Hinge";
  static constexpr bool generator_uses_real = false;

  explicit Hinge(Config c = {}) : config(c) {}

  /// Loss of the critic's logits `real` and `fake` (n each); writes its gradient with
  /// respect to each logit into d_real and d_fake. `work` holds at least 2n scalars.
  template <class B>
  typename B::scalar discriminator(index_t n, const typename B::scalar* real, const typename B::scalar* fake,
                                   typename B::scalar* d_real, typename B::scalar* d_fake,
                                   typename B::scalar* work) const {
    using S = typename B::scalar;
    detail::check_batch("loss::Hinge::discriminator", n);
    detail::mean_term<B>(detail::Relu{}, n, real, S(-1), S(1), S(1), work, d_real);
    detail::mean_term<B>(detail::Relu{}, n, fake, S(1), S(1), S(1), work + n, d_fake);
    return B::sum(2 * n, work) / static_cast<S>(n);
  }

  /// Generator loss of the logits `fake` (n); `real` is not read and may be null.
  template <class B>
  typename B::scalar generator(index_t n, const typename B::scalar* /*real*/, const typename B::scalar* fake,
                               typename B::scalar* d_fake, typename B::scalar* /*work*/) const {
    detail::check_batch("loss::Hinge::generator", n);
    return detail::negative_mean<B>(n, fake, d_fake);
  }
};

} // namespace forgery::loss
