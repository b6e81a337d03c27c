// data_parallel: the time of one training step when the batch is spread over MPI ranks,
// against one process with all the threads, at the same global batch. For the MLP GAN,
// WGAN-GP (5 critic updates) and the DCGAN of bench_gan_step and bench_dcgan_step, on
// backend::Cpu<float>, it prints the median and the shortest ms per step over `rounds`
// rounds of `steps` steps, and the share of the step spent in the shard exchange (MPI
// waiting for the slowest rank included).
//
//   bench_data_parallel --local [--shards S]         one process (OMP_NUM_THREADS threads)
//   mpirun -np 2 -x OMP_NUM_THREADS=1 bench_data_parallel --shards 2
//
// benchmarks/mpi/compare.sh runs them in turns and prints the table the README quotes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <omp.h>

#include "forgery/distributed/mpi.hpp"
#include "forgery/forgery.hpp"

namespace {
using fg::index_t;
using S = float;
using Cpu = fg::backend::Cpu<S>;

namespace mlp {
using G = fg::Sequential<fg::Input<100>, fg::Dense<256>, fg::LeakyReLU<0.2>, fg::Dense<512>, fg::LeakyReLU<0.2>,
                         fg::Dense<784>, fg::Tanh>;
using D = fg::Sequential<fg::Input<784>, fg::Dense<512>, fg::LeakyReLU<0.2>, fg::Dense<256>, fg::LeakyReLU<0.2>,
                         fg::Dense<1>>;
} // namespace mlp
namespace dcgan {
using G = fg::Sequential<fg::Input<100>, fg::Dense<128 * 7 * 7, false>, fg::Reshape<128, 7, 7>, fg::BatchNorm<>,
                         fg::ReLU, fg::ConvTranspose2d<64, 4, 2, 1, false>, fg::BatchNorm<>, fg::ReLU,
                         fg::ConvTranspose2d<1, 4, 2, 1>, fg::Tanh>;
using D =
    fg::Sequential<fg::Input<1, 28, 28>, fg::Conv2d<64, 4, 2, 1>, fg::LeakyReLU<0.2>, fg::Conv2d<128, 4, 2, 1, false>,
                   fg::BatchNorm<>, fg::LeakyReLU<0.2>, fg::Flatten, fg::Dense<1>>;
} // namespace dcgan

// N(0, 1) data straight from Philox, one block per value group: the step, not a pipeline.
struct NormalSource {
  void sample(fg::RandomStream& rng, fg::BatchView<S> out) const {
    Cpu::fill_normal(out.size(), out.data(), rng, 0, 1);
  }
};

struct Settings {
  bool local = false;
  index_t shards = 0, batch = 64;
  int steps = 20, rounds = 5, warmup = 3;
  std::string only;
};

struct Result {
  double median_ms = 0, min_ms = 0, exchange_share = 0;
};

template <class T, class Hook>
Result measure(typename T::Config cfg, const Settings& s, Hook hook) {
  cfg.batch = s.batch;
  cfg.shards = s.shards > 0 ? s.shards : 1;
  T trainer(cfg, std::move(hook));
  NormalSource source;
  for (int i = 0; i < s.warmup; ++i) trainer.step(source);
  std::vector<double> per_step;
  double exchange = 0, total = 0;
  for (int r = 0; r < s.rounds; ++r) {
    double before = 0;
    if constexpr (requires { trainer.hook().exchange_seconds(); }) before = trainer.hook().exchange_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < s.steps; ++i) trainer.step(source);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    per_step.push_back(1e3 * secs / s.steps);
    total += secs;
    if constexpr (requires { trainer.hook().exchange_seconds(); })
      exchange += trainer.hook().exchange_seconds() - before;
  }
  std::sort(per_step.begin(), per_step.end());
  return {per_step[per_step.size() / 2], per_step.front(), total > 0 ? exchange / total : 0};
}

template <class Hook>
void run_all(const Settings& s, const std::string& mode, bool print, Hook (*make)()) {
  const auto report = [&](const char* name, const Result& r) {
    if (print)
      std::printf("%-8s %-22s %5ld %6ld %9.2f %9.2f %9.1f%%\n", name, mode.c_str(), static_cast<long>(s.batch),
                  static_cast<long>(s.shards > 0 ? s.shards : 1), r.median_ms, r.min_ms, 100 * r.exchange_share);
    std::fflush(stdout);
  };
  if (s.only.empty() || s.only == "mlp_gan") {
    using T = fg::DcganTrainer<mlp::G, mlp::D, Cpu, Hook>;
    report("mlp_gan", measure<T>(fg::dcgan_config<T>(), s, make()));
  }
  if (s.only.empty() || s.only == "wgan_gp") {
    using T = fg::WganGpTrainer<mlp::G, mlp::D, Cpu, Hook>;
    report("wgan_gp", measure<T>(fg::wgan_gp_config<T>(), s, make()));
  }
  if (s.only.empty() || s.only == "dcgan") {
    using T = fg::DcganTrainer<dcgan::G, dcgan::D, Cpu, Hook>;
    report("dcgan", measure<T>(fg::dcgan_config<T>(), s, make()));
  }
}
} // namespace

int main(int argc, char** argv) try {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const auto next = [&]() -> const char* {
      if (i + 1 >= argc) throw fg::config_error(std::string(a), "(missing)", "a value");
      return argv[++i];
    };
    if (a == "--local")
      s.local = true;
    else if (a == "--shards")
      s.shards = std::atol(next());
    else if (a == "--batch")
      s.batch = std::atol(next());
    else if (a == "--steps")
      s.steps = std::atoi(next());
    else if (a == "--rounds")
      s.rounds = std::atoi(next());
    else if (a == "--only")
      s.only = next();
    else if (a == "--quick")
      s.steps = 1, s.rounds = 1, s.warmup = 1;
    else
      throw fg::config_error("bench_data_parallel option", std::string(a),
                             "--local, --shards S, --batch N, --steps N, --rounds N, --only NAME, --quick");
  }
  const int threads = omp_get_max_threads();
  if (s.local) {
    const std::string mode = "1 process x " + std::to_string(threads) + " thr";
    run_all<fg::LocalGradients>(
        s, mode, true, +[] { return fg::LocalGradients{}; });
    return 0;
  }
  fg::mpi::Environment env(argc, argv);
  fg::mpi::Communicator probe;
  const index_t ranks = probe.size();
  if (s.shards == 0) s.shards = ranks;
  const std::string mode = std::to_string(ranks) + " ranks x " + std::to_string(threads) + " thr";
  run_all<fg::mpi::Communicator>(
      s, mode, probe.is_root(), +[] { return fg::mpi::Communicator{}; });
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_data_parallel: %s\n", e.what());
  return 1;
}
