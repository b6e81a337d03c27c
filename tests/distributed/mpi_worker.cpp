// One rank of a data-parallel run for tests/distributed/check_mpi.sh: trains a small GAN for
// some steps on fg::mpi::Communicator (or, with --local, on a single-process Trainer with
// the same shards) and writes what the checks compare: every rank's full checkpoint (all
// weights, layer states, optimizer states, streams) and its per-step losses in hexadecimal
// floating point. The script runs it under mpirun with 1, 2 and 3 ranks and compares bytes.
//
//   mpi_worker MODEL --shards S --steps N --out PREFIX [--local] [--threads T]
//              [--resume FILE] [--checkpoint-dir DIR --every K] [--pid-dir DIR] [--vary-rank1]
//
// MODEL: bn (conditional, BatchNorm in both networks, Dropout in the critic, EMA),
// gp (WGAN-GP, 3 critic updates per step), rel (relativistic average loss: the generator
// update reads the real batch, BatchNorm critic).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <type_traits>

#include <omp.h>
#include <unistd.h>

#include "forgery/data/toy.hpp"
#include "forgery/distributed/mpi.hpp"
#include "forgery/forgery.hpp"
#include "forgery/train/checkpoints.hpp"

namespace {
namespace fs = std::filesystem;
constexpr fg::index_t K = 4;

struct Options {
  std::string model, out, resume, checkpoint_dir, pid_dir;
  fg::index_t shards = 1;
  long long steps = 1, every = 0;
  int threads = 0;
  bool local = false;
  bool vary_rank1 = false;     // rank 1 takes another seed (a configuration the ranks disagree on)
  long long fail_rank1_at = 0; // rank 1 alone throws after this step (0: never)
};

// Rank 1 alone meets an error after step `at` (as a rank that cannot write a file would).
struct FailRank1 {
  long long at = 0;
  template <class T>
  void on_step(const T& t, const fg::StepStats& s) {
    if (at > 0 && t.rank() == 1 && s.step == at) throw fg::io_error("rank1.dat", "rank 1 fails alone on purpose");
  }
};

// Writes each step's losses, as exact hexadecimal text.
struct LossRecord {
  std::string text;
  template <class T>
  void on_step(const T&, const fg::StepStats& s) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%lld %a %a %a %a\n", s.step, s.d_loss, s.g_loss, s.d_grad_norm, s.g_grad_norm);
    text += buf;
  }
};

template <class Trainer, class Source, class Hook>
int run(const Options& o, typename Trainer::Config config, Source& source, Hook hook) {
  config.shards = o.shards;
  config.seed = 7;
  if constexpr (std::is_same_v<Hook, fg::mpi::Communicator>)
    if (o.vary_rank1 && hook.rank() == 1) config.seed = 8;
  Trainer trainer(config, std::move(hook));
  if (!o.pid_dir.empty()) {
    std::ofstream(fs::path(o.pid_dir) / ("rank" + std::to_string(trainer.rank()) + ".pid")) << ::getpid() << "\n";
  }
  if (!o.resume.empty()) {
    const fs::path dir(o.resume);
    if (fs::is_directory(dir)) {
      if (trainer.resume(dir).empty()) throw fg::io_error(o.resume, "no checkpoint to resume from");
    } else {
      trainer.load_checkpoint(dir);
    }
  }
  LossRecord losses;
  FailRank1 fail{o.fail_rank1_at};
  if (!o.checkpoint_dir.empty()) {
    fg::callbacks::CheckpointOptions copt;
    copt.dir = o.checkpoint_dir;
    copt.every = o.every;
    copt.keep = 3;
    fg::callbacks::Checkpoints checkpoints(copt);
    trainer.fit_until(source, o.steps, losses, fail, checkpoints);
  } else {
    trainer.fit_until(source, o.steps, losses, fail);
  }
  const std::string prefix = o.out + ".rank" + std::to_string(trainer.rank());
  trainer.save_checkpoint(prefix + ".fgc");
  std::ofstream(prefix + ".losses") << losses.text;
  return 0;
}

template <template <class> class TrainerOf, class Source>
int dispatch(const Options& o, typename TrainerOf<fg::LocalGradients>::Config config_local,
             typename TrainerOf<fg::mpi::Communicator>::Config config_mpi, Source& source) {
  if (o.local) return run<TrainerOf<fg::LocalGradients>>(o, config_local, source, fg::LocalGradients{});
  return run<TrainerOf<fg::mpi::Communicator>>(o, config_mpi, source, fg::mpi::Communicator{});
}

// bn: conditional, BatchNorm in G and D, Dropout in D, EMA.
using BnG =
    fg::Sequential<fg::Input<4>, fg::ConcatOneHot<K>, fg::Dense<16, false>, fg::BatchNorm<>, fg::ReLU, fg::Dense<2>>;
using BnD = fg::Sequential<fg::Input<2>, fg::Dense<16, false>, fg::BatchNorm<>, fg::LeakyReLU<>, fg::Dropout<>,
                           fg::Projection<K>>;
template <class Hook>
using BnTrainer = fg::Trainer<BnG, BnD, fg::loss::NonSaturating, fg::optim::Adam, fg::backend::Cpu<float>, Hook>;

// gp: WGAN-GP in double, 3 critic updates per step.
using GpG = fg::Sequential<fg::Input<4>, fg::Dense<16>, fg::LeakyReLU<>, fg::Dense<2>>;
using GpD = fg::Sequential<fg::Input<2>, fg::Dense<16>, fg::LeakyReLU<>, fg::Dense<1>>;
template <class Hook>
using GpTrainer = fg::Trainer<GpG, GpD, fg::Objective<fg::loss::Wasserstein, fg::penalty::GradientPenalty>,
                              fg::optim::Adam, fg::backend::Cpu<double>, Hook>;

// rel: relativistic average loss (the generator update reads the real batch), BatchNorm D.
using RelD = fg::Sequential<fg::Input<2>, fg::Dense<16, false>, fg::BatchNorm<>, fg::LeakyReLU<>, fg::Dense<1>>;
template <class Hook>
using RelTrainer =
    fg::Trainer<GpG, RelD, fg::loss::RelativisticAverage, fg::optim::Adam, fg::backend::Cpu<float>, Hook>;

template <class C>
C config(fg::index_t batch, fg::index_t n_critic, double ema) {
  C c;
  c.batch = batch;
  c.n_critic = n_critic;
  c.ema_decay = ema;
  c.g_optimizer.lr = 1e-3;
  c.d_optimizer.lr = 1e-3;
  return c;
}

Options parse(int argc, char** argv) {
  Options o;
  if (argc < 2) throw fg::config_error("mpi_worker MODEL", "(none)", "bn, gp or rel");
  o.model = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string_view a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw fg::config_error(std::string(a), "(missing)", "a value");
      return argv[++i];
    };
    if (a == "--local")
      o.local = true;
    else if (a == "--shards")
      o.shards = std::stoll(value());
    else if (a == "--steps")
      o.steps = std::stoll(value());
    else if (a == "--out")
      o.out = value();
    else if (a == "--threads")
      o.threads = std::stoi(value());
    else if (a == "--resume")
      o.resume = value();
    else if (a == "--checkpoint-dir")
      o.checkpoint_dir = value();
    else if (a == "--every")
      o.every = std::stoll(value());
    else if (a == "--pid-dir")
      o.pid_dir = value();
    else if (a == "--vary-rank1")
      o.vary_rank1 = true;
    else if (a == "--fail-rank1-at")
      o.fail_rank1_at = std::stoll(value());
    else
      throw fg::config_error("mpi_worker option", std::string(a), "one of the options in mpi_worker.cpp");
  }
  if (o.out.empty()) throw fg::config_error("mpi_worker --out", "(none)", "an output prefix");
  return o;
}
} // namespace

int main(int argc, char** argv) {
  fg::mpi::Environment mpi(argc, argv);
  try {
    const Options o = parse(argc, argv);
    if (o.threads > 0) omp_set_num_threads(o.threads);
    fg::data::Ring ring(K, 2.0, 0.05);
    if (o.model == "bn") {
      using L = BnTrainer<fg::LocalGradients>::Config;
      using M = BnTrainer<fg::mpi::Communicator>::Config;
      return dispatch<BnTrainer>(o, config<L>(48, 1, 0.9), config<M>(48, 1, 0.9), ring);
    }
    if (o.model == "gp") {
      using L = GpTrainer<fg::LocalGradients>::Config;
      using M = GpTrainer<fg::mpi::Communicator>::Config;
      return dispatch<GpTrainer>(o, config<L>(36, 3, 0), config<M>(36, 3, 0), ring);
    }
    if (o.model == "rel") {
      using L = RelTrainer<fg::LocalGradients>::Config;
      using M = RelTrainer<fg::mpi::Communicator>::Config;
      return dispatch<RelTrainer>(o, config<L>(36, 2, 0), config<M>(36, 2, 0), ring);
    }
    throw fg::config_error("mpi_worker MODEL", o.model, "bn, gp or rel");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpi_worker: %s\n", e.what());
    // An error of this rank alone: end the job, or the others would wait for it forever.
    fg::mpi::abort_job(1);
  }
}
