// cuda_ring: the non-saturating GAN of the toy examples on the ring of 8 Gaussians, trained
// on the GPU (backend::Cuda<float>). Prints mode coverage and MMD of 2500 generated samples;
// with --compare 1 it also trains the same seed on the CPU and prints how far apart the two
// runs' generator weights are (the Philox draws are the same on both backends).
//
// Built with nvcc by the `cuda` preset only (FORGERY_CUDA); named main.cu so that the glob
// of examples/CMakeLists.txt (*/main.cpp) leaves it alone.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>

#include <forgery/backend/cuda.hpp>
#include <forgery/forgery.hpp>

#include "../common/cli.hpp"
#include "../toy_ring/toy_setup.hpp"

namespace {

template <class B>
using RingTrainer = fg::Trainer<toy::G, toy::D, fg::loss::NonSaturating, fg::optim::Adam, B>;

/// Seconds to train `steps` steps.
template <class T>
double train(T& trainer, long long steps) {
  fg::data::Ring ring;
  const auto start = std::chrono::steady_clock::now();
  trainer.fit(ring, steps, fg::callbacks::Progress(500));
  if constexpr (!T::backend::host_memory) T::backend::synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

int main(int argc, char** argv) try {
  long long steps = 2000;
  std::uint64_t seed = 1;
  int compare = 0;
  cli::Command("cuda_ring", "Trains a non-saturating GAN on the ring of 8 Gaussians on the GPU and reports how many "
                            "modes it covers; --compare 1 also trains on the CPU and compares the weights.")
      .integer("--steps", steps, 0LL, std::numeric_limits<long long>::max(), "training steps")
      .integer("--seed", seed, std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max(), "seed of every random draw",
               "S")
      .integer("--compare", compare, 0, 1, "1: also train on the CPU and compare the generator weights", "0|1")
      .parse(argc, argv);
  if (fg::backend::Cuda<float>::device_count() == 0) {
    std::fprintf(stderr, "cuda_ring: no CUDA device found; this example needs a GPU\n");
    return 1;
  }
  using Gpu = RingTrainer<fg::backend::Cuda<float>>;
  const auto cfg = toy::ring_config<Gpu>(seed);
  Gpu trainer(cfg);
  const double seconds = train(trainer, steps);

  // Samples are generated into device memory, then brought to the host to be scored.
  constexpr fg::index_t n = 2500;
  fg::DeviceBuffer<float> fake_device(2 * n);
  fg::RandomStream eval_rng{cfg.seed, 0x6576616cULL, 0};
  trainer.generate(eval_rng, {fake_device.data(), 2, n});
  fg::HostBuffer<float> fake(2 * n), real(2 * 1000);
  fg::backend::Cuda<float>::to_host(2 * n, fake_device.data(), fake.data());
  fg::data::Ring ring;
  ring.sample(eval_rng, fg::BatchView<float>(real.data(), 2, 1000));
  const auto coverage = fg::metrics::mode_coverage(fg::ConstBatchView<float>(fake.data(), 2, n), ring);
  const fg::ConstBatchView<float> f1000(fake.data(), 2, 1000), r1000(real.data(), 2, 1000);
  const double mmd = fg::metrics::mmd2(f1000, r1000, fg::metrics::median_heuristic(f1000, r1000));

  std::printf("modes covered      %ld / %ld\n", static_cast<long>(coverage.modes_covered),
              static_cast<long>(coverage.total_modes));
  std::printf("high-quality share %.1f %%  (within 3 sigma of a mode)\n", 100 * coverage.high_quality_fraction);
  std::printf("MMD^2 (RBF)        %.5f\n", mmd);
  std::printf("training time      %.1f s on the GPU (%lld steps)\n", seconds, steps);

  if (compare != 0) {
    using Cpu = RingTrainer<fg::backend::Cpu<float>>;
    Cpu reference(toy::ring_config<Cpu>(cfg.seed));
    const double cpu_seconds = train(reference, steps);
    constexpr fg::index_t count = Gpu::generator_type::param_count;
    fg::HostBuffer<float> gpu_params(count);
    fg::backend::Cuda<float>::to_host(count, trainer.generator().params(), gpu_params.data());
    const float* cpu_params = reference.generator().params();
    double worst = 0;
    for (fg::index_t i = 0; i < count; ++i)
      worst = std::max(worst, static_cast<double>(std::abs(gpu_params[i] - cpu_params[i])));
    std::printf("training time      %.1f s on the CPU\n", cpu_seconds);
    std::printf("generator weights  max |GPU - CPU| = %.3g after %lld steps\n", worst, steps);
  }
} catch (const std::exception& e) {
  std::fprintf(stderr, "cuda_ring: %s\n", e.what());
  return 1;
}
