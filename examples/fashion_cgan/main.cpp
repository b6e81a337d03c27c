// fashion_cgan: a class-conditional DCGAN on Fashion-MNIST. G appends a learned label
// embedding to z; D is a projection discriminator (Miyato & Koyama 2018) with spectral
// normalisation and the hinge loss. The sample grid has one row per class.
#include <cstdio>
#include <exception>

#include "../fashion_common/fashion.hpp"

#include <forgery/layers/batch_norm.hpp>
#include <forgery/layers/conv_transpose2d.hpp>
#include <forgery/layers/spectral_norm.hpp>

namespace {
constexpr fg::index_t latent = 64, K = fashion::classes;
using G = fg::Sequential<fg::Input<latent>, fg::ConcatEmbedding<K, 16>, fg::Dense<64 * 7 * 7, false>,
                         fg::Reshape<64, 7, 7>, fg::BatchNorm<>, fg::ReLU, fg::ConvTranspose2d<32, 4, 2, 1, false>,
                         fg::BatchNorm<>, fg::ReLU, fg::ConvTranspose2d<1, 4, 2, 1>, fg::Tanh>;
using D = fg::Sequential<fg::Input<1, 28, 28>, fg::SpectralNorm<fg::Conv2d<32, 4, 2, 1>>, fg::LeakyReLU<>,
                         fg::SpectralNorm<fg::Conv2d<64, 4, 2, 1>>, fg::LeakyReLU<>, fg::Flatten, fg::Projection<K>>;
using T = fg::Trainer<G, D, fg::loss::Hinge, fg::optim::Adam, fg::backend::Cpu<float>, fashion::Hook>;
} // namespace

int main(int argc, char** argv) try {
  const auto o = fashion::parse(argc, argv, "fashion_cgan",
                                "Trains a class-conditional GAN (projection discriminator, hinge loss) on "
                                "Fashion-MNIST; the grid has one row per class.",
                                2000, 64, T::max_batch);
  auto hook = fashion::make_hook(o, argc, argv);
  T::Config cfg;
  cfg.init = fg::Init::dcgan_normal;
  cfg.g_optimizer = {2e-4, 0.5, 0.999, 1e-8, 0.0};
  cfg.d_optimizer = {2e-4, 0.5, 0.999, 1e-8, 0.0};
  fashion::apply_options(cfg, o, hook);
  T trainer(cfg, std::move(hook));
  return fashion::run(trainer, o, "fashion_cgan");
} catch (const std::exception& e) {
  return fashion::fail("fashion_cgan", e);
}
