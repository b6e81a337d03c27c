#include <cstdio>
#include <forgery/forgery.hpp>

// A generator from 2-D noise to points, a critic from points to one logit.
using G = fg::Sequential<fg::Input<2>, fg::Dense<128>, fg::ReLU, fg::Dense<128>, fg::ReLU, fg::Dense<2>>;
using D = fg::Sequential<fg::Input<2>, fg::Dense<128>, fg::LeakyReLU<>, fg::Dense<128>, fg::LeakyReLU<>, fg::Dense<1>>;
// Swap the loss, the optimizer or the backend by changing one template argument.
using T = fg::Trainer<G, D, fg::loss::NonSaturating, fg::optim::Adam, fg::backend::Cpu<float>>;

int main() {
  T::Config cfg; // hyper-parameters are run-time values
  cfg.batch = 256;
  cfg.seed = 1;
  cfg.g_optimizer = cfg.d_optimizer = {.lr = 3e-4, .beta1 = 0.5};
  T trainer(cfg);

  fg::data::Ring ring; // 8 Gaussians on a circle: the classic mode-collapse test
  trainer.fit(ring, 3000, fg::callbacks::Progress(500));

  fg::HostBuffer<float> samples(2 * 2500);
  fg::RandomStream rng{cfg.seed, 7, 0};
  trainer.generate(rng, {samples.data(), 2, 2500});
  const auto cov = fg::metrics::mode_coverage(fg::ConstBatchView<float>(samples.data(), 2, 2500), ring);
  std::printf("modes covered: %ld of 8, high quality: %.1f %%\n", static_cast<long>(cov.modes_covered),
              100 * cov.high_quality_fraction);
}
