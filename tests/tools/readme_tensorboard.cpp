#include <forgery/forgery.hpp>
#include <forgery/train/tensorboard.hpp>

using G = fg::Sequential<fg::Input<64>, fg::Dense<256>, fg::LeakyReLU<>, fg::Dense<784>, fg::Tanh>;
using D = fg::Sequential<fg::Input<784>, fg::Dense<256>, fg::LeakyReLU<>, fg::Dense<1>>;
using Gan = fg::Trainer<G, D, fg::loss::NonSaturating>;

// Losses, gradient norms and penalties every 10 steps and a grid of 64 samples from fixed
// noise every 500 steps, in runs/mlp_gan; watch them with `tensorboard --logdir runs`.
void train(Gan& trainer, fg::data::ShuffledBatches<float>& images) {
  fg::callbacks::TensorBoard tb(
      "runs/mlp_gan",
      {.every = 10, .image_every = 500, .images = 64, .image_shape = {1, 28, 28}}); // G's output is flat
  trainer.fit(images, 10000, tb, fg::callbacks::Progress(500));
}
