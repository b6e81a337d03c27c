// fashion_mlp_gan: the original fully connected GAN (Goodfellow et al. 2014) with the
// non-saturating loss on Fashion-MNIST. Writes sample grids and a log; prints Frechet
// distance and KID against real images.
#include <cstdio>
#include <exception>

#include "../fashion_common/fashion.hpp"

namespace {
constexpr fg::index_t latent = 64;
using G = fg::Sequential<fg::Input<latent>, fg::Dense<256>, fg::LeakyReLU<>, fg::Dense<512>, fg::LeakyReLU<>,
                         fg::Dense<fashion::pixels>, fg::Tanh>;
using D = fg::Sequential<fg::Input<fashion::pixels>, fg::Dense<512>, fg::LeakyReLU<>, fg::Dense<256>, fg::LeakyReLU<>,
                         fg::Dense<1>>;
using T = fg::Trainer<G, D, fg::loss::NonSaturating, fg::optim::Adam, fg::backend::Cpu<float>, fashion::Hook>;
} // namespace

int main(int argc, char** argv) try {
  const auto o =
      fashion::parse(argc, argv, "fashion_mlp_gan",
                     "Trains a fully connected GAN (non-saturating loss) on Fashion-MNIST.", 6000, 64, T::max_batch);
  auto hook = fashion::make_hook(o, argc, argv);
  T::Config cfg;
  cfg.g_optimizer = {2e-4, 0.5, 0.999, 1e-8, 0.0};
  cfg.d_optimizer = {2e-4, 0.5, 0.999, 1e-8, 0.0};
  fashion::apply_options(cfg, o, hook);
  T trainer(cfg, std::move(hook));
  return fashion::run(trainer, o, "fashion_mlp_gan");
} catch (const std::exception& e) {
  return fashion::fail("fashion_mlp_gan", e);
}
