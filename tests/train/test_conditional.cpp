// Class-conditional training: labels flow from a labelled source into both networks, the
// updates follow the exact gradients of the reported losses (one-hot, embedding and
// projection conditioning, and the AC-GAN classifier term), determinism, generate() with
// labels, and what a conditional Trainer rejects.
#include "../support.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "forgery/data/toy.hpp"
#include "forgery/loss/loss.hpp"
#include "forgery/optim/optim.hpp"
#include "forgery/penalty/penalty.hpp"
#include "forgery/train/trainer.hpp"

namespace {
using fg::index_t;

constexpr index_t K = 4;
using OneHotG = fg::Sequential<fg::Input<3>, fg::ConcatOneHot<K>, fg::Dense<5>, fg::Tanh, fg::Dense<2>>;
using EmbedG = fg::Sequential<fg::Input<3>, fg::ConcatEmbedding<K, 2>, fg::Dense<5>, fg::Tanh, fg::Dense<2>>;
using OneHotD = fg::Sequential<fg::Input<2>, fg::ConcatOneHot<K>, fg::Dense<6>, fg::Tanh, fg::Dense<1>>;
using ProjD = fg::Sequential<fg::Input<2>, fg::Dense<6>, fg::Tanh, fg::Projection<K>>;
using AuxD = fg::Sequential<fg::Input<2>, fg::Dense<6>, fg::Tanh, fg::Dense<1 + K>>;

template <class T>
typename T::Config small_config(double lr) {
  typename T::Config c;
  c.batch = 5;
  c.seed = 23;
  c.g_optimizer.lr = lr;
  c.d_optimizer.lr = lr;
  return c;
}

// With plain SGD an update moves the parameters by -lr * gradient: the gradient the Trainer
// used must match central differences of the losses it reported (copies of the Trainer see
// the same batches, labels and noise).
template <class T>
void check_conditional_gradients() {
  const double lr = 1e-3, h = 1e-6;
  T base(small_config<T>(lr));
  fg::data::Ring ring(K);
  base.step(ring);
  auto compare = [&](auto net_of, auto update, auto value, const T& start, const char* what) {
    T t = start;
    auto& net = net_of(t);
    const index_t n = std::remove_reference_t<decltype(net)>::param_count;
    std::vector<double> before(net.params(), net.params() + n);
    update(t);
    double worst = 0, norm = 0;
    for (index_t i = 0; i < n; ++i) {
      auto at = [&](double delta) {
        T c = start;
        net_of(c).params()[i] += delta;
        update(c);
        return value(c);
      };
      const double used = (before[static_cast<std::size_t>(i)] - net.params()[i]) / lr;
      const double numeric = (at(h) - at(-h)) / (2 * h);
      worst = std::max(worst, std::abs(used - numeric) / std::max({std::abs(numeric), std::abs(used), 1e-3}));
      norm += used * used;
    }
    INFO(what << " gradient max relative error " << worst);
    CHECK(worst < 1e-5);
    CHECK(norm > 0);
  };
  compare(
      [](T & t) -> auto& { return t.discriminator(); }, [&](T& t) { t.train_critic(ring); },
      [](T& t) {
        double v = t.last_stats().d_loss;
        for (double p : t.last_stats().part_values) v += p;
        return v;
      },
      base, "critic");
  T after = base;
  after.train_critic(ring);
  compare(
      [](T & t) -> auto& { return t.generator(); }, [](T& t) { t.train_generator(); },
      [](T& t) { return t.last_stats().g_loss; }, after, "generator");
}

template <class G, class D, class Obj>
using RefTrainer = fg::Trainer<G, D, Obj, fg::optim::SGD, fg::backend::Reference<double>>;

TEST_CASE("conditional updates follow the exact gradients of the reported losses") {
  static_assert(RefTrainer<OneHotG, OneHotD, fg::loss::NonSaturating>::conditional);
  static_assert(RefTrainer<OneHotG, OneHotD, fg::loss::NonSaturating>::classes == K);
  SUBCASE("one-hot G and D") { check_conditional_gradients<RefTrainer<OneHotG, OneHotD, fg::loss::NonSaturating>>(); }
  SUBCASE("embedding G, projection D, hinge") {
    check_conditional_gradients<RefTrainer<EmbedG, ProjD, fg::loss::Hinge>>();
  }
  SUBCASE("projection D with WGAN-GP (penalty on labelled interpolates)") {
    check_conditional_gradients<
        RefTrainer<EmbedG, ProjD, fg::Objective<fg::loss::Wasserstein, fg::penalty::GradientPenalty>>>();
  }
  SUBCASE("relativistic average with a projection D") {
    check_conditional_gradients<RefTrainer<OneHotG, ProjD, fg::loss::RelativisticAverage>>();
  }
  SUBCASE("AC-GAN: non-saturating + auxiliary classifier") {
    using T = RefTrainer<OneHotG, AuxD, fg::Objective<fg::loss::NonSaturating, fg::loss::AuxClassifier<K>>>;
    static_assert(T::critic_rows == 1 + K);
    check_conditional_gradients<T>();
  }
}

using PlainG = fg::Sequential<fg::Input<3>, fg::Dense<5>, fg::Tanh, fg::Dense<2>>;
using BnD = fg::Sequential<fg::Input<2>, fg::Dense<6, false>, fg::BatchNorm<>, fg::Tanh, fg::Dense<1>>;
using BnProjD = fg::Sequential<fg::Input<2>, fg::Dense<6, false>, fg::BatchNorm<>, fg::Tanh, fg::Projection<K>>;

TEST_CASE("a critic with BatchNorm sees real and fake as separate batches, with exact gradients") {
  static_assert(RefTrainer<PlainG, BnD, fg::loss::NonSaturating>::split_critic_batches);
  static_assert(!RefTrainer<PlainG, OneHotD, fg::loss::NonSaturating>::split_critic_batches);
  SUBCASE("non-saturating") { check_conditional_gradients<RefTrainer<PlainG, BnD, fg::loss::NonSaturating>>(); }
  SUBCASE("relativistic average") {
    check_conditional_gradients<RefTrainer<PlainG, BnD, fg::loss::RelativisticAverage>>();
  }
  SUBCASE("conditional, projection head") {
    check_conditional_gradients<RefTrainer<OneHotG, BnProjD, fg::loss::Hinge>>();
  }
  SUBCASE("the reported loss is that of two separate batches") {
    using T = RefTrainer<PlainG, BnD, fg::loss::NonSaturating>;
    T t(small_config<T>(1e-3));
    fg::data::Ring ring(K);
    t.step(ring);
    T before = t;
    t.train_critic(ring);
    // Replay the critic update's draws on the copy: the real batch, then the noise.
    const index_t n = 5;
    fg::RandomStream data = *before.random_streams()[1], noise = *before.random_streams()[0];
    std::vector<double> real(2 * n), z(3 * n), fake(2 * n);
    ring.sample(data, fg::BatchView<double>(real.data(), 2, n));
    fg::backend::Reference<double>::fill_normal(3 * n, z.data(), noise, 0.0, 1.0);
    const auto g = before.generator().forward({z.data(), 3, n});
    std::copy(g.data(), g.data() + 2 * n, fake.data());
    auto softplus = [](double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x))); };
    double expect = 0;
    const auto lr = before.discriminator().forward({real.data(), 2, n});
    for (index_t j = 0; j < n; ++j) expect += softplus(-lr(0, j)) / n;
    const auto lf = before.discriminator().forward({fake.data(), 2, n});
    for (index_t j = 0; j < n; ++j) expect += softplus(lf(0, j)) / n;
    CHECK(t.last_stats().d_loss == doctest::Approx(expect).epsilon(1e-12));
  }
}

TEST_CASE("the AC-GAN critic term is the mean softmax cross-entropy of real and fake") {
  using T = RefTrainer<OneHotG, AuxD, fg::Objective<fg::loss::NonSaturating, fg::loss::AuxClassifier<K>>>;
  auto cfg = small_config<T>(1e-3);
  cfg.objective = {{}, {fg::loss::AuxClassifier<K>::Config{2.0, true}}};
  T t(cfg);
  fg::data::Ring ring(K);
  t.train_critic(ring);
  const double v = t.last_stats().part_values[0];
  // An untrained head on K classes is near chance: CE ~ log K for real and for fake.
  CHECK(v > 2.0 * 2 * std::log(double(K)) * 0.5);
  CHECK(v < 2.0 * 2 * std::log(double(K)) * 2.0);
  CHECK(std::string(t.last_stats().part_names[0]) == "aux_classifier");
  CHECK_THROWS_AS(fg::loss::AuxClassifier<K>(fg::loss::AuxClassifier<K>::Config{-1.0, true}), fg::config_error);
}

TEST_CASE("conditional training is deterministic across thread counts and generate() takes labels") {
  using T = fg::Trainer<EmbedG, ProjD, fg::loss::NonSaturating, fg::optim::Adam, fg::backend::Cpu<float>>;
  auto run = [](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    auto cfg = small_config<T>(1e-3);
    cfg.batch = 64;
    T t(cfg);
    fg::data::Ring ring(K);
    t.fit(ring, 20);
    omp_set_num_threads(saved);
    return std::vector<float>(t.generator().params(), t.generator().params() + T::generator_type::param_count);
  };
  CHECK(run(1) == run(2));

  T t(small_config<T>(1e-3));
  std::vector<float> out(2 * 3);
  const std::vector<std::int32_t> labels{0, 3, 1};
  fg::RandomStream rng{1, 2, 0};
  t.generate(rng, fg::BatchView<float>(out.data(), 2, 3), labels);
  for (float v : out) CHECK(std::isfinite(v));
  const std::vector<std::int32_t> too_few{0};
  CHECK_THROWS_AS(t.generate(rng, fg::BatchView<float>(out.data(), 2, 3), too_few), fg::shape_error);
  const std::vector<std::int32_t> out_of_range{0, 4, 1};
  CHECK_THROWS_AS(t.generate(rng, fg::BatchView<float>(out.data(), 2, 3), out_of_range), fg::config_error);
}

TEST_CASE("a conditional generator learns the class it is asked for") {
  // Four well-separated modes, class i = mode i: after a short run, samples asked for class
  // c land nearer mode c than any other mode for most draws.
  using G = fg::Sequential<fg::Input<4>, fg::ConcatOneHot<K>, fg::Dense<64>, fg::LeakyReLU<>, fg::Dense<2>>;
  using D = fg::Sequential<fg::Input<2>, fg::Dense<64>, fg::LeakyReLU<>, fg::Projection<K>>;
  using T = fg::Trainer<G, D, fg::loss::NonSaturating, fg::optim::Adam, fg::backend::Cpu<float>>;
  typename T::Config cfg;
  cfg.batch = 64;
  cfg.seed = 5;
  cfg.g_optimizer.lr = 2e-3;
  cfg.d_optimizer.lr = 2e-3;
  T t(cfg);
  fg::data::Ring ring(K, 2.0, 0.05);
  t.fit(ring, 600);
  const index_t n = 400;
  std::vector<float> out(2 * n);
  std::vector<std::int32_t> labels(n);
  for (index_t j = 0; j < n; ++j) labels[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(j % K);
  fg::RandomStream rng{9, 9, 0};
  t.generate(rng, fg::BatchView<float>(out.data(), 2, n), labels, fg::Weights::current);
  index_t right = 0;
  for (index_t j = 0; j < n; ++j) {
    std::size_t best = 0;
    double best_d = 1e30;
    for (std::size_t m = 0; m < ring.modes().size(); ++m) {
      const double dx = out[2 * j] - ring.modes()[m][0], dy = out[2 * j + 1] - ring.modes()[m][1];
      if (dx * dx + dy * dy < best_d) {
        best_d = dx * dx + dy * dy;
        best = m;
      }
    }
    right += static_cast<std::int32_t>(best) == labels[static_cast<std::size_t>(j)];
  }
  INFO("samples nearest their class's mode: " << right << " / " << n);
  CHECK(right > n * 8 / 10);
}

} // namespace
