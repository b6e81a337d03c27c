// An image GAN's training step allocates no heap memory after warm-up: convolutions,
// transposed convolutions, BatchNorm, SpectralNorm, Dropout, a projection critic with
// labels from a shuffled image dataset, and a WGAN-GP critic on images (im2col on the
// tangent pass too), with every global operator new counted.
#include <doctest/doctest.h>

#include "forgery/forgery.hpp"

#include "alloc_counter.hpp"

namespace {
using forgery::test::allocations;
constexpr fg::index_t K = 3;

using G = fg::Sequential<fg::Input<8>, fg::ConcatEmbedding<K, 4>, fg::Dense<8 * 3 * 3, false>, fg::Reshape<8, 3, 3>,
                         fg::BatchNorm<>, fg::ReLU, fg::ConvTranspose2d<4, 4, 2, 1>, fg::Dropout<0.1>, fg::ReLU,
                         fg::ConvTranspose2d<1, 4, 2, 1>, fg::Tanh>;
using D = fg::Sequential<fg::Input<1, 12, 12>, fg::SpectralNorm<fg::Conv2d<4, 4, 2, 1>>, fg::LeakyReLU<>,
                         fg::Conv2d<8, 4, 2, 1>, fg::LayerNorm<>, fg::LeakyReLU<>, fg::Flatten, fg::Projection<K>>;
using GpD = fg::Sequential<fg::Input<1, 12, 12>, fg::Conv2d<4, 4, 2, 1>, fg::LeakyReLU<>, fg::Conv2d<8, 4, 2, 1>,
                           fg::LeakyReLU<>, fg::Flatten, fg::Dense<1>>;
using UG = fg::Sequential<fg::Input<8>, fg::Dense<8 * 3 * 3>, fg::Reshape<8, 3, 3>, fg::ReLU,
                          fg::ConvTranspose2d<4, 4, 2, 1>, fg::ReLU, fg::ConvTranspose2d<1, 4, 2, 1>, fg::Tanh>;

fg::data::ImageDataset<float> tiny_images() {
  xt::xtensor<float, 4> images = xt::zeros<float>({std::size_t(40), std::size_t(1), std::size_t(12), std::size_t(12)});
  xt::xtensor<std::int32_t, 1> labels = xt::zeros<std::int32_t>({std::size_t(40)});
  for (std::size_t i = 0; i < 40; ++i) {
    labels(i) = static_cast<std::int32_t>(i % K);
    for (std::size_t p = 0; p < 144; ++p) images.data()[i * 144 + p] = static_cast<float>((i * 7 + p) % 11) / 5.f - 1.f;
  }
  return fg::data::ImageDataset<float>(std::move(images), std::move(labels), K);
}

template <class T>
void check(typename T::Config cfg, const fg::data::ImageDataset<float>& data) {
  cfg.batch = 16;
  cfg.ema_decay = 0.999;
  T trainer(cfg);
  fg::data::ShuffledBatches<float> batches(data);
  trainer.step(batches); // warm-up: buffers, workspaces, the OpenMP pool
  trainer.step(batches);
  const long before = allocations.load();
  for (int i = 0; i < 4; ++i) trainer.step(batches); // crosses an epoch boundary (40 images)
  CHECK(allocations.load() - before == 0);
}

TEST_CASE("an image GAN's training step allocates nothing after warm-up") {
  const auto data = tiny_images();
  check<fg::Trainer<G, D, fg::loss::Hinge>>({}, data);
  check<fg::WganGpTrainer<UG, GpD>>(fg::wgan_gp_config<fg::WganGpTrainer<UG, GpD>>(), data);
}

} // namespace
