// The model the checkpoint tests resume: a conditional image GAN with every kind of state a
// checkpoint must carry (BatchNorm running statistics, SpectralNorm vectors, Dropout and
// label streams, LayerNorm, EMA, Adam moments) on a tiny labelled image set drawn through
// ShuffledBatches (whose position is the data stream's counter).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "forgery/forgery.hpp"

namespace forgery::test {

inline constexpr index_t resume_classes = 3;

using ResumeG = fg::Sequential<fg::Input<8>, fg::ConcatEmbedding<resume_classes, 4>, fg::Dense<8 * 3 * 3, false>,
                               fg::Reshape<8, 3, 3>, fg::BatchNorm<>, fg::ReLU, fg::ConvTranspose2d<4, 4, 2, 1>,
                               fg::Dropout<0.1>, fg::ReLU, fg::ConvTranspose2d<1, 4, 2, 1>, fg::Tanh>;
using ResumeD = fg::Sequential<fg::Input<1, 12, 12>, fg::SpectralNorm<fg::Conv2d<4, 4, 2, 1>>, fg::LeakyReLU<>,
                               fg::Conv2d<8, 4, 2, 1>, fg::LayerNorm<>, fg::LeakyReLU<>, fg::Dropout<0.2>, fg::Flatten,
                               fg::Projection<resume_classes>>;
using ResumeTrainer = fg::Trainer<ResumeG, ResumeD, fg::loss::Hinge>;

inline ResumeTrainer::Config resume_config() {
  ResumeTrainer::Config cfg;
  cfg.batch = 8;
  cfg.seed = 2024;
  cfg.n_critic = 2;
  cfg.ema_decay = 0.99;
  cfg.ema_warmup = true;
  cfg.g_optimizer.lr = 2e-3;
  cfg.g_optimizer.beta1 = 0.5;
  cfg.d_optimizer.lr = 2e-3;
  cfg.d_optimizer.beta1 = 0.5;
  return cfg;
}

/// 20 labelled 12 x 12 images: an epoch is 2.5 batches, so resumes land mid-epoch.
inline fg::data::ImageDataset<float> resume_images() {
  constexpr std::size_t n = 20, pixels = 144;
  xt::xtensor<float, 4> images = xt::zeros<float>({n, std::size_t(1), std::size_t(12), std::size_t(12)});
  xt::xtensor<std::int32_t, 1> labels = xt::zeros<std::int32_t>({n});
  for (std::size_t i = 0; i < n; ++i) {
    labels(i) = static_cast<std::int32_t>(i % resume_classes);
    for (std::size_t p = 0; p < pixels; ++p)
      images.data()[i * pixels + p] = static_cast<float>((i * 7 + p * (1 + i % 3)) % 11) / 5.f - 1.f;
  }
  return fg::data::ImageDataset<float>(std::move(images), std::move(labels), resume_classes);
}

} // namespace forgery::test
