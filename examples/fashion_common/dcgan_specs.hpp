// The DCGAN of examples/fashion_dcgan (Radford et al. 2016 scaled to 28x28), shared with
// benchmarks/dcgan_step.cpp so that the benchmark times the network the example trains.
#pragma once

#include <forgery/forgery.hpp>
#include <forgery/layers/batch_norm.hpp>
#include <forgery/layers/conv2d.hpp>
#include <forgery/layers/conv_transpose2d.hpp>

namespace fashion::dcgan {

inline constexpr fg::index_t latent = 64;
/// z (64) -> 64x7x7 -> 32x14x14 -> 1x28x28: 4x4 transposed convolutions with stride 2,
/// BatchNorm and ReLU between, Tanh at the end. The channel widths are half those of the
/// usual 28x28 ports (128, 64), a quarter of the FLOPs, so that a run that gives
/// recognisable samples fits in a few minutes on 2 cores.
using G = fg::Sequential<fg::Input<latent>, fg::Dense<64 * 7 * 7, false>, fg::Reshape<64, 7, 7>, fg::BatchNorm<>,
                         fg::ReLU, fg::ConvTranspose2d<32, 4, 2, 1, false>, fg::BatchNorm<>, fg::ReLU,
                         fg::ConvTranspose2d<1, 4, 2, 1>, fg::Tanh>;
/// 1x28x28 -> 32x14x14 -> 64x7x7 -> 1 logit: 4x4 convolutions with stride 2 and
/// LeakyReLU(0.2). No BatchNorm in D: the critic sees real and fake as one batch.
using D = fg::Sequential<fg::Input<1, 28, 28>, fg::Conv2d<32, 4, 2, 1>, fg::LeakyReLU<>, fg::Conv2d<64, 4, 2, 1>,
                         fg::LeakyReLU<>, fg::Flatten, fg::Dense<1>>;

} // namespace fashion::dcgan
