// The toy-ring experiment shared by the toy_ring and loss_zoo examples and the seeded ring
// tests: network specs, per-objective settings, and the evaluation protocol.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <tuple>

#include <forgery/forgery.hpp>

namespace toy {

/// Generator: 2-D noise to a 2-D point; critic: a 2-D point to one logit. Sizes as in the
/// Unrolled-GAN and VEEGAN ring experiments (3 hidden layers of 128 units).
using G = fg::Sequential<fg::Input<2>, fg::Dense<128>, fg::ReLU, fg::Dense<128>, fg::ReLU, fg::Dense<128>, fg::ReLU,
                         fg::Dense<2>>;
using D = fg::Sequential<fg::Input<2>, fg::Dense<128>, fg::LeakyReLU<>, fg::Dense<128>, fg::LeakyReLU<>, fg::Dense<128>,
                         fg::LeakyReLU<>, fg::Dense<1>>;

/// What one run reached.
struct Result {
  fg::metrics::ModeCoverage coverage;
  double mmd = 0;
  double energy = 0;
  double seconds = 0;
};

/// Settings that work across objectives on the ring: Adam 3e-4 with beta1 0.5, batch 256,
/// an EMA of the generator with decay 0.99 (scored samples use it).
template <class T>
typename T::Config ring_config(std::uint64_t seed) {
  typename T::Config c;
  c.batch = 256;
  c.seed = seed;
  c.ema_decay = 0.99;
  for (auto* o : {&c.g_optimizer, &c.d_optimizer}) {
    o->lr = 3e-4;
    if constexpr (requires { o->beta1; }) o->beta1 = 0.5;
  }
  return c;
}

/// WGAN-GP on the ring as in the WGAN-GP authors' toy script: 5 critic updates per
/// generator update, Adam betas (0.5, 0.9), lambda 0.1 (their toy setting; images use 10),
/// here with lr 1e-3 and batch 128 so that it converges in about 1500 steps.
template <class T>
typename T::Config wgan_gp_ring_config(std::uint64_t seed) {
  auto c = ring_config<T>(seed);
  c.batch = 128;
  c.n_critic = 5;
  for (auto* o : {&c.g_optimizer, &c.d_optimizer}) {
    o->lr = 1e-3;
    o->beta2 = 0.9;
  }
  std::get<0>(c.objective.parts).lambda = 0.1;
  return c;
}

/// Trains `steps` steps on the ring, then scores 2500 EMA samples (the VEEGAN protocol)
/// and compares 1000 of them with 1000 real samples by MMD (median bandwidth) and energy distance.
template <class T, class... Callbacks>
Result train_and_evaluate(T& trainer, long long steps, Callbacks&&... callbacks) {
  fg::data::Ring ring;
  const auto start = std::chrono::steady_clock::now();
  trainer.fit(ring, steps, callbacks...);
  Result r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  using S = typename T::scalar;
  constexpr fg::index_t n = 2500;
  fg::HostBuffer<S> fake(2 * n), real(2 * 1000);
  fg::RandomStream eval_rng{trainer.config().seed, 0x6576616cULL, 0};
  trainer.generate(eval_rng, {fake.data(), 2, n});
  ring.sample(eval_rng, fg::BatchView<S>(real.data(), 2, 1000));
  r.coverage = fg::metrics::mode_coverage(fg::ConstBatchView<S>(fake.data(), 2, n), ring);
  const fg::ConstBatchView<S> f1000(fake.data(), 2, 1000), r1000(real.data(), 2, 1000);
  r.mmd = fg::metrics::mmd2(f1000, r1000, fg::metrics::median_heuristic(f1000, r1000));
  r.energy = fg::metrics::energy_distance(f1000, r1000);
  return r;
}

} // namespace toy
