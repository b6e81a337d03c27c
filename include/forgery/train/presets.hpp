// Friendly presets for the classic recipes, with their papers' hyper-parameters:
// the general Trainer stays available for everything else.
#pragma once

#include "forgery/backend/cpu.hpp"
#include "forgery/loss/loss.hpp"
#include "forgery/optim/adam.hpp"
#include "forgery/optim/rmsprop.hpp"
#include "forgery/penalty/penalty.hpp"
#include "forgery/train/objective.hpp"
#include "forgery/train/trainer.hpp"

namespace forgery {

namespace objectives {
/// WGAN (Arjovsky et al. 2017): Wasserstein loss, critic weights clipped to [-0.01, 0.01].
using Wgan = Objective<loss::Wasserstein, penalty::WeightClip>;
/// WGAN-GP (Gulrajani et al. 2017): Wasserstein loss + gradient penalty, lambda 10.
using WganGp = Objective<loss::Wasserstein, penalty::GradientPenalty>;
/// DCGAN-style (Radford et al. 2016): the non-saturating loss alone.
using Dcgan = Objective<loss::NonSaturating>;
} // namespace objectives

/// WGAN trainer; start from wgan_config() for the paper's settings.
template <NetworkSpec G, NetworkSpec D, Backend B = backend::Cpu<float>, class Hook = LocalGradients>
using WganTrainer = Trainer<G, D, objectives::Wgan, optim::RMSprop, B, Hook>;
/// WGAN-GP trainer; start from wgan_gp_config().
template <NetworkSpec G, NetworkSpec D, Backend B = backend::Cpu<float>, class Hook = LocalGradients>
using WganGpTrainer = Trainer<G, D, objectives::WganGp, optim::Adam, B, Hook>;
/// DCGAN-style non-saturating trainer; start from dcgan_config().
template <NetworkSpec G, NetworkSpec D, Backend B = backend::Cpu<float>, class Hook = LocalGradients>
using DcganTrainer = Trainer<G, D, objectives::Dcgan, optim::Adam, B, Hook>;

/// WGAN: RMSprop lr 5e-5, n_critic 5, clip 0.01 (Arjovsky et al. 2017, Algorithm 1).
template <class T>
typename T::Config wgan_config() {
  typename T::Config c;
  c.n_critic = 5;
  c.g_optimizer.lr = c.d_optimizer.lr = 5e-5;
  return c;
}

/// WGAN-GP: Adam lr 1e-4, betas (0, 0.9), n_critic 5, lambda 10 (Gulrajani et al. 2017, Algorithm 1).
template <class T>
typename T::Config wgan_gp_config() {
  typename T::Config c;
  c.n_critic = 5;
  for (auto* o : {&c.g_optimizer, &c.d_optimizer}) {
    o->lr = 1e-4;
    o->beta1 = 0.0;
    o->beta2 = 0.9;
  }
  return c;
}

/// DCGAN: Adam lr 2e-4, beta1 0.5 (Radford et al. 2016), N(0, 0.02) initialisation.
template <class T>
typename T::Config dcgan_config() {
  typename T::Config c;
  c.init = Init::dcgan_normal;
  for (auto* o : {&c.g_optimizer, &c.d_optimizer}) {
    o->lr = 2e-4;
    o->beta1 = 0.5;
  }
  return c;
}

} // namespace forgery
