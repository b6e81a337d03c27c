// A training process for the kill-and-resume tests (test_kill_resume.cpp): trains a small
// conditional image GAN whose state has every kind the Trainer checkpoints (BatchNorm
// statistics, SpectralNorm vectors, Dropout streams, label streams, EMA, Adam moments,
// a shuffled dataset's position), resuming from the newest checkpoint in --dir, until
// --steps; then writes its final state as a checkpoint to --out.
//
//   resume_worker --dir DIR --steps N --every E --out FILE
//
// Exit status 0 when done or stopped by SIGINT/SIGTERM (after saving), 2 on bad arguments,
// 1 on an error.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include <csignal>

#include "forgery/forgery.hpp"

#include "resume_model.hpp"

int main(int argc, char** argv) {
  std::string dir, out;
  long long steps = 0, every = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--dir")
      dir = argv[i + 1];
    else if (key == "--out")
      out = argv[i + 1];
    else if (key == "--steps")
      steps = std::atoll(argv[i + 1]);
    else if (key == "--every")
      every = std::atoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "resume_worker: unknown argument %s\n", key.c_str());
      return 2;
    }
  }
  if (dir.empty() || out.empty() || steps <= 0 || every <= 0) {
    std::fprintf(stderr, "usage: resume_worker --dir DIR --steps N --every E --out FILE\n");
    return 2;
  }
  try {
    using T = forgery::test::ResumeTrainer;
    T trainer(forgery::test::resume_config());
    const auto data = forgery::test::resume_images();
    fg::data::ShuffledBatches<float> batches(data);
    const auto from = trainer.resume(dir);
    std::printf("resume_worker: %s at step %lld\n", from.empty() ? "starting" : "resumed", trainer.steps_done());
    fg::callbacks::CheckpointOptions options;
    options.dir = dir;
    options.every = every;
    options.keep = 2;
    options.log = nullptr;
    fg::callbacks::Checkpoints checkpoints(options);
    trainer.fit_until(batches, steps, checkpoints);
    if (checkpoints.interrupted_by() != 0) {
      std::printf("resume_worker: interrupted by signal %d at step %lld, checkpoint %s\n", checkpoints.interrupted_by(),
                  trainer.steps_done(), checkpoints.last_saved().c_str());
      return 0;
    }
    trainer.save_checkpoint(out);
    std::printf("resume_worker: done at step %lld\n", trainer.steps_done());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "resume_worker: %s\n", e.what());
    return 1;
  }
}
