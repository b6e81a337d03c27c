// A training step allocates no heap memory after warm-up: WGAN-GP (loss, penalty, tangent
// pass, optimizers, EMA) and a relativistic loss, with every global operator new counted.
#include <doctest/doctest.h>

#include "forgery/forgery.hpp"

#include "alloc_counter.hpp"

namespace {
using forgery::test::allocations;

using G = fg::Sequential<fg::Input<16>, fg::Dense<128>, fg::ReLU, fg::Dense<64>, fg::Tanh>;
using D = fg::Sequential<fg::Input<64>, fg::Dense<128>, fg::LeakyReLU<>, fg::Dense<1>>;

template <class T>
void check(typename T::Config cfg) {
  cfg.batch = 64;
  cfg.ema_decay = 0.999;
  T trainer(cfg);
  struct Source {
    void sample(fg::RandomStream& rng, fg::BatchView<float> out) {
      fg::backend::Cpu<float>::fill_normal(out.size(), out.data(), rng, 0.f, 1.f);
    }
  } source;
  trainer.step(source); // warm-up: buffers, workspaces, the OpenMP pool
  trainer.step(source);
  const long before = allocations.load();
  for (int i = 0; i < 3; ++i) trainer.step(source);
  CHECK(allocations.load() - before == 0);
}

TEST_CASE("a training step allocates nothing after warm-up") {
  check<fg::WganGpTrainer<G, D>>(fg::wgan_gp_config<fg::WganGpTrainer<G, D>>());
  using Ra = fg::Trainer<G, D, fg::Objective<fg::loss::RelativisticAverage, fg::penalty::R1>>;
  check<Ra>({});
  check<fg::WganTrainer<G, D>>(fg::wgan_config<fg::WganTrainer<G, D>>());
}

} // namespace
