// The networks the ONNX tests export: the MLP GAN and the DCGAN of the Fashion-MNIST examples,
// and a network holding every other layer kind that has an ONNX form, each brought to a state
// that is not the initial one (see prepare).
#pragma once

#include <cstdint>
#include <vector>

#include <forgery/forgery.hpp>
#include <forgery/io/onnx.hpp>
#include <forgery/layers/batch_norm.hpp>
#include <forgery/layers/conv2d.hpp>
#include <forgery/layers/conv_transpose2d.hpp>
#include <forgery/layers/dropout.hpp>
#include <forgery/layers/layer_norm.hpp>
#include <forgery/layers/spectral_norm.hpp>

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
