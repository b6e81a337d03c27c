// loss::RelativisticAverage: the relativistic average standard GAN (RaSGAN) of
// Jolicoeur-Martineau (2018): the critic judges each sample against the other batch's mean.
#pragma once

#include "forgery/core/config.hpp"
#include "forgery/loss/detail.hpp"

namespace forgery::loss {

/// With mr = mean real and mf = mean fake,
///   critic:    mean softplus(-(real - mf)) + mean softplus(fake - mr),
///   generator: mean softplus(-(fake - mr)) + mean softplus(real - mf),
/// the second being the first with the roles of real and fake swapped. The gradients flow
/// through the means as well, so every logit's gradient depends on the whole batch.
struct RelativisticAverage {
  struct Config {};
  Config config{};
  static constexpr const char* name = "RelativisticAverage";
  static constexpr bool generator_uses_real = true;

  explicit RelativisticAverage(Config c = {}) : config(c) {}

  /// Loss of the critic's logits `real` and `fake` (n each); writes its gradient with
  /// respect to each logit into d_real and d_fake. `work` holds at least 2n scalars.
  template <class B>
  typename B::scalar discriminator(index_t n, const typename B::scalar* real, const typename B::scalar* fake,
                                   typename B::scalar* d_real, typename B::scalar* d_fake,
                                   typename B::scalar* work) const {
    using S = typename B::scalar;
    detail::check_batch("loss::RelativisticAverage::discriminator", n);
    const S nn = static_cast<S>(n);
    const S mr = B::sum(n, real) / nn, mf = B::sum(n, fake) / nn;
    // First pass keeps the bare sigmoids: p_i = sigma(mf - real_i), q_j = sigma(fake_j - mr).
    detail::bare_term<B>(detail::Softplus{}, n, real, S(-1), mf, work, d_real);
    detail::bare_term<B>(detail::Softplus{}, n, fake, S(1), -mr, work + n, d_fake);
    const S loss = B::sum(2 * n, work) / nn;
    const S sum_p = B::sum(n, d_real), sum_q = B::sum(n, d_fake);
    // d/dreal_k = -p_k / n - sum_j q_j / n^2 (through mr); d/dfake_k = q_k / n + sum_i p_i / n^2 (through mf).
    B::for_each(n, kernels::AffineInPlace<S>{S(-1) / nn, -sum_q / (nn * nn), d_real});
    B::for_each(n, kernels::AffineInPlace<S>{S(1) / nn, sum_p / (nn * nn), d_fake});
    return loss;
  }

  /// Generator loss of the logits `real` and `fake` (n each; `real` must not be null);
  /// writes its gradient with respect to each fake logit into d_fake.
  template <class B>
  typename B::scalar generator(index_t n, const typename B::scalar* real, const typename B::scalar* fake,
                               typename B::scalar* d_fake, typename B::scalar* work) const {
    using S = typename B::scalar;
    detail::check_batch("loss::RelativisticAverage::generator", n);
    const S nn = static_cast<S>(n);
    const S mr = B::sum(n, real) / nn, mf = B::sum(n, fake) / nn;
    // The real term first, into work: values softplus(real_i - mf), sigmoids r_i = sigma(real_i - mf).
    detail::bare_term<B>(detail::Softplus{}, n, real, S(1), -mf, work, work + n);
    const S loss_real = B::sum(n, work), sum_r = B::sum(n, work + n);
    // Then the fake term, reusing work: s_j = sigma(mr - fake_j) into d_fake.
    detail::bare_term<B>(detail::Softplus{}, n, fake, S(-1), mr, work, d_fake);
    const S loss_fake = B::sum(n, work);
    // d/dfake_k = -s_k / n - sum_i r_i / n^2 (through mf).
    B::for_each(n, kernels::AffineInPlace<S>{S(-1) / nn, -sum_r / (nn * nn), d_fake});
    return (loss_fake + loss_real) / nn;
  }
};

} // namespace forgery::loss
