// Conan test package: trains a tiny GAN on the ring of 8 Gaussians, checks that a checkpoint
// resumes bit for bit, and writes samples as .npy (xtensor) and .png (stb), reading the
// .npy back; the Frechet distance to the data uses Eigen. Exits non-zero on any mismatch.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include <forgery/forgery.hpp>

using G = fg::Sequential<fg::Input<2>, fg::Dense<32>, fg::ReLU, fg::Dense<2>>;
using D = fg::Sequential<fg::Input<2>, fg::Dense<32>, fg::LeakyReLU<>, fg::Dense<1>>;
using T = fg::Trainer<G, D, fg::loss::NonSaturating, fg::optim::Adam, fg::backend::Cpu<float>>;

int main() {
  T::Config cfg;
  cfg.batch = 64;
  cfg.seed = 3;
  fg::data::Ring ring;

  T a(cfg);
  const fg::StepStats& stats = a.fit(ring, 20);
  std::printf("step %lld: d_loss %.4f, g_loss %.4f\n", stats.step, stats.d_loss, stats.g_loss);

  // Resume from a checkpoint: the same state, then the same next steps.
  const std::filesystem::path checkpoint = "test_package.fgck";
  a.save_checkpoint(checkpoint);
  T b(cfg);
  b.load_checkpoint(checkpoint);
  a.fit(ring, 30);
  b.fit(ring, 30);
  if (a.checkpoint().bytes() != b.checkpoint().bytes()) {
    std::fprintf(stderr, "test_package: the resumed trainer differs from the original\n");
    return 1;
  }

  // Samples: .npy written and read back, a PNG strip, and the Frechet distance to the ring.
  constexpr fg::index_t n = 256;
  std::vector<float> samples(2 * n), real(2 * n);
  fg::RandomStream g_rng{cfg.seed, 7, 0}, d_rng{cfg.seed, 8, 0};
  a.generate(g_rng, {samples.data(), 2, n});
  ring.sample(d_rng, fg::BatchView<float>(real.data(), 2, n));
  const fg::ConstBatchView<float> view(samples.data(), 2, n);
  fg::io::save_npy("samples.npy", view);
  const auto loaded = xt::load_npy<float>("samples.npy");
  if (loaded.shape(0) != static_cast<std::size_t>(n) || loaded.shape(1) != 2 ||
      std::memcmp(loaded.data(), samples.data(), samples.size() * sizeof(float)) != 0) {
    std::fprintf(stderr, "test_package: samples.npy does not read back\n");
    return 1;
  }
  fg::io::save_png_grid("samples.png", view, 1, 1, 2, 16);
  const double fd = fg::metrics::frechet_distance(view, fg::ConstBatchView<float>(real.data(), 2, n));
  std::printf("step %lld after resume: Frechet distance to the ring %.4f; checkpoint, .npy and .png ok\n",
              a.steps_done(), fd);
}
