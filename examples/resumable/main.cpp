// resumable: a training run that survives. Checkpoints every 200 steps to OUT/checkpoints,
// resumes from the newest one when started again, saves and stops on Ctrl-C or SIGTERM,
// and rolls back with halved learning rates if a step diverges.
//   resumable [--steps N] [--out DIR]
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>

#include <forgery/forgery.hpp>

#include "../common/cli.hpp"

using G = fg::Sequential<fg::Input<2>, fg::Dense<128>, fg::ReLU, fg::Dense<128>, fg::ReLU, fg::Dense<2>>;
using D = fg::Sequential<fg::Input<2>, fg::Dense<128>, fg::LeakyReLU<>, fg::Dense<128>, fg::LeakyReLU<>, fg::Dense<1>>;

int main(int argc, char** argv) try {
  long long steps = 3000;
  std::filesystem::path out = "resumable_out";
  cli::Command("resumable", "Trains a GAN on the ring of 8 Gaussians that resumes where it stopped.")
      .integer("--steps", steps, 0LL, std::numeric_limits<long long>::max(), "total training steps")
      .path("--out", out, "output directory (checkpoints/)")
      .parse(argc, argv);
  cli::require_writable_directory("--out", out); // now, not at the first save
  fg::Trainer<G, D, fg::loss::NonSaturating> trainer({.batch = 128, .seed = 7, .ema_decay = 0.99});
  fg::data::Ring ring;

  fg::callbacks::CheckpointOptions opt;
  opt.dir = out / "checkpoints";
  opt.every = 200;                                // and at the end, and on SIGINT/SIGTERM
  opt.keep = 3;                                   // the newest three files
  opt.on_divergence = fg::OnDivergence::rollback; // or ::stop (the default)
  fg::callbacks::Checkpoints checkpoints(opt);

  if (const auto from = trainer.resume(opt.dir); !from.empty()) // the newest checkpoint, if any
    std::printf("resumed from %s at step %lld\n", from.c_str(), trainer.steps_done());
  trainer.fit_until(ring, steps, checkpoints, fg::callbacks::Progress(500));
  if (checkpoints.interrupted_by() != 0) {
    std::printf("stopped at step %lld; run again to resume\n", trainer.steps_done());
    return 0;
  }
  std::printf("done: %lld steps, %d rollbacks, last checkpoint %s\n", trainer.steps_done(), checkpoints.rollbacks(),
              checkpoints.last_saved().c_str());
} catch (const std::exception& e) {
  std::fprintf(stderr, "resumable: %s\n", e.what());
  return 1;
}
