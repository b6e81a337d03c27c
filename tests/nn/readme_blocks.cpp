#include <cstdio>
#include <forgery/forgery.hpp>

// Blocks are layers: a residual block is a main branch plus a shortcut (Identity unless given).
template <fg::index_t C> // SN-GAN generator block: x2 nearest upsampling, learned 1x1 shortcut
using Up = fg::Residual<fg::Sequential<fg::BatchNorm<>, fg::ReLU, fg::Upsample<2>, fg::Conv2d<C, 3, 1, 1>,
                                       fg::BatchNorm<>, fg::ReLU, fg::Conv2d<C, 3, 1, 1>>,
                        fg::Sequential<fg::Conv2d<C, 1, 1, 0>, fg::Upsample<2>>>;
template <fg::index_t C> // critic block with 2x2 average pooling, spectral norm on every weight
using Down = fg::Residual<fg::Sequential<fg::ReLU, fg::SpectralNorm<fg::Conv2d<C, 3, 1, 1>>, fg::ReLU,
                                         fg::SpectralNorm<fg::Conv2d<C, 3, 1, 1>>, fg::AvgPool2d<2>>,
                          fg::Sequential<fg::SpectralNorm<fg::Conv2d<C, 1, 1, 0>>, fg::AvgPool2d<2>>>;

using G = fg::Sequential<fg::Input<128>, fg::Dense<64 * 7 * 7>, fg::Reshape<64, 7, 7>, Up<64>, Up<64>, fg::BatchNorm<>,
                         fg::ReLU, fg::Conv2d<1, 3, 1, 1>, fg::Tanh>;
// SAGAN's self-attention at 14x14; a block whose branches end in different shapes does not compile.
using D = fg::Sequential<fg::Input<1, 28, 28>, fg::SpectralNorm<fg::Conv2d<64, 3, 1, 1>>, Down<64>, fg::SelfAttention<>,
                         Down<64>, fg::ReLU, fg::Flatten, fg::SpectralNorm<fg::Dense<1>>>;
using T = fg::Trainer<G, D, fg::loss::Hinge, fg::optim::Adam>; // as any other G and D

int main() {
  T::Config cfg;
  cfg.batch = 16;
  cfg.n_critic = 5;
  cfg.g_optimizer = cfg.d_optimizer = {.lr = 2e-4, .beta1 = 0.0, .beta2 = 0.9};
  T trainer(cfg);
  fg::HostBuffer<float> images(28 * 28 * 4);
  fg::RandomStream rng{1, 7, 0};
  trainer.generate(rng, {images.data(), 28 * 28, 4});
  std::printf("G: %ld parameters, D: %ld parameters\n", static_cast<long>(T::generator_type::param_count),
              static_cast<long>(T::discriminator_type::param_count));
}
