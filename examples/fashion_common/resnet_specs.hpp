// The SN-GAN ResNet generator and critic (Miyato et al. 2018, the CIFAR-10 architecture of
// its appendix, as in Mimicry and PyTorch-StudioGAN) adapted to 28x28 Fashion-MNIST, and the
// class-conditional variant with conditional BatchNorm, a projection critic and SAGAN
// self-attention at the middle resolution. Shared by examples/fashion_resnet_gan,
// examples/fashion_resnet_cgan and benchmarks/resnet_step.cpp, so that the benchmark times
// the networks the examples train.
//
// Each block is a type: swapping the DCGAN backbone of fashion_dcgan for this one is a change
// of G and D only. Adaptations to 28x28 and to 2 cores, all of them deliberate:
// - the generator starts at 7x7 (not 4x4) and has two up blocks (28 = 7 x 2 x 2), the
//   critic two down blocks and two blocks at 7x7, as the CIFAR critic;
// - 32 channels throughout (the paper: 256 in G, 128 in D), so that a run of the README fits
//   in minutes on 2 cores: at 64 channels a step (5 critic updates and a generator update,
//   batch 64) is about 300 GFLOP, at 32 about 75;
// - the learned shortcut of an up block applies its 1x1 convolution before the nearest
//   upsampling: both are linear and the convolution is pointwise, so the map is the same and
//   it costs a quarter;
// - the critic ends with a linear layer on its flattened ReLU features in place of global
//   sum pooling and a linear layer (sum pooling is that linear layer with weights tied
//   across positions).
#pragma once

#include <forgery/forgery.hpp>
#include <forgery/layers/batch_norm.hpp>
#include <forgery/layers/conditional_batch_norm.hpp>
#include <forgery/layers/conv2d.hpp>
#include <forgery/layers/resample.hpp>
#include <forgery/layers/self_attention.hpp>
#include <forgery/layers/spectral_norm.hpp>
#include <forgery/nn/residual.hpp>

namespace fashion::resnet {

inline constexpr fg::index_t latent = 128, width = 32, classes = 10;

template <fg::index_t C>
using Conv3 = fg::Conv2d<C, 3, 1, 1>;
template <fg::index_t C>
using Conv1 = fg::Conv2d<C, 1, 1, 0>;
template <fg::index_t C>
using SnConv3 = fg::SpectralNorm<Conv3<C>>;
template <fg::index_t C>
using SnConv1 = fg::SpectralNorm<Conv1<C>>;

/// Generator up block: BN, ReLU, 2x nearest upsampling, 3x3 conv, BN, ReLU, 3x3 conv, plus a
/// learned 1x1 shortcut of the upsampled input. `Norm` is BatchNorm<> or, in the conditional
/// generator, ConditionalBatchNorm<K>.
template <fg::index_t C, class Norm>
using GBlock = fg::Residual<fg::Sequential<Norm, fg::ReLU, fg::Upsample<2>, Conv3<C>, Norm, fg::ReLU, Conv3<C>>,
                            fg::Sequential<Conv1<C>, fg::Upsample<2>>>;

/// The critic's first block (the paper's "optimized" block): 3x3 conv, ReLU, 3x3 conv, 2x2
/// average pooling, plus average pooling and a 1x1 conv on the shortcut; no ReLU on the image.
template <fg::index_t C>
using DBlockFirst = fg::Residual<fg::Sequential<SnConv3<C>, fg::ReLU, SnConv3<C>, fg::AvgPool2d<2>>,
                                 fg::Sequential<fg::AvgPool2d<2>, SnConv1<C>>>;
/// Critic down block: ReLU, 3x3 conv, ReLU, 3x3 conv, average pooling; learned shortcut.
template <fg::index_t C>
using DBlockDown = fg::Residual<fg::Sequential<fg::ReLU, SnConv3<C>, fg::ReLU, SnConv3<C>, fg::AvgPool2d<2>>,
                                fg::Sequential<SnConv1<C>, fg::AvgPool2d<2>>>;
/// Critic block at constant resolution: identity shortcut.
template <fg::index_t C>
using DBlock = fg::Residual<fg::Sequential<fg::ReLU, SnConv3<C>, fg::ReLU, SnConv3<C>>>;

/// z (128) -> C x 7 x 7 -> up block -> C x 14 x 14 -> up block -> C x 28 x 28 -> BN, ReLU,
/// 3x3 conv to 1 channel, Tanh.
using G = fg::Sequential<fg::Input<latent>, fg::Dense<width * 7 * 7>, fg::Reshape<width, 7, 7>,
                         GBlock<width, fg::BatchNorm<>>, GBlock<width, fg::BatchNorm<>>, fg::BatchNorm<>, fg::ReLU,
                         Conv3<1>, fg::Tanh>;
/// 1 x 28 x 28 -> first block -> C x 14 x 14 -> down block -> C x 7 x 7 -> two blocks ->
/// ReLU -> one logit. Spectral norm on every weight.
using D = fg::Sequential<fg::Input<1, 28, 28>, DBlockFirst<width>, DBlockDown<width>, DBlock<width>, DBlock<width>,
                         fg::ReLU, fg::Flatten, fg::SpectralNorm<fg::Dense<1>>>;

/// The conditional generator: class-conditional BatchNorm (per-class gain and bias) in both
/// up blocks, self-attention at 14 x 14 between them.
using ConditionalG =
    fg::Sequential<fg::Input<latent>, fg::Dense<width * 7 * 7>, fg::Reshape<width, 7, 7>,
                   GBlock<width, fg::ConditionalBatchNorm<classes>>, fg::SelfAttention<>,
                   GBlock<width, fg::ConditionalBatchNorm<classes>>, fg::BatchNorm<>, fg::ReLU, Conv3<1>, fg::Tanh>;
/// The projection critic (Miyato & Koyama 2018): the same blocks, self-attention (with
/// spectral norm on its projections) at 14 x 14, and a projection head in place of the logit.
using ConditionalD =
    fg::Sequential<fg::Input<1, 28, 28>, DBlockFirst<width>, fg::SelfAttention<8, 2, true>, DBlockDown<width>,
                   DBlock<width>, DBlock<width>, fg::ReLU, fg::Flatten, fg::Projection<classes>>;

/// The paper's optimizer and schedule: Adam(2e-4, beta1 0, beta2 0.9), 5 critic updates per
/// generator update, hinge loss, Xavier-uniform initialisation.
template <class T>
typename T::Config config() {
  typename T::Config cfg;
  cfg.n_critic = 5;
  cfg.init = fg::Init::glorot_uniform;
  cfg.g_optimizer = {2e-4, 0.0, 0.9, 1e-8, 0.0};
  cfg.d_optimizer = {2e-4, 0.0, 0.9, 1e-8, 0.0};
  return cfg;
}

} // namespace fashion::resnet
