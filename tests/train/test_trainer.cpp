// Trainer: configuration errors, the exact gradients of both updates through the Trainer
// (including the D-to-G hand-off and penalties) against finite differences, determinism
// across thread counts, EMA and generate().
#include "../support.hpp"

#include <cstring>
#include <limits>
#include <string>

#include <omp.h>

#include "forgery/data/toy.hpp"
#include "forgery/loss/loss.hpp"
#include "forgery/optim/optim.hpp"
#include "forgery/penalty/penalty.hpp"
#include "forgery/train/presets.hpp"
#include "forgery/train/trainer.hpp"

namespace {
using fg::index_t;

using SmallG = fg::Sequential<fg::Input<3>, fg::Dense<5>, fg::Tanh, fg::Dense<2>>;
using SmallD = fg::Sequential<fg::Input<2>, fg::Dense<6>, fg::Tanh, fg::Dense<4>, fg::Sigmoid, fg::Dense<1>>;

template <class Obj>
using DoubleTrainer = fg::Trainer<SmallG, SmallD, Obj, fg::optim::SGD, fg::backend::Reference<double>>;

template <class T>
typename T::Config small_config(double lr) {
  typename T::Config c;
  c.batch = 4;
  c.seed = 17;
  c.g_optimizer.lr = lr;
  c.d_optimizer.lr = lr;
  return c;
}

// With plain SGD, an update moves the parameters by -lr * gradient: recover the gradient the
// Trainer used and compare it with central differences of the loss it reported, recomputed
// on copies of the Trainer (same streams, so the same real batch, noise and penalty draws).
template <class Obj>
void check_trainer_gradients() {
  using T = DoubleTrainer<Obj>;
  const double lr = 1e-3, h = 1e-6;
  T base(small_config<T>(lr));
  fg::data::Ring ring;
  base.step(ring); // move away from the initial point

  // Critic: gradient of d_loss + all penalty values with respect to D's parameters.
  {
    T t = base;
    const index_t n = T::discriminator_type::param_count;
    std::vector<double> before(t.discriminator().params(), t.discriminator().params() + n);
    t.train_critic(ring);
    auto objective = [&](index_t i, double delta) {
      T c = base;
      c.discriminator().params()[i] += delta;
      c.train_critic(ring);
      double v = c.last_stats().d_loss;
      for (double p : c.last_stats().part_values) v += p;
      return v;
    };
    double worst = 0, norm = 0;
    for (index_t i = 0; i < n; ++i) {
      const double used = (before[i] - t.discriminator().params()[i]) / lr;
      const double numeric = (objective(i, h) - objective(i, -h)) / (2 * h);
      worst = std::max(worst, std::abs(used - numeric) / std::max({std::abs(numeric), std::abs(used), 1e-3}));
      norm += used * used;
    }
    INFO("critic gradient max relative error " << worst);
    CHECK(worst < 1e-5);
    CHECK(norm > 0);
  }
  // Generator: gradient of g_loss with respect to G's parameters, through D's input gradient.
  {
    T after_critic = base;
    after_critic.train_critic(ring);
    T t = after_critic;
    const index_t n = T::generator_type::param_count;
    std::vector<double> before(t.generator().params(), t.generator().params() + n);
    t.train_generator();
    auto objective = [&](index_t i, double delta) {
      T c = after_critic;
      c.generator().params()[i] += delta;
      c.train_generator();
      return c.last_stats().g_loss;
    };
    double worst = 0, norm = 0;
    for (index_t i = 0; i < n; ++i) {
      const double used = (before[i] - t.generator().params()[i]) / lr;
      const double numeric = (objective(i, h) - objective(i, -h)) / (2 * h);
      worst = std::max(worst, std::abs(used - numeric) / std::max({std::abs(numeric), std::abs(used), 1e-3}));
      norm += used * used;
    }
    INFO("generator gradient max relative error " << worst);
    CHECK(worst < 1e-5);
    CHECK(norm > 0);
  }
}

TEST_CASE("the Trainer's updates follow the exact gradients of its reported losses") {
  SUBCASE("non-saturating") { check_trainer_gradients<fg::loss::NonSaturating>(); }
  SUBCASE("minimax") { check_trainer_gradients<fg::loss::Minimax>(); }
  SUBCASE("least squares") { check_trainer_gradients<fg::loss::LeastSquares>(); }
  SUBCASE("relativistic average") { check_trainer_gradients<fg::loss::RelativisticAverage>(); }
  SUBCASE("WGAN-GP") { check_trainer_gradients<fg::Objective<fg::loss::Wasserstein, fg::penalty::GradientPenalty>>(); }
  SUBCASE("NS + R1") { check_trainer_gradients<fg::Objective<fg::loss::NonSaturating, fg::penalty::R1>>(); }
  SUBCASE("hinge + DRAGAN + R2") {
    check_trainer_gradients<fg::Objective<fg::loss::Hinge, fg::penalty::DRAGAN, fg::penalty::R2>>();
  }
}

TEST_CASE("invalid configurations are typed errors naming the field") {
  using T = fg::Trainer<SmallG, SmallD, fg::loss::NonSaturating>;
  auto expect = [](auto mutate, const std::string& field) {
    typename T::Config c;
    mutate(c);
    try {
      T t(c);
      FAIL("expected a config_error for " << field);
    } catch (const fg::config_error& e) {
      CHECK(e.field() == field);
      CHECK(std::string(e.what()).find(field) != std::string::npos);
    }
  };
  expect([](auto& c) { c.batch = 0; }, "Trainer.batch");
  expect([](auto& c) { c.n_critic = 0; }, "Trainer.n_critic");
  expect([](auto& c) { c.ema_decay = 1.0; }, "Trainer.ema_decay");
  expect([](auto& c) { c.g_optimizer.lr = -1; }, "Adam.lr");
  expect([](auto& c) { c.d_optimizer.beta1 = 1.0; }, "Adam.beta1");
  expect([](auto& c) { c.batch = -3; }, "Trainer.batch");
  // Batches whose buffer sizes (batch x features, 2 x batch for the critic) would overflow
  // or exceed any memory: refused before anything is sized from them.
  expect([](auto& c) { c.batch = fg::index_t{1} << 62; }, "Trainer.batch");
  expect([](auto& c) { c.batch = std::numeric_limits<fg::index_t>::max(); }, "Trainer.batch");
  expect([](auto& c) { c.batch = T::max_batch + 1; }, "Trainer.batch");
  typename T::Config huge;
  huge.batch = fg::index_t{1} << 62;
  const std::string expected =
      "'Trainer.batch' = 4611686018427387904: expected a batch size from 1 to " + std::to_string(T::max_batch);
  CHECK_THROWS_WITH_AS(T{huge}, doctest::Contains(expected.c_str()), fg::config_error);
  CHECK(T::widest_boundary == 6); // SmallD's hidden layer
  CHECK(T::max_batch == (fg::index_t{1} << 36) / 12);

  // generate() sizes its buffers from the output's batch: refused the same way.
  T t;
  float out[2];
  fg::RandomStream rng{1, 0, 0};
  CHECK_THROWS_WITH_AS(t.generate(rng, fg::BatchView<float>(out, 2, fg::index_t{1} << 40)),
                       doctest::Contains("a batch of at most"), fg::shape_error);

  // Penalty weights are checked when the Trainer builds its objective.
  using Gp = fg::Trainer<SmallG, SmallD, fg::Objective<fg::loss::Wasserstein, fg::penalty::GradientPenalty>>;
  auto gp = fg::wgan_gp_config<Gp>();
  std::get<0>(gp.objective.parts).lambda = -10;
  try {
    Gp t(gp);
    FAIL("expected a config_error for GradientPenalty.lambda");
  } catch (const fg::config_error& e) {
    CHECK(e.field() == "GradientPenalty.lambda");
  }
  using R1T = fg::Trainer<SmallG, SmallD, fg::Objective<fg::loss::NonSaturating, fg::penalty::R1>>;
  typename R1T::Config r1;
  std::get<0>(r1.objective.parts).gamma = -1;
  CHECK_THROWS_WITH_AS(R1T{r1}, doctest::Contains("R1.gamma"), fg::config_error);
}

template <class T>
std::vector<float> train_and_collect(int threads, typename T::Config cfg, int steps) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  T t(cfg);
  fg::data::Ring ring;
  t.fit(ring, steps);
  omp_set_num_threads(saved);
  std::vector<float> all(t.generator().params(), t.generator().params() + T::generator_type::param_count);
  all.insert(all.end(), t.discriminator().params(), t.discriminator().params() + T::discriminator_type::param_count);
  all.insert(all.end(), t.ema_params().begin(), t.ema_params().end());
  return all;
}

TEST_CASE("training is bitwise identical with 1 and 2 threads") {
  // Layers wide enough that GEMMs and loops take their parallel paths.
  using G = fg::Sequential<fg::Input<16>, fg::Dense<256>, fg::ReLU, fg::Dense<256>, fg::ReLU, fg::Dense<2>>;
  using D =
      fg::Sequential<fg::Input<2>, fg::Dense<256>, fg::LeakyReLU<>, fg::Dense<256>, fg::LeakyReLU<>, fg::Dense<1>>;
  SUBCASE("WGAN-GP") {
    using T = fg::WganGpTrainer<G, D>;
    auto cfg = fg::wgan_gp_config<T>();
    cfg.batch = 128;
    cfg.seed = 3;
    cfg.ema_decay = 0.99;
    const auto one = train_and_collect<T>(1, cfg, 3);
    const auto two = train_and_collect<T>(2, cfg, 3);
    REQUIRE(one.size() == two.size());
    CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
    cfg.seed = 4;
    const auto other = train_and_collect<T>(2, cfg, 3);
    CHECK(std::memcmp(one.data(), other.data(), one.size() * sizeof(float)) != 0);
  }
  SUBCASE("non-saturating") {
    using T = fg::DcganTrainer<G, D>;
    auto cfg = fg::dcgan_config<T>();
    cfg.batch = 256;
    const auto one = train_and_collect<T>(1, cfg, 5);
    const auto two = train_and_collect<T>(2, cfg, 5);
    CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("the EMA warm-up uses min(decay, (1 + t) / (10 + t))") {
  using T = fg::Trainer<SmallG, SmallD, fg::loss::NonSaturating, fg::optim::SGD, fg::backend::Reference<double>>;
  auto cfg = small_config<T>(0.05);
  cfg.ema_decay = 0.5;
  cfg.ema_warmup = true;
  T t(cfg);
  fg::data::Ring ring;
  const index_t n = T::generator_type::param_count;
  std::vector<double> ema(t.ema_params().begin(), t.ema_params().end());
  for (int step = 0; step < 12; ++step) {
    t.step(ring);
    const double d = std::min(0.5, (1.0 + step) / (10.0 + step)); // 0.1, 0.18, ... then 0.5
    for (index_t i = 0; i < n; ++i) ema[i] = d * ema[i] + (1 - d) * t.generator().params()[i];
  }
  for (index_t i = 0; i < n; ++i) CHECK(t.ema_params()[i] == doctest::Approx(ema[i]).epsilon(1e-12));
}

TEST_CASE("the EMA follows its definition and generate() uses it") {
  using T = fg::Trainer<SmallG, SmallD, fg::loss::NonSaturating, fg::optim::Adam, fg::backend::Cpu<double>>;
  typename T::Config cfg;
  cfg.batch = 8;
  cfg.ema_decay = 0.9;
  T t(cfg);
  fg::data::Ring ring;
  const std::vector<double> theta0(t.generator().params(), t.generator().params() + T::generator_type::param_count);
  t.step(ring);
  for (index_t i = 0; i < T::generator_type::param_count; ++i)
    CHECK(t.ema_params()[i] == doctest::Approx(0.9 * theta0[i] + 0.1 * t.generator().params()[i]));

  fg::HostBuffer<double> a(2 * 5), b(2 * 5), c(2 * 5);
  fg::RandomStream r1{1, 2, 0}, r2{1, 2, 0}, r3{1, 2, 0};
  t.generate(r1, {a.data(), 2, 5}, fg::Weights::ema);
  t.generate(r2, {b.data(), 2, 5}, fg::Weights::current);
  t.generate(r3, {c.data(), 2, 5}, fg::Weights::ema);
  CHECK(std::equal(a.begin(), a.end(), c.begin()));
  CHECK_FALSE(std::equal(a.begin(), a.end(), b.begin()));
  // The live weights are back in place after generating with the EMA.
  CHECK(t.generator().params()[0] != t.ema_params()[0]);
  CHECK_THROWS_AS(t.generate(r1, {a.data(), 3, 2}), fg::shape_error);
}

TEST_CASE("WeightClip keeps the critic's parameters in [-c, c] after every update") {
  using T = fg::WganTrainer<SmallG, SmallD, fg::backend::Cpu<float>>;
  auto cfg = fg::wgan_config<T>();
  cfg.batch = 16;
  cfg.d_optimizer.lr = 0.1; // large steps, so clipping must act
  T t(cfg);
  fg::data::Ring ring;
  t.fit(ring, 3);
  const auto* p = t.discriminator().params();
  float maxabs = 0;
  for (index_t i = 0; i < T::discriminator_type::param_count; ++i) maxabs = std::max(maxabs, std::abs(p[i]));
  CHECK(maxabs <= 0.01f);
  CHECK(maxabs == doctest::Approx(0.01f));
}

TEST_CASE("a diverging run stops with a numeric_error naming the step and quantity") {
  using T = fg::Trainer<SmallG, SmallD, fg::loss::Wasserstein, fg::optim::SGD, fg::backend::Cpu<float>>;
  typename T::Config cfg;
  cfg.batch = 8;
  T t(cfg);
  fg::data::Ring ring;
  t.fit(ring, 2);
  t.discriminator().params()[0] = std::numeric_limits<float>::quiet_NaN();
  try {
    t.fit(ring, 1);
    FAIL("expected a numeric_error");
  } catch (const fg::numeric_error& e) {
    CHECK(e.step() == 3);
    CHECK(std::string(e.what()).find("discriminator loss") != std::string::npos);
  }
}

} // namespace
