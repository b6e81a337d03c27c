// custom_loss: an adversarial loss written in user code and plugged into the Trainer. It
// meets fg::Loss (core/concepts.hpp): a Config, the flag generator_uses_real, and the two
// terms with their gradients with respect to the critic's logits.
#include <cmath>
#include <cstdio>
#include <exception>

#include <forgery/forgery.hpp>

#include "../common/cli.hpp"
#include "../toy_ring/toy_setup.hpp"

// Hinge loss with an adjustable margin m: D = mean relu(m - real) + mean relu(m + fake),
// G = -mean fake. Host loops are fine for a CPU-only loss; forgery's own losses use
// backend functors so that they also run on the GPU.
struct MarginHinge {
  struct Config {
    double margin = 1.0;
  };
  Config config;
  explicit MarginHinge(Config c) : config(c) {}
  static constexpr bool generator_uses_real = false;

  template <class B, class S = typename B::scalar>
  S discriminator(fg::index_t n, const S* real, const S* fake, S* d_real, S* d_fake, S*) const {
    static_assert(B::host_memory, "MarginHinge computes on the host");
    const S m = static_cast<S>(config.margin), inv = S(1) / static_cast<S>(n);
    S loss = 0;
    for (fg::index_t i = 0; i < n; ++i) {
      loss += (std::max(S(0), m - real[i]) + std::max(S(0), m + fake[i])) * inv;
      d_real[i] = real[i] < m ? -inv : S(0);
      d_fake[i] = fake[i] > -m ? inv : S(0);
    }
    return loss;
  }
  template <class B, class S = typename B::scalar>
  S generator(fg::index_t n, const S*, const S* fake, S* d_fake, S*) const {
    S loss = 0;
    for (fg::index_t i = 0; i < n; ++i) {
      loss -= fake[i] / static_cast<S>(n);
      d_fake[i] = S(-1) / static_cast<S>(n);
    }
    return loss;
  }
};
static_assert(fg::Loss<MarginHinge, fg::backend::Cpu<float>>);

int main(int argc, char** argv) try {
  cli::Command("custom_loss", "Trains a GAN with a user-written hinge loss (margin 0.5) on the ring of 8 Gaussians.")
      .parse(argc, argv);
  using T = fg::Trainer<toy::G, toy::D, MarginHinge, fg::optim::Adam>;
  auto cfg = toy::ring_config<T>(1);
  cfg.g_optimizer.lr = cfg.d_optimizer.lr = 3e-4;
  cfg.objective.loss.margin = 0.5;
  T trainer(cfg);
  const auto r = toy::train_and_evaluate(trainer, 3000, fg::callbacks::Progress(500));
  std::printf("MarginHinge(0.5): %ld/8 modes, %.1f %% high quality, MMD^2 %.5f\n",
              static_cast<long>(r.coverage.modes_covered), 100 * r.coverage.high_quality_fraction, r.mmd);
} catch (const std::exception& e) {
  std::fprintf(stderr, "custom_loss: %s\n", e.what());
  return 1;
}
