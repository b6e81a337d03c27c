// Short training runs on backend::Cuda against the same runs on backend::Cpu: same seed,
// so the same Philox noise, data, labels and initial weights; after 20 steps the losses,
// the weights, the EMA and the generated samples agree within tolerance. Non-saturating GAN
// (the issue's run), WGAN-GP (penalty and tangent pass on the device) and a conditional GAN
// (labels uploaded by the Trainer).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>

#include "cuda_support.hpp"

namespace fg = forgery;

namespace {

using fg::HostBuffer;
using fg::index_t;
using namespace fg::test;

using G = fg::Sequential<fg::Input<2>, fg::Dense<32>, fg::ReLU, fg::Dense<32>, fg::ReLU, fg::Dense<2>>;
using D = fg::Sequential<fg::Input<2>, fg::Dense<32>, fg::LeakyReLU<>, fg::Dense<32>, fg::LeakyReLU<>, fg::Dense<1>>;
// Conditional on the ring's 8 modes: one-hot code into G, projection head on D.
using CondG = fg::Sequential<fg::Input<2>, fg::ConcatOneHot<8>, fg::Dense<32>, fg::ReLU, fg::Dense<2>>;
using CondD =
    fg::Sequential<fg::Input<2>, fg::ConcatEmbedding<8, 4>, fg::Dense<32>, fg::LeakyReLU<>, fg::Projection<8>>;

constexpr long long steps = 20;

/// Differences of 20 optimizer steps: Adam divides by the gradient's own scale, so where a
/// gradient entry is a near-cancellation its update can differ by up to 2 lr per step.
/// With lr 1e-4: at most 4e-3 in the worst case; typically 1e-6 (float).
template <class S>
constexpr double run_tolerance() {
  return sizeof(S) == 4 ? 5e-3 : 1e-8;
}
/// Loss values: means over the batch of smooth functions of the logits.
template <class S>
constexpr double loss_tolerance() {
  return sizeof(S) == 4 ? 1e-3 : 1e-9;
}

template <class T>
typename T::Config config() {
  typename T::Config c;
  c.batch = 64;
  c.seed = 5;
  c.ema_decay = 0.9;
  for (auto* o : {&c.g_optimizer, &c.d_optimizer}) {
    o->lr = 1e-4;
    o->beta1 = 0.5;
  }
  return c;
}

/// Runs `steps` steps of TC (Cpu) and TG (Cuda) side by side on two copies of the ring,
/// comparing the step statistics after each step, then the weights, the EMA, the random
/// streams and generated samples.
template <class TC, class TG>
void compare_runs(const typename TC::Config& cc, const typename TG::Config& cg) {
  using S = typename TC::scalar;
  TC cpu(cc);
  TG gpu(cg);
  fg::data::Ring ring_cpu, ring_gpu;
  for (long long s = 1; s <= steps; ++s) {
    const fg::StepStats a = cpu.step(ring_cpu);
    const fg::StepStats b = gpu.step(ring_gpu);
    INFO("step " << s << ": d_loss " << a.d_loss << " vs " << b.d_loss << ", g_loss " << a.g_loss << " vs "
                 << b.g_loss);
    CHECK(std::abs(a.d_loss - b.d_loss) <= loss_tolerance<S>() * std::max(1.0, std::abs(a.d_loss)));
    CHECK(std::abs(a.g_loss - b.g_loss) <= loss_tolerance<S>() * std::max(1.0, std::abs(a.g_loss)));
    CHECK(std::abs(a.d_grad_norm - b.d_grad_norm) <= loss_tolerance<S>() * std::max(1.0, a.d_grad_norm));
    CHECK(std::abs(a.g_grad_norm - b.g_grad_norm) <= loss_tolerance<S>() * std::max(1.0, a.g_grad_norm));
    REQUIRE(a.part_values.size() == b.part_values.size());
    for (std::size_t i = 0; i < a.part_values.size(); ++i)
      CHECK(std::abs(a.part_values[i] - b.part_values[i]) <=
            loss_tolerance<S>() * std::max(1.0, std::abs(a.part_values[i])));
  }
  CHECK(gpu.steps_done() == steps);

  const index_t ng = TC::generator_type::param_count, nd = TC::discriminator_type::param_count;
  CHECK(max_rel_diff(download(gpu.generator().params(), ng).data(), cpu.generator().params(), ng) < run_tolerance<S>());
  CHECK(max_rel_diff(download(gpu.discriminator().params(), nd).data(), cpu.discriminator().params(), nd) <
        run_tolerance<S>());
  CHECK(max_rel_diff(download(gpu.ema_params()).data(), cpu.ema_params().data(), ng) < run_tolerance<S>());
  // The same draws: every stream at the same position.
  const auto rc = cpu.random_streams(), rg = gpu.random_streams();
  for (std::size_t i = 0; i < rc.size(); ++i) CHECK(*rc[i] == *rg[i]);

  constexpr index_t n = 100;
  HostBuffer<S> fake_cpu(2 * n);
  fg::DeviceBuffer<S> fake_gpu(2 * n);
  fg::RandomStream eval_cpu{9, 0x6576616cULL, 0}, eval_gpu = eval_cpu;
  if constexpr (TC::conditional) {
    HostBuffer<std::int32_t> labels(n);
    for (index_t j = 0; j < n; ++j) labels[j] = static_cast<std::int32_t>(j % TC::classes);
    const std::span<const std::int32_t> view(labels.data(), static_cast<std::size_t>(n));
    cpu.generate(eval_cpu, {fake_cpu.data(), 2, n}, view);
    gpu.generate(eval_gpu, {fake_gpu.data(), 2, n}, view); // host labels: the Trainer uploads them
  } else {
    cpu.generate(eval_cpu, {fake_cpu.data(), 2, n});
    gpu.generate(eval_gpu, {fake_gpu.data(), 2, n});
  }
  CHECK(max_rel_diff(download(fake_gpu).data(), fake_cpu.data(), 2 * n) < run_tolerance<S>());
}

TEST_CASE_TEMPLATE("20 steps of a non-saturating GAN on the ring: Cuda matches Cpu", S, float, double) {
  using TC = fg::Trainer<G, D, fg::loss::NonSaturating, fg::optim::Adam, fg::backend::Cpu<S>>;
  using TG = fg::Trainer<G, D, fg::loss::NonSaturating, fg::optim::Adam, fg::backend::Cuda<S>>;
  compare_runs<TC, TG>(config<TC>(), config<TG>());
}

TEST_CASE("20 steps of WGAN-GP on the ring: Cuda matches Cpu") {
  using TC = fg::WganGpTrainer<G, D, fg::backend::Cpu<float>>;
  using TG = fg::WganGpTrainer<G, D, fg::backend::Cuda<float>>;
  auto cc = config<TC>();
  auto cg = config<TG>();
  cc.n_critic = cg.n_critic = 2;
  compare_runs<TC, TG>(cc, cg);
}

TEST_CASE("20 steps of a conditional GAN on the ring's modes: Cuda matches Cpu") {
  using TC = fg::Trainer<CondG, CondD, fg::loss::NonSaturating, fg::optim::Adam, fg::backend::Cpu<float>>;
  using TG = fg::Trainer<CondG, CondD, fg::loss::NonSaturating, fg::optim::Adam, fg::backend::Cuda<float>>;
  compare_runs<TC, TG>(config<TC>(), config<TG>());
}

} // namespace
