// What the Fashion-MNIST examples share: their command line (on common/cli.hpp), the small
// CNN classifier whose penultimate features the image metrics use, the evaluation (Frechet
// distance, KID, Inception-style score, class coverage, next to the held-out-real floor),
// and sample grids from fixed noise.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <forgery/data/fashion_mnist.hpp>
#include <forgery/data/image_dataset.hpp>
#include <forgery/forgery.hpp>
#include <forgery/io/png.hpp>
#include <forgery/io/samples.hpp>
#include <forgery/io/weights.hpp>
#include <forgery/layers/conv2d.hpp>
#include <forgery/loss/cross_entropy.hpp>
#include <forgery/metrics/classifier_scores.hpp>
#include <forgery/metrics/features.hpp>
#include <forgery/metrics/frechet.hpp>
#include <forgery/metrics/kid.hpp>

#include "../common/cli.hpp"

// Built with forgery::mpi (examples/CMakeLists.txt): the trainers take fg::mpi::Communicator,
// which --mpi connects to the ranks of mpirun; without --mpi it is one rank and calls no MPI.
#ifdef FORGERY_EXAMPLE_MPI
#include <forgery/distributed/mpi.hpp>
#endif

namespace fashion {

namespace fs = std::filesystem;
using fg::index_t;
using Dataset = fg::data::ImageDataset<float>;
constexpr index_t classes = 10, side = 28, pixels = side * side;

/// The options every image example takes.
struct Options {
  long long steps = 0;
  index_t batch = 64;
  std::uint64_t seed = 1;
  fs::path out, data, classifier;
  index_t eval_samples = 2000;
  long long sample_every = 0;
  double ema = 0.999;
  long long checkpoint_every = 500;
  fg::OnDivergence on_divergence = fg::OnDivergence::rollback;
  index_t shards = 0; ///< 0: one per rank
  bool mpi = false;
};

/// The trainers' gradients-ready hook: the MPI communicator where the examples are built
/// with MPI, else the single-process one.
#ifdef FORGERY_EXAMPLE_MPI
using Hook = fg::mpi::Communicator;
#else
using Hook = fg::LocalGradients;
#endif

/// The hook for the command line: with --mpi, MPI is started (once; finished at exit) and
/// the hook spans the ranks mpirun launched; otherwise one rank that calls no MPI.
inline Hook make_hook([[maybe_unused]] const Options& o, [[maybe_unused]] int& argc, [[maybe_unused]] char**& argv) {
#ifdef FORGERY_EXAMPLE_MPI
  if (!o.mpi) return fg::mpi::Communicator::local();
  static fg::mpi::Environment environment(argc, argv);
  fg::mpi::Communicator comm;
  // Only rank 0 prints: the others' standard output goes nowhere.
  if (!comm.is_root() && std::freopen("/dev/null", "w", stdout) == nullptr)
    throw fg::io_error("/dev/null", "cannot silence the standard output of rank " + std::to_string(comm.rank()));
  return comm;
#else
  if (o.mpi)
    throw fg::config_error("--mpi", "given",
                           "an example built with MPI (forgery::mpi: install libopenmpi-dev and reconfigure)");
  return {};
#endif
}

/// Reports an error and returns the exit status; under --mpi ends the whole job instead
/// (fg::mpi::abort_job), since the other ranks would wait for this one forever.
inline int fail(const char* name, const std::exception& e) {
  std::fprintf(stderr, "%s: %s\n", name, e.what());
#ifdef FORGERY_EXAMPLE_MPI
  int initialised = 0, finalised = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  if (initialised && !finalised) fg::mpi::abort_job(1);
#endif
  return 1;
}

/// Sets the shards and the other common settings of `cfg` from the options: --shards, or one
/// shard per rank.
template <class Config, class H>
void apply_options(Config& cfg, const Options& o, const H& hook) {
  cfg.seed = o.seed;
  cfg.batch = o.batch;
  cfg.ema_decay = o.ema;
  cfg.ema_warmup = true;
  index_t ranks = 1;
  if constexpr (requires { hook.size(); }) ranks = hook.size();
  cfg.shards = o.shards > 0 ? o.shards : ranks;
  if (cfg.shards > 1)
    std::printf("data-parallel: %ld ranks, %ld shards of %ld samples (the same --shards gives the same bits on any "
                "number of ranks)\n",
                static_cast<long>(ranks), static_cast<long>(cfg.shards), static_cast<long>(o.batch / cfg.shards));
}

/// Parses an image example's command line (defaults: `steps` steps of batch `batch`, output in
/// NAME_out). `max_batch` is the largest batch the example's Trainer can hold (T::max_batch),
/// so an impossible --batch is refused here, before anything is built. The output directory
/// (and the classifier's, when the classifier is to be trained and saved) is proved writable.
inline Options parse(int argc, char** argv, const char* name, const char* what, long long steps, index_t batch,
                     index_t max_batch) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0); // progress lines appear as they happen, also in a pipe
  constexpr long long most = std::numeric_limits<long long>::max();
  Options o;
  o.steps = steps;
  o.batch = batch;
  o.out = std::string(name) + "_out";
  o.data = fg::data::fashion_mnist_dir();
  o.classifier = "fashion_classifier_out/classifier.npy";
  std::string divergence = "rollback";
  cli::Command cmd(name, what);
  cmd.integer("--steps", o.steps, 0LL, most,
              "total training steps; a run resumed from OUT/checkpoints continues to this step")
      .integer("--batch", o.batch, index_t{1}, max_batch, "samples per batch")
      .integer("--seed", o.seed, std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max(),
               "seed of every random draw", "S")
      .path("--out", o.out, "output directory: grids, log.csv, metrics.csv, samples.npy, generator.npy, checkpoints/")
      .path("--data", o.data,
            "Fashion-MNIST IDX files (default: $FORGERY_FASHION_MNIST or /usr/share/datasets/fashion-mnist)")
      .path("--classifier", o.classifier, "the metric classifier's weights; trained and saved there when missing",
            "FILE")
      .integer("--eval", o.eval_samples, index_t{0}, std::numeric_limits<index_t>::max(),
               "samples for Frechet distance and KID (0: no metrics, no classifier)")
      .integer("--sample-every", o.sample_every, 0LL, most, "steps between sample grids (0: five grids in the run)")
      .real("--ema", o.ema, 0.0, 1.0, true,
            "EMA decay of G's weights for grids and metrics, with warm-up (0: the live weights)")
      .integer("--checkpoint-every", o.checkpoint_every, 0LL, most,
               "steps between checkpoints in OUT/checkpoints (0: at the end only)")
      .choice("--on-divergence", divergence, {"rollback", "stop"},
              "on a NaN/Inf: roll back to the newest checkpoint with halved learning rates, or stop")
      .integer("--shards", o.shards, index_t{0}, max_batch,
               "shards of each batch, computed alone and averaged in order (0: one per rank); fix it to get the same "
               "bits on any number of ranks")
      .flag("--mpi", o.mpi, "train on the ranks of mpirun (mpirun -np N NAME --mpi ...); rank 0 writes the outputs")
      .footer("A run resumes from the newest checkpoint in OUT/checkpoints; --steps is the total. Ctrl-C saves and "
              "stops.");
  cmd.parse(argc, argv);
  if (o.eval_samples == 1)
    throw fg::config_error("--eval", "1", "0 (no metrics) or at least 2 samples (KID compares pairs)");
  o.on_divergence = divergence == "stop" ? fg::OnDivergence::stop : fg::OnDivergence::rollback;
  cli::require_writable_directory("--out", o.out);
  if (!fs::exists(o.classifier))
    cli::require_writable_directory("--classifier",
                                    o.classifier.has_parent_path() ? o.classifier.parent_path() : fs::path("."));
  return o;
}

// --- The metric classifier -------------------------------------------------------------

/// A small CNN: two strided convolutions and a 128-unit hidden layer whose activations
/// (the penultimate boundary) are the features the image metrics compare.
using ClassifierSpec =
    fg::Sequential<fg::Input<1, side, side>, fg::Conv2d<32, 4, 2, 1>, fg::ReLU, fg::Conv2d<64, 4, 2, 1>, fg::ReLU,
                   fg::Flatten, fg::Dense<128>, fg::ReLU, fg::Dense<classes>>;
using Classifier = fg::Network<ClassifierSpec, fg::backend::Cpu<float>>;

/// Test-set accuracy of the classifier (eval mode, in chunks).
inline double accuracy(Classifier& net, const Dataset& test) {
  const index_t n = test.size(), chunk = 500;
  index_t right = 0;
  net.eval();
  for (index_t j0 = 0; j0 < n; j0 += chunk) {
    const index_t m = std::min(chunk, n - j0);
    const auto logits = net.forward({test.images().data() + j0 * pixels, pixels, m});
    for (index_t j = 0; j < m; ++j) {
      index_t best = 0;
      for (index_t c = 1; c < classes; ++c)
        if (logits(c, j) > logits(best, j)) best = c;
      right += best == test.labels()(static_cast<std::size_t>(j0 + j));
    }
  }
  net.train();
  return static_cast<double>(right) / static_cast<double>(n);
}

/// Trains the classifier with Adam on softmax cross-entropy; prints progress and returns
/// the test accuracy.
inline double train_classifier(Classifier& net, const Dataset& train, const Dataset& test, int epochs,
                               std::uint64_t seed) {
  using B = fg::backend::Cpu<float>;
  const index_t batch = 128;
  net.initialize(seed, fg::Init::he_normal);
  fg::optim::Adam::State<B> opt(fg::optim::Adam::Config{1e-3, 0.9, 0.999, 1e-8, 0.0}, Classifier::param_count);
  fg::data::ShuffledBatches<float> batches(train);
  fg::RandomStream rng{seed, 0x636c6173ULL, 0};
  std::vector<float> x(static_cast<std::size_t>(pixels * batch)), grad(static_cast<std::size_t>(classes * batch)),
      work(static_cast<std::size_t>(batch));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
  const long long steps_per_epoch = train.size() / batch;
  const auto start = std::chrono::steady_clock::now();
  for (int e = 0; e < epochs; ++e) {
    double loss_sum = 0;
    for (long long s = 0; s < steps_per_epoch; ++s) {
      batches.sample(rng, fg::BatchView<float>(x.data(), pixels, batch), labels);
      const auto logits = net.forward({x.data(), pixels, batch});
      loss_sum += fg::loss::cross_entropy<B>(logits, labels.data(), grad.data(), work.data());
      net.zero_grad();
      net.backward({grad.data(), classes, batch}, fg::Grad::params);
      opt.step(net.params(), net.grads());
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("classifier epoch %d/%d: train loss %.4f, test accuracy %.2f %% (%.0f s)\n", e + 1, epochs,
                loss_sum / static_cast<double>(steps_per_epoch), 100 * accuracy(net, test), secs);
    std::fflush(stdout);
  }
  return accuracy(net, test);
}

/// Loads the classifier from `path`, or trains one and saves it there.
inline void load_or_train_classifier(Classifier& net, const fs::path& path, const Dataset& train, const Dataset& test,
                                     int epochs = 2, std::uint64_t seed = 1) {
  if (fs::exists(path)) {
    fg::io::load_weights_npy(path, net);
    std::printf("metric classifier: %s (test accuracy %.2f %%)\n", path.c_str(), 100 * accuracy(net, test));
    return;
  }
  std::printf("metric classifier: %s not found, training one (%d epochs)\n", path.c_str(), epochs);
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  train_classifier(net, train, test, epochs, seed);
  fg::io::save_weights_npy(path, net);
  std::printf("metric classifier saved to %s\n", path.c_str());
}

// --- Evaluation ----------------------------------------------------------------------------

/// What evaluate() measured.
struct Scores {
  double frechet = 0, kid = 0, kid_std = 0, inception = 0;
  index_t covered = 0;
  double coverage_entropy = 0;
};

/// Image metrics on the classifier's penultimate features against a fixed set of real
/// training images; the same figures for held-out (test) images are the floor a perfect
/// generator would reach with this many samples.
class Evaluator {
public:
  Evaluator(Classifier& net, const Dataset& train, const Dataset& test, index_t samples, std::uint64_t seed)
      : net_(&net), samples_(std::min({samples, train.size(), test.size()})), seed_(seed) {
    reference_ = fg::metrics::extract_penultimate(*net_, {train.images().data(), pixels, samples_});
    reference_stats_ = fg::metrics::gaussian_stats(reference_);
    // Held-out images from the end of the test split: unseen by the classifier's
    // statistics above and by the generator.
    const index_t first = test.size() - samples_;
    floor_ = score_images({test.images().data() + first * pixels, pixels, samples_});
  }

  [[nodiscard]] const Scores& floor() const noexcept { return floor_; }
  [[nodiscard]] index_t samples() const noexcept { return samples_; }

  Scores score_images(fg::ConstBatchView<float> images) {
    Scores s;
    const Eigen::MatrixXd f = fg::metrics::extract_penultimate(*net_, images);
    s.frechet = fg::metrics::frechet_distance(fg::metrics::gaussian_stats(f), reference_stats_);
    fg::RandomStream rng{seed_, 0x6b6964ULL, 0};
    fg::metrics::KidConfig kc;
    kc.subsets = 50;
    kc.subset_size = std::min<index_t>(1000, images.batch());
    const auto k =
        fg::metrics::kid(fg::ConstBatchView<double>(f.data(), f.rows(), f.cols()),
                         fg::ConstBatchView<double>(reference_.data(), reference_.rows(), reference_.cols()), rng, kc);
    s.kid = k.mean;
    s.kid_std = k.stddev;
    const Eigen::MatrixXd logits = fg::metrics::extract_features(*net_, images, Classifier::depth);
    const fg::ConstBatchView<double> lv(logits.data(), logits.rows(), logits.cols());
    s.inception = fg::metrics::inception_score(lv).mean;
    const auto cov = fg::metrics::class_coverage(lv);
    s.covered = cov.covered;
    s.coverage_entropy = cov.normalized_entropy;
    return s;
  }

private:
  Classifier* net_;
  index_t samples_;
  std::uint64_t seed_;
  Eigen::MatrixXd reference_;
  fg::metrics::GaussianStats reference_stats_;
  Scores floor_;
};

inline void print_scores(const char* who, const Scores& s) {
  std::printf("%-22s Frechet %8.3f   KID %.4f +- %.4f   IS %.2f   classes %ld/10 (entropy %.3f)\n", who, s.frechet,
              s.kid, s.kid_std, s.inception, static_cast<long>(s.covered), s.coverage_entropy);
}

/// Appends one line to the metrics history CSV (the header when the file is new), which
/// tools/plot_log.py draws next to the losses.
inline void append_metrics(const fs::path& path, long long step, const Scores& s) {
  const bool fresh = !fs::exists(path);
  std::ofstream f(path, std::ios::app);
  if (!f) throw fg::io_error(path.string(), "cannot open the metrics history for writing");
  if (fresh) f << "step,frechet,kid,kid_std,inception,classes_covered\n";
  f << step << ',' << s.frechet << ',' << s.kid << ',' << s.kid_std << ',' << s.inception << ',' << s.covered << '\n';
}

// --- Generation -------------------------------------------------------------------------

/// Generates n samples (labels cycling through the classes for a conditional GAN).
template <class T>
std::vector<float> generate(T& trainer, index_t n, fg::RandomStream rng, fg::Weights w = fg::Weights::ema) {
  std::vector<float> out(static_cast<std::size_t>(T::sample_size * n));
  const fg::BatchView<float> view(out.data(), T::sample_size, n);
  if constexpr (T::conditional) {
    std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
    for (index_t j = 0; j < n; ++j) labels[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(j % classes);
    trainer.generate(rng, view, labels, w);
  } else {
    trainer.generate(rng, view, w);
  }
  return out;
}

/// A 10 x 10 grid from fixed noise: the same latent draws at every call, so grids taken
/// during a run show its progress. Conditional GANs get one row per class.
template <class T>
void save_grid(T& trainer, const fs::path& path, std::uint64_t seed) {
  const index_t n = 100;
  std::vector<float> images(static_cast<std::size_t>(T::sample_size * n));
  const fg::BatchView<float> view(images.data(), T::sample_size, n);
  fg::RandomStream rng{seed, 0x67726964ULL, 0};
  if constexpr (T::conditional) {
    std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
    for (index_t j = 0; j < n; ++j) labels[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(j / 10);
    trainer.generate(rng, view, labels);
  } else {
    trainer.generate(rng, view);
  }
  fg::io::GridOptions opt;
  opt.scale = 2;
  fg::io::save_png_grid(path, fg::BatchView<float>(images.data(), pixels, n), 1, side, side, 10, opt);
}

/// Callback: a grid every `every` steps (samples_<step>.png) and samples.png at the end.
template <class T>
struct GridCallback {
  fs::path out;
  long long every;
  std::uint64_t seed;
  void on_step(T& t, const fg::StepStats& s) {
    if (every > 0 && s.step % every == 0 && fg::writes_outputs(t)) {
      char name[64];
      std::snprintf(name, sizeof name, "samples_%06lld.png", s.step);
      save_grid(t, out / name, seed);
    }
  }
};

/// Everything an image example does after building its trainer: load the data and the
/// metric classifier, train with progress, log, grids, then report the metrics.
template <class T>
int run(T& trainer, const Options& o, const char* name) {
  const auto t0 = std::chrono::steady_clock::now();
  const Dataset train = fg::data::load_fashion_mnist<float>(fg::data::Split::train, o.data);
  const Dataset test = fg::data::load_fashion_mnist<float>(fg::data::Split::test, o.data);
  std::printf("%s: Fashion-MNIST %ld train / %ld test images from %s\n", name, static_cast<long>(train.size()),
              static_cast<long>(test.size()), o.data.c_str());
  fg::data::ShuffledBatches<float> batches(train);

  const long long every = o.sample_every > 0 ? o.sample_every : std::max<long long>(1, o.steps / 5);
  GridCallback<T> grids{o.out, every, o.seed};
  // Fault tolerance: resume from the newest checkpoint of an earlier run in the same --out.
  fg::callbacks::CheckpointOptions copt;
  copt.dir = o.out / "checkpoints";
  copt.every = o.checkpoint_every;
  copt.on_divergence = o.on_divergence;
  fg::callbacks::Checkpoints checkpoints(copt);
  if (const auto from = trainer.resume(copt.dir); !from.empty())
    std::printf("%s: resumed from %s at step %lld of %lld\n", name, from.c_str(), trainer.steps_done(), o.steps);
  const long long first_step = trainer.steps_done();
  const auto t1 = std::chrono::steady_clock::now();
  trainer.fit_until(batches, std::max(o.steps, first_step),
                    fg::callbacks::Progress(std::max<long long>(1, o.steps / 20)),
                    fg::callbacks::LossLog(o.out / "log.csv"), grids, checkpoints);
  const double train_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  if (checkpoints.interrupted_by() != 0) {
    std::printf("\n%s: stopped by signal %d at step %lld; saved %s\nrun the same command again to resume.\n", name,
                checkpoints.interrupted_by(), trainer.steps_done(), checkpoints.last_saved().c_str());
    return 0;
  }
  // With several ranks every rank holds the same generator: rank 0 evaluates and writes.
  if (!fg::writes_outputs(trainer)) return 0;
  save_grid(trainer, o.out / "samples.png", o.seed);
  if (o.eval_samples == 0) {
    const auto fake = generate(trainer, 100, fg::RandomStream{o.seed, 0x6576616cULL, 0});
    fg::io::save_npy(o.out / "samples.npy", fg::ConstBatchView<float>(fake.data(), pixels, 100));
    fg::io::save_weights_npy(o.out / "generator.npy", trainer.generator());
    std::printf("\n%s after %lld steps (%.1f s of training); no metrics (--eval 0)\nwrote %s/{samples.png, log.csv, "
                "samples.npy, generator.npy}\n",
                name, trainer.steps_done(), train_secs, o.out.c_str());
    return 0;
  }

  Classifier classifier;
  load_or_train_classifier(classifier, o.classifier, train, test);
  Evaluator eval(classifier, train, test, o.eval_samples, o.seed);
  const auto fake = generate(trainer, eval.samples(), fg::RandomStream{o.seed, 0x6576616cULL, 0});
  const Scores s = eval.score_images({fake.data(), pixels, eval.samples()});
  append_metrics(o.out / "metrics.csv", trainer.steps_done(), s);
  fg::io::save_npy(o.out / "samples.npy",
                   fg::ConstBatchView<float>(fake.data(), pixels, std::min<index_t>(eval.samples(), 100)));
  fg::io::save_weights_npy(o.out / "generator.npy", trainer.generator());

  std::printf("\n%s after %lld steps (batch %ld, %.1f s of training, %.2f s/step):\n", name, trainer.steps_done(),
              static_cast<long>(o.batch), train_secs,
              train_secs / static_cast<double>(std::max(1LL, trainer.steps_done() - first_step)));
  print_scores("generated", s);
  print_scores("held-out real (floor)", eval.floor());
  std::printf("(%ld samples each, classifier penultimate features)\n", static_cast<long>(eval.samples()));
  std::printf("wrote %s/{samples.png, samples_*.png, log.csv, metrics.csv, samples.npy, generator.npy}\n",
              o.out.c_str());
  std::printf("plot the losses: python3 tools/plot_log.py %s/log.csv --metrics %s/metrics.csv --out %s/losses.png\n",
              o.out.c_str(), o.out.c_str(), o.out.c_str());
  std::printf("total time %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

} // namespace fashion
