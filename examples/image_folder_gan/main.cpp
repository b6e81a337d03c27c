// image_folder_gan: the DCGAN of fashion_dcgan trained on your own images: a folder of PNG,
// JPEG or BMP files (flat, or one subfolder per class; the labels are not used), grey or
// RGB, resized and centre-cropped to 28x28 or 32x32 (fg::data::load_image_folder). Writes
// sample grids (RGB for RGB data), a loss log, checkpoints (a run resumes from them) and the
// generator's weights.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <forgery/data/image_folder.hpp>
#include <forgery/forgery.hpp>
#include <forgery/io/png.hpp>
#include <forgery/io/weights.hpp>
#if defined(FORGERY_EXAMPLE_ONNX) // where libonnx exists (forgery::onnx): generator.onnx too
#include <forgery/io/onnx.hpp>
#endif

#include "../common/cli.hpp"
#include "../fashion_common/dcgan_specs.hpp"

namespace {

namespace fs = std::filesystem;
using fg::index_t;

/// fashion_dcgan's DCGAN for C channels of Side x Side (Side divisible by 4): z (64) ->
/// 64 x Side/4 x Side/4 -> 32 x Side/2 x Side/2 -> C x Side x Side, and back down in D.
template <index_t C, index_t Side>
struct Dcgan {
  static_assert(Side % 4 == 0, "image_folder_gan's DCGAN upsamples twice by 2: the side must be divisible by 4.");
  static constexpr index_t latent = fashion::dcgan::latent, base = Side / 4;
  using G = fg::Sequential<fg::Input<latent>, fg::Dense<64 * base * base, false>, fg::Reshape<64, base, base>,
                           fg::BatchNorm<>, fg::ReLU, fg::ConvTranspose2d<32, 4, 2, 1, false>, fg::BatchNorm<>,
                           fg::ReLU, fg::ConvTranspose2d<C, 4, 2, 1>, fg::Tanh>;
  using D = fg::Sequential<fg::Input<C, Side, Side>, fg::Conv2d<32, 4, 2, 1>, fg::LeakyReLU<>, fg::Conv2d<64, 4, 2, 1>,
                           fg::LeakyReLU<>, fg::Flatten, fg::Dense<1>>;
};
static_assert(std::is_same_v<Dcgan<1, 28>::G, fashion::dcgan::G> && std::is_same_v<Dcgan<1, 28>::D, fashion::dcgan::D>,
              "grey 28x28 is exactly fashion_dcgan's network");

struct Options {
  fs::path data, out = "image_folder_gan_out", cache = "auto";
  std::string channels = "3", size = "32", on_bad_file = "refuse";
  long long steps = 2000, sample_every = 0, checkpoint_every = 500;
  index_t batch = 64, progress_every = 1000;
  std::uint64_t seed = 1;
  double ema = 0.999;
};

Options parse(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  constexpr long long most = std::numeric_limits<long long>::max();
  Options o;
  cli::Command cmd("image_folder_gan", "Trains fashion_dcgan's DCGAN on a folder of images.");
  cmd.path("--data", o.data,
           "folder of .png/.jpg/.jpeg/.bmp images, or of one subfolder of images per class (required)")
      .choice("--channels", o.channels, {"1", "3"}, "1: grey, 3: RGB (grey images are replicated, alpha dropped)")
      .choice("--size", o.size, {"28", "32"}, "side of the square images (each is resized and centre-cropped)")
      .integer("--steps", o.steps, 0LL, most,
               "total training steps; a run resumed from OUT/checkpoints continues to this step")
      .integer("--batch", o.batch, index_t{1}, index_t{1} << 20, "samples per batch")
      .integer("--seed", o.seed, std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max(),
               "seed of every random draw", "S")
      .path("--out", o.out,
            "output directory: grids, log.csv, generator.npy (and generator.onnx where built with ONNX), checkpoints/")
      .path("--cache", o.cache,
            "where the decoded images are cached as .npy: auto (DATA.forgery-cache beside DATA), off, or a directory")
      .choice("--on-bad-file", o.on_bad_file, {"refuse", "skip"},
              "an image that cannot be decoded or is over 64 Mpixel: stop, or skip it with a warning")
      .integer("--progress-every", o.progress_every, index_t{0}, std::numeric_limits<index_t>::max(),
               "a progress line every this many decoded images (0: none)")
      .integer("--sample-every", o.sample_every, 0LL, most, "steps between sample grids (0: five grids in the run)")
      .real("--ema", o.ema, 0.0, 1.0, true,
            "EMA decay of G's weights for the grids, with warm-up (0: the live weights)")
      .integer("--checkpoint-every", o.checkpoint_every, 0LL, most,
               "steps between checkpoints in OUT/checkpoints (0: at the end only)")
      .footer("A run resumes from the newest checkpoint in OUT/checkpoints; --steps is the total. Ctrl-C saves and "
              "stops.");
  cmd.parse(argc, argv);
  if (o.data.empty()) throw cli::usage_error("--data: a folder of images is required (see --help)");
  std::error_code ec;
  if (!fs::is_directory(o.data, ec))
    throw cli::usage_error("--data: " + o.data.string() +
                           (fs::exists(o.data, ec) ? " is not a folder" : ": no such folder") +
                           " (expected a folder of images or of class subfolders)");
  cli::require_writable_directory("--out", o.out);
  return o;
}

/// An 8 x 8 grid from fixed noise: the same latent draws at every call, so grids taken during
/// a run show its progress.
template <class T>
void save_grid(T& trainer, const fs::path& path, std::uint64_t seed, index_t c, index_t side) {
  const index_t n = 64;
  std::vector<float> images(static_cast<std::size_t>(T::sample_size * n));
  fg::RandomStream rng{seed, 0x67726964ULL, 0};
  trainer.generate(rng, fg::BatchView<float>(images.data(), T::sample_size, n));
  fg::io::GridOptions opt;
  opt.scale = 2;
  fg::io::save_png_grid(path, fg::BatchView<float>(images.data(), T::sample_size, n), c, side, side, 8, opt);
}

template <class T>
struct GridCallback {
  fs::path out;
  long long every;
  std::uint64_t seed;
  index_t channels, side;
  void on_step(T& t, const fg::StepStats& s) {
    if (every > 0 && s.step % every == 0) {
      char name[64];
      std::snprintf(name, sizeof name, "samples_%06lld.png", s.step);
      save_grid(t, out / name, seed, channels, side);
    }
  }
};

template <index_t C, index_t Side>
int train(const Options& o) {
  using T = fg::DcganTrainer<typename Dcgan<C, Side>::G, typename Dcgan<C, Side>::D>;
  if (o.batch > T::max_batch)
    throw cli::usage_error("--batch: expected at most " + std::to_string(T::max_batch) + " for " + o.channels + "x" +
                           o.size + "x" + o.size + " images, got " + std::to_string(o.batch));
  const auto t0 = std::chrono::steady_clock::now();
  fg::data::ImageFolderOptions fo;
  fo.channels = C;
  fo.height = fo.width = Side;
  fo.on_bad_file = o.on_bad_file == "skip" ? fg::data::OnBadFile::skip : fg::data::OnBadFile::refuse;
  fo.cache = o.cache != "off";
  if (fo.cache && o.cache != "auto") fo.cache_dir = o.cache;
  fo.progress_every = o.progress_every;
  const fg::data::ImageFolder<float> folder = fg::data::load_image_folder<float>(o.data, fo);
  const auto& data = folder.dataset;
  std::printf("image_folder_gan: %ld images of %ldx%ldx%ld from %s", static_cast<long>(data.size()),
              static_cast<long>(C), static_cast<long>(Side), static_cast<long>(Side), o.data.c_str());
  if (data.labelled()) std::printf(" (%ld class folders; labels unused)", static_cast<long>(data.classes()));
  std::printf("%s%s\n", folder.cache == fg::data::ImageFolder<float>::Cache::loaded ? ", from the cache " : "",
              folder.cache == fg::data::ImageFolder<float>::Cache::loaded ? folder.cache_key_file.parent_path().c_str()
                                                                          : "");

  auto cfg = fg::dcgan_config<T>();
  cfg.seed = o.seed;
  cfg.batch = o.batch;
  cfg.ema_decay = o.ema;
  cfg.ema_warmup = true;
  T trainer(cfg);
  fg::data::ShuffledBatches<float> batches(data);

  const long long every = o.sample_every > 0 ? o.sample_every : std::max<long long>(1, o.steps / 5);
  GridCallback<T> grids{o.out, every, o.seed, C, Side};
  fg::callbacks::CheckpointOptions copt;
  copt.dir = o.out / "checkpoints";
  copt.every = o.checkpoint_every;
  fg::callbacks::Checkpoints checkpoints(copt);
  if (const auto from = trainer.resume(copt.dir); !from.empty())
    std::printf("image_folder_gan: resumed from %s at step %lld of %lld\n", from.c_str(), trainer.steps_done(),
                o.steps);
  const long long first_step = trainer.steps_done();
  const auto t1 = std::chrono::steady_clock::now();
  trainer.fit_until(batches, std::max(o.steps, first_step),
                    fg::callbacks::Progress(std::max<long long>(1, o.steps / 20)),
                    fg::callbacks::LossLog(o.out / "log.csv"), grids, checkpoints);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  if (checkpoints.interrupted_by() != 0) {
    std::printf("\nimage_folder_gan: stopped by signal %d at step %lld; saved %s\nrun the same command again to "
                "resume.\n",
                checkpoints.interrupted_by(), trainer.steps_done(), checkpoints.last_saved().c_str());
    return 0;
  }
  save_grid(trainer, o.out / "samples.png", o.seed, C, Side);
  fg::io::save_weights_npy(o.out / "generator.npy", trainer.generator());
#if defined(FORGERY_EXAMPLE_ONNX)
  // The generator for inference elsewhere: input "input" (N, 64) noise, output "output"
  // (N, C*Side*Side) in [-1, 1], ai.onnx opset 17.
  fg::io::export_onnx(trainer.generator(), o.out / "generator.onnx");
  std::printf("wrote %s\n", (o.out / "generator.onnx").c_str());
#endif
  std::printf("\nimage_folder_gan after %lld steps (batch %ld, %.1f s of training, %.3f s/step)\n",
              trainer.steps_done(), static_cast<long>(o.batch), secs,
              secs / static_cast<double>(std::max(1LL, trainer.steps_done() - first_step)));
  std::printf("wrote %s/{samples.png, samples_*.png, log.csv, generator.npy, checkpoints/}\n", o.out.c_str());
  std::printf("total time %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

} // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  if (o.channels == "1") return o.size == "28" ? train<1, 28>(o) : train<1, 32>(o);
  return o.size == "28" ? train<3, 28>(o) : train<3, 32>(o);
} catch (const std::exception& e) {
  std::fprintf(stderr, "image_folder_gan: %s\n", e.what());
  return 1;
}
