// The networks the ONNX tests export: the MLP GAN and the DCGAN of the Fashion-MNIST examples,
// a network holding every other layer kind that has an ONNX form, and a ResNet generator and
// critic built from blocks, each brought to a state that is not the initial one (see prepare).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <forgery/forgery.hpp>
#include <forgery/io/onnx.hpp>
#include <forgery/layers/batch_norm.hpp>
#include <forgery/layers/conv2d.hpp>
#include <forgery/layers/conv_transpose2d.hpp>
#include <forgery/layers/dropout.hpp>
#include <forgery/layers/layer_norm.hpp>
#include <forgery/layers/resample.hpp>
#include <forgery/layers/self_attention.hpp>
#include <forgery/layers/spectral_norm.hpp>
#include <forgery/nn/residual.hpp>

#include "../../examples/fashion_common/dcgan_specs.hpp"

namespace forgery::test::onnx_models {

// examples/fashion_mlp_gan's networks.
inline constexpr index_t latent = 64;
using MlpGenerator = Sequential<Input<latent>, Dense<256>, LeakyReLU<>, Dense<512>, LeakyReLU<>, Dense<784>, Tanh>;
using MlpCritic = Sequential<Input<784>, Dense<512>, LeakyReLU<>, Dense<256>, LeakyReLU<>, Dense<1>>;

// examples/fashion_dcgan's networks.
using DcganGenerator = fashion::dcgan::G;
using DcganCritic = fashion::dcgan::D;

/// Every other mapping: SpectralNorm around a convolution and a Dense, LayerNorm on images
/// and on flat inputs, ConvTranspose2d with a bias and odd geometry, BatchNorm per feature,
/// Dropout, Identity, Sigmoid, ReLU, Dense without a bias, Flatten and Reshape, and a user's
/// layer (example::Double) through its own onnx_node specialisation (below).
using LayerZoo = Sequential<Input<3, 9, 9>, example::Double, SpectralNorm<Conv2d<4, 3, 2, 1>>, LayerNorm<>, Sigmoid,
                            ConvTranspose2d<5, 3, 2, 1>, BatchNorm<0.3, 1e-3>, Dropout<0.4>, LeakyReLU<0.1>, Flatten,
                            SpectralNorm<Dense<24>>, BatchNorm<>, ReLU, Dense<12, false>, LayerNorm<1e-4>, Identity,
                            Reshape<3, 2, 2>, Tanh>;

/// A ResNet generator's up block (SNGAN, Miyato et al. 2018): BatchNorm, ReLU, Upsample<2> and
/// a 3x3 convolution twice, beside a learned shortcut (Upsample<2>, 1x1 convolution).
template <index_t Out>
using ResUp =
    Residual<Sequential<BatchNorm<>, ReLU, Upsample<2>, Conv2d<Out, 3, 1, 1>, BatchNorm<>, ReLU, Conv2d<Out, 3, 1, 1>>,
             Sequential<Upsample<2>, Conv2d<Out, 1, 1, 0>>>;

/// A ResNet critic's down block: spectrally normalised 3x3 convolutions and AvgPool2d<2>,
/// beside a learned shortcut (1x1 convolution, AvgPool2d<2>).
template <index_t Out>
using ResDown = Residual<
    Sequential<ReLU, SpectralNorm<Conv2d<Out, 3, 1, 1>>, ReLU, SpectralNorm<Conv2d<Out, 3, 1, 1>>, AvgPool2d<2>>,
    Sequential<SpectralNorm<Conv2d<Out, 1, 1, 0>>, AvgPool2d<2>>>;

/// z (16) -> 16x4x4 -> 16x8x8 -> 8x16x16 -> 3x16x16.
using ResnetGenerator = Sequential<Input<16>, Dense<16 * 4 * 4>, Reshape<16, 4, 4>, ResUp<16>, ResUp<8>, BatchNorm<>,
                                   ReLU, Conv2d<3, 3, 1, 1>, Tanh>;

/// 3x16x16 -> 16x8x8 -> attention -> 16x4x4 -> an identity block -> 1 logit.
using ResnetCritic =
    Sequential<Input<3, 16, 16>, ResDown<16>, SelfAttention<8, 2, true>, ResDown<16>,
               Residual<Sequential<ReLU, SpectralNorm<Conv2d<16, 3, 1, 1>>, ReLU, SpectralNorm<Conv2d<16, 3, 1, 1>>>>,
               ReLU, Flatten, Dense<1>>;
/// ResnetCritic's SelfAttention (layer 1).
inline constexpr std::size_t resnet_critic_attention = 1;

/// Sets gamma of the SelfAttention at top-level position I of `net`: it starts at 0, where
/// the layer is the identity and an export would not exercise the attention.
template <std::size_t I, class Net>
void set_attention_gamma(Net& net, typename Net::scalar gamma) {
  using L = std::remove_cvref_t<decltype(net.template layer<I>())>;
  net.params()[Net::param_offsets[I] + L::gamma_offset] = gamma;
}

/// Initialises `net` from `seed`, adds N(0, 0.05) to every parameter (BatchNorm's and
/// LayerNorm's gamma and beta leave 1 and 0), runs four train-mode passes on N(0, 1) inputs
/// (BatchNorm's running statistics move off 0 and 1) and two power-iteration steps
/// (SpectralNorm's u and v), then switches to eval mode: the state an exported model has.
template <class Net>
void prepare(Net& net, std::uint64_t seed) {
  using S = typename Net::scalar;
  using B = typename Net::backend;
  net.initialize(seed);
  std::vector<S> noise(static_cast<std::size_t>(Net::param_count));
  RandomStream rng{seed, 100, 0};
  B::fill_normal(Net::param_count, noise.data(), rng, S(0), S(0.05));
  B::axpy(Net::param_count, S(1), noise.data(), net.params());
  const index_t batch = 6;
  std::vector<S> x(static_cast<std::size_t>(Net::input_size * batch));
  RandomStream data{seed, 101, 0};
  RandomStream drop{seed, 102, 0};
  net.set_random_stream(&drop);
  net.train();
  for (int pass = 0; pass < 4; ++pass) {
    B::fill_normal(Net::input_size * batch, x.data(), data, S(0), S(1));
    net.forward({x.data(), Net::input_size, batch});
  }
  net.after_step();
  net.after_step();
  net.eval();
}

/// `batch` inputs for `net`: N(0, 1) for a generator's latent codes, U(-1, 1) (the images'
/// range) otherwise.
template <class Net>
std::vector<typename Net::scalar> inputs(index_t batch, std::uint64_t seed, bool uniform) {
  using S = typename Net::scalar;
  using B = typename Net::backend;
  std::vector<S> x(static_cast<std::size_t>(Net::input_size * batch));
  RandomStream rng{seed, 200, 0};
  if (uniform)
    B::fill_uniform(Net::input_size * batch, x.data(), rng, S(-1), S(1));
  else
    B::fill_normal(Net::input_size * batch, x.data(), rng, S(0), S(1));
  return x;
}

} // namespace forgery::test::onnx_models

/// A user's layer given an ONNX form: example::Double (y = 2 x) where LayerZoo has it, on
/// (3, 9, 9) inputs, is Mul by a scalar initializer 2.
template <class B>
struct forgery::io::onnx_node<forgery::example::Double::bind<forgery::Shape<3, 9, 9>>::layer<B>> {
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const forgery::example::Double::bind<forgery::Shape<3, 9, 9>>::layer<B>&,
                          const S*, const std::string& input) {
    const S two = 2;
    return g.node("Mul", {input, g.constant("two", {}, &two)});
  }
};
