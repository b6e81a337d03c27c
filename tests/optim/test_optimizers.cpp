// Tests of the optimizers (optim/*.hpp): each update against the published formulas written
// out by hand, convergence on a quadratic, Cpu bitwise equal to Reference, config
// validation, step counting, learning-rate changes and checkpoint state.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <doctest/doctest.h>

#include "forgery/forgery.hpp"
#include "forgery/optim/optim.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using fg::index_t;
using Vec = std::vector<double>;

static_assert(fg::Optimizer<fg::optim::SGD, fg::backend::Cpu<float>>);
static_assert(fg::Optimizer<fg::optim::SGD, fg::backend::Cpu<double>>);
static_assert(fg::Optimizer<fg::optim::SGD, fg::backend::Reference<double>>);
static_assert(fg::Optimizer<fg::optim::Adam, fg::backend::Cpu<float>>);
static_assert(fg::Optimizer<fg::optim::Adam, fg::backend::Cpu<double>>);
static_assert(fg::Optimizer<fg::optim::Adam, fg::backend::Reference<double>>);
static_assert(fg::Optimizer<fg::optim::AdamW, fg::backend::Cpu<float>>);
static_assert(fg::Optimizer<fg::optim::AdamW, fg::backend::Cpu<double>>);
static_assert(fg::Optimizer<fg::optim::AdamW, fg::backend::Reference<double>>);
static_assert(fg::Optimizer<fg::optim::RMSprop, fg::backend::Cpu<float>>);
static_assert(fg::Optimizer<fg::optim::RMSprop, fg::backend::Cpu<double>>);
static_assert(fg::Optimizer<fg::optim::RMSprop, fg::backend::Reference<double>>);

// f(p) = 0.5 * sum a_i (p_i - c_i)^2; no parameter passes near 0 in the hand-checked steps,
// so relative tolerances are meaningful.
const Vec quad_a{1.0, 3.0, 0.5};
const Vec quad_c{0.5, -2.0, 4.0};
const Vec quad_p0{2.0, 1.0, 1.5};
constexpr int hand_steps = 3;

double quad_grad(const Vec& p, std::size_t i) { return quad_a[i] * (p[i] - quad_c[i]); }

// ---- The published update rules, written out plainly in double -------------------------

// SGD with momentum as torch.optim.SGD documents it (Sutskever et al. 2013 in the
// "velocity = gradient sum" form; the buffer starts at the first gradient).
Vec sgd_by_hand(double lr, double momentum, double dampening, double wd, bool nesterov, int steps) {
  Vec p = quad_p0, b(p.size(), 0.0);
  for (int t = 1; t <= steps; ++t) {
    for (std::size_t i = 0; i < p.size(); ++i) {
      double g = quad_grad(p, i) + wd * p[i];
      if (momentum != 0.0) {
        if (t == 1)
          b[i] = g;
        else
          b[i] = momentum * b[i] + (1.0 - dampening) * g;
        if (nesterov)
          g = g + momentum * b[i];
        else
          g = b[i];
      }
      p[i] = p[i] - lr * g;
    }
  }
  return p;
}

// Adam, Kingma & Ba (2015) Algorithm 1, with L2 weight decay added to the gradient.
Vec adam_by_hand(double lr, double beta1, double beta2, double eps, double wd, int steps) {
  Vec p = quad_p0, m(p.size(), 0.0), v(p.size(), 0.0);
  for (int t = 1; t <= steps; ++t) {
    for (std::size_t i = 0; i < p.size(); ++i) {
      const double g = quad_grad(p, i) + wd * p[i];
      m[i] = beta1 * m[i] + (1.0 - beta1) * g;
      v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
      const double m_hat = m[i] / (1.0 - std::pow(beta1, t));
      const double v_hat = v[i] / (1.0 - std::pow(beta2, t));
      p[i] = p[i] - lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
  return p;
}

// AdamW, Loshchilov & Hutter (2019) Algorithm 2 with schedule multiplier 1 and the decay
// rate scaled by lr (PyTorch's parametrisation): p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd p).
Vec adamw_by_hand(double lr, double beta1, double beta2, double eps, double wd, int steps) {
  Vec p = quad_p0, m(p.size(), 0.0), v(p.size(), 0.0);
  for (int t = 1; t <= steps; ++t) {
    for (std::size_t i = 0; i < p.size(); ++i) {
      const double g = quad_grad(p, i);
      m[i] = beta1 * m[i] + (1.0 - beta1) * g;
      v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
      const double m_hat = m[i] / (1.0 - std::pow(beta1, t));
      const double v_hat = v[i] / (1.0 - std::pow(beta2, t));
      p[i] = p[i] - lr * (m_hat / (std::sqrt(v_hat) + eps) + wd * p[i]);
    }
  }
  return p;
}

// RMSprop (Tieleman & Hinton 2012), centered as Graves (2013), momentum and L2 as
// torch.optim.RMSprop documents them.
Vec rmsprop_by_hand(double lr, double alpha, double eps, double wd, double momentum, bool centered, int steps) {
  Vec p = quad_p0, v(p.size(), 0.0), a(p.size(), 0.0), b(p.size(), 0.0);
  for (int t = 1; t <= steps; ++t) {
    for (std::size_t i = 0; i < p.size(); ++i) {
      const double g = quad_grad(p, i) + wd * p[i];
      v[i] = alpha * v[i] + (1.0 - alpha) * g * g;
      double rms;
      if (centered) {
        a[i] = alpha * a[i] + (1.0 - alpha) * g;
        rms = std::sqrt(v[i] - a[i] * a[i]) + eps;
      } else {
        rms = std::sqrt(v[i]) + eps;
      }
      if (momentum > 0.0) {
        b[i] = momentum * b[i] + g / rms;
        p[i] = p[i] - lr * b[i];
      } else {
        p[i] = p[i] - lr * g / rms;
      }
    }
  }
  return p;
}

// ---- Running a State on the quadratic ------------------------------------------------------

template <class B>
constexpr double hand_tolerance = std::is_same_v<typename B::scalar, double> ? 1e-12 : 1e-5;

/// Runs `steps` steps of optimizer O on the quadratic, gradients computed in the backend's
/// scalar type; returns the parameters.
template <class O, class B>
Vec run_quadratic(const typename O::Config& cfg, int steps) {
  using S = typename B::scalar;
  const auto n = static_cast<index_t>(quad_p0.size());
  typename O::template State<B> state(cfg, n);
  typename B::template buffer<S> p(n), g(n);
  for (index_t i = 0; i < n; ++i) p[i] = static_cast<S>(quad_p0[static_cast<std::size_t>(i)]);
  for (int t = 0; t < steps; ++t) {
    for (index_t i = 0; i < n; ++i) {
      const auto k = static_cast<std::size_t>(i);
      g[i] = static_cast<S>(quad_a[k]) * (p[i] - static_cast<S>(quad_c[k]));
    }
    state.step(p.data(), g.data());
  }
  CHECK(state.steps() == steps);
  Vec out(quad_p0.size());
  for (index_t i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = static_cast<double>(p[i]);
  return out;
}

void check_close(const Vec& got, const Vec& want, double rel_tol) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("parameter ", i, ": got ", got[i], ", want ", want[i]);
    CHECK(std::abs(got[i] - want[i]) <= rel_tol * std::abs(want[i]));
  }
}

/// The hand values must differ from the start: a step that did nothing would otherwise pass.
void check_moved(const Vec& want) {
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(std::abs(want[i] - quad_p0[i]) > 1e-3);
}

#define FORGERY_OPTIM_BACKENDS fg::backend::Reference<double>, fg::backend::Cpu<double>, fg::backend::Cpu<float>

} // namespace

// ---- Each update against the formulas -----------------------------------------------------

TEST_CASE_TEMPLATE("SGD follows the published update", B, FORGERY_OPTIM_BACKENDS) {
  fg::optim::SGD::Config cfg;
  cfg.lr = 0.05;
  SUBCASE("plain") {}
  SUBCASE("momentum") { cfg.momentum = 0.9; }
  SUBCASE("momentum with dampening") {
    cfg.momentum = 0.8;
    cfg.dampening = 0.3;
  }
  SUBCASE("nesterov") {
    cfg.momentum = 0.9;
    cfg.nesterov = true;
  }
  SUBCASE("weight decay") { cfg.weight_decay = 0.2; }
  SUBCASE("weight decay with momentum") {
    cfg.weight_decay = 0.2;
    cfg.momentum = 0.7;
  }
  SUBCASE("weight decay with nesterov") {
    cfg.weight_decay = 0.2;
    cfg.momentum = 0.7;
    cfg.nesterov = true;
  }
  const Vec want = sgd_by_hand(cfg.lr, cfg.momentum, cfg.dampening, cfg.weight_decay, cfg.nesterov, hand_steps);
  check_moved(want);
  check_close(run_quadratic<fg::optim::SGD, B>(cfg, hand_steps), want, hand_tolerance<B>);
}

TEST_CASE_TEMPLATE("Adam follows the published update", B, FORGERY_OPTIM_BACKENDS) {
  fg::optim::Adam::Config cfg;
  cfg.lr = 0.1;
  SUBCASE("defaults") {}
  SUBCASE("other betas and a large eps") {
    cfg.beta1 = 0.5;
    cfg.beta2 = 0.8;
    cfg.eps = 0.25;
  }
  SUBCASE("weight decay") { cfg.weight_decay = 0.3; }
  SUBCASE("weight decay, other betas and eps") {
    cfg.weight_decay = 0.3;
    cfg.beta1 = 0.7;
    cfg.beta2 = 0.95;
    cfg.eps = 0.1;
  }
  const Vec want = adam_by_hand(cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, hand_steps);
  check_moved(want);
  check_close(run_quadratic<fg::optim::Adam, B>(cfg, hand_steps), want, hand_tolerance<B>);
}

TEST_CASE_TEMPLATE("AdamW follows the published update", B, FORGERY_OPTIM_BACKENDS) {
  fg::optim::AdamW::Config cfg;
  cfg.lr = 0.1;
  SUBCASE("defaults (weight decay 0.01)") { CHECK(cfg.weight_decay == 0.01); }
  SUBCASE("strong decay, other betas and eps") {
    cfg.weight_decay = 0.5;
    cfg.beta1 = 0.6;
    cfg.beta2 = 0.9;
    cfg.eps = 0.2;
  }
  const Vec want = adamw_by_hand(cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, hand_steps);
  check_moved(want);
  check_close(run_quadratic<fg::optim::AdamW, B>(cfg, hand_steps), want, hand_tolerance<B>);
}

TEST_CASE_TEMPLATE("AdamW's decay is decoupled from the moments", B, FORGERY_OPTIM_BACKENDS) {
  // With the same weight decay, Adam (L2 in the gradient) and AdamW differ after one step.
  fg::optim::Adam::Config adam;
  adam.lr = 0.1;
  adam.weight_decay = 0.5;
  fg::optim::AdamW::Config adamw;
  adamw.lr = 0.1;
  adamw.weight_decay = 0.5;
  const Vec a = run_quadratic<fg::optim::Adam, B>(adam, 1);
  const Vec w = run_quadratic<fg::optim::AdamW, B>(adamw, 1);
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(std::abs(a[i] - w[i]) > 1e-3);
}

TEST_CASE_TEMPLATE("RMSprop follows the published update", B, FORGERY_OPTIM_BACKENDS) {
  fg::optim::RMSprop::Config cfg;
  cfg.lr = 0.01;
  SUBCASE("plain") {}
  SUBCASE("large eps and other alpha") {
    cfg.alpha = 0.9;
    cfg.eps = 0.5;
  }
  SUBCASE("momentum") { cfg.momentum = 0.9; }
  SUBCASE("centered") { cfg.centered = true; }
  SUBCASE("centered with momentum and weight decay") {
    cfg.centered = true;
    cfg.momentum = 0.5;
    cfg.weight_decay = 0.1;
    cfg.alpha = 0.9;
  }
  const Vec want =
      rmsprop_by_hand(cfg.lr, cfg.alpha, cfg.eps, cfg.weight_decay, cfg.momentum, cfg.centered, hand_steps);
  check_moved(want);
  check_close(run_quadratic<fg::optim::RMSprop, B>(cfg, hand_steps), want, hand_tolerance<B>);
}

// ---- Convergence ----------------------------------------------------------------------------

namespace {

template <class O, class B>
void check_converges(const typename O::Config& cfg, int steps, double tol) {
  const Vec p = run_quadratic<O, B>(cfg, steps);
  for (std::size_t i = 0; i < p.size(); ++i) {
    INFO(std::string(O::name), ": parameter ", i, " = ", p[i], ", minimum at ", quad_c[i]);
    CHECK(std::abs(p[i] - quad_c[i]) <= tol);
  }
}

} // namespace

TEST_CASE_TEMPLATE("each optimizer brings the quadratic to its minimum", B, FORGERY_OPTIM_BACKENDS) {
  SUBCASE("SGD") {
    fg::optim::SGD::Config cfg;
    cfg.lr = 0.3;
    check_converges<fg::optim::SGD, B>(cfg, 200, 1e-4);
  }
  SUBCASE("SGD with Nesterov momentum") {
    fg::optim::SGD::Config cfg;
    cfg.lr = 0.05;
    cfg.momentum = 0.9;
    cfg.nesterov = true;
    check_converges<fg::optim::SGD, B>(cfg, 300, 1e-4);
  }
  SUBCASE("Adam") {
    fg::optim::Adam::Config cfg;
    cfg.lr = 0.05;
    check_converges<fg::optim::Adam, B>(cfg, 500, 1e-3);
  }
  SUBCASE("AdamW without decay") {
    fg::optim::AdamW::Config cfg;
    cfg.lr = 0.05;
    cfg.weight_decay = 0.0;
    check_converges<fg::optim::AdamW, B>(cfg, 500, 1e-3);
  }
  SUBCASE("AdamW with its default decay") {
    // The decoupled decay pulls towards 0 with a force Adam's normalisation does not scale
    // down, so the iterates settle within about lr of the minimum more slowly.
    fg::optim::AdamW::Config cfg;
    cfg.lr = 0.05;
    check_converges<fg::optim::AdamW, B>(cfg, 500, 2.5e-2);
  }
  SUBCASE("RMSprop") {
    fg::optim::RMSprop::Config cfg;
    cfg.lr = 0.02;
    check_converges<fg::optim::RMSprop, B>(cfg, 500, 1e-3);
  }
  SUBCASE("RMSprop, centered with momentum") {
    fg::optim::RMSprop::Config cfg;
    cfg.lr = 0.01;
    cfg.centered = true;
    cfg.momentum = 0.5;
    check_converges<fg::optim::RMSprop, B>(cfg, 500, 1e-3);
  }
}

// ---- Cpu against Reference: bitwise ---------------------------------------------------------

namespace {

/// Runs three steps of O on n parameters with both backends from the same data and requires
/// the parameters and every state buffer to be bitwise equal.
template <class O, class S>
void check_cpu_matches_reference(const typename O::Config& cfg) {
  using Cpu = fg::backend::Cpu<S>;
  using Ref = fg::backend::Reference<S>;
  constexpr index_t n = 100000;
  static_assert(n >= Cpu::parallel_threshold, "the buffer must be large enough for the parallel loop");
  typename O::template State<Cpu> cpu(cfg, n);
  typename O::template State<Ref> ref(cfg, n);
  fg::HostBuffer<S> p_cpu(n), p_ref(n), g(n);
  for (index_t i = 0; i < n; ++i) p_cpu[i] = p_ref[i] = static_cast<S>(2.0 * std::sin(0.001 * static_cast<double>(i)));
  for (int t = 0; t < 3; ++t) {
    for (index_t i = 0; i < n; ++i) g[i] = static_cast<S>(std::cos(0.37 * static_cast<double>(i) + t) + 0.1 * t);
    cpu.step(p_cpu.data(), g.data());
    ref.step(p_ref.data(), g.data());
  }
  CHECK(std::memcmp(p_cpu.data(), p_ref.data(), sizeof(S) * n) == 0);
  std::vector<const S*> cpu_state, ref_state;
  std::vector<std::string> names;
  cpu.for_each_state([&](const char* name, auto& buf) {
    names.emplace_back(name);
    cpu_state.push_back(buf.data());
  });
  ref.for_each_state([&](const char*, auto& buf) { ref_state.push_back(buf.data()); });
  REQUIRE(cpu_state.size() == ref_state.size());
  CHECK(!cpu_state.empty());
  for (std::size_t k = 0; k < cpu_state.size(); ++k) {
    INFO("state buffer ", names[k]);
    CHECK(std::memcmp(cpu_state[k], ref_state[k], sizeof(S) * n) == 0);
  }
}

} // namespace

TEST_CASE_TEMPLATE("Cpu updates are bitwise equal to Reference", S, double, float) {
#if defined(_OPENMP)
  // The parallel loop runs only with more than one thread; force it on a one-core machine.
  const int threads = omp_get_max_threads();
  if (threads < 2) omp_set_num_threads(2);
#endif
  SUBCASE("SGD, Nesterov and weight decay") {
    fg::optim::SGD::Config cfg;
    cfg.lr = 0.05;
    cfg.momentum = 0.9;
    cfg.nesterov = true;
    cfg.weight_decay = 0.01;
    check_cpu_matches_reference<fg::optim::SGD, S>(cfg);
  }
  SUBCASE("SGD, dampened momentum") {
    fg::optim::SGD::Config cfg;
    cfg.lr = 0.05;
    cfg.momentum = 0.9;
    cfg.dampening = 0.1;
    check_cpu_matches_reference<fg::optim::SGD, S>(cfg);
  }
  SUBCASE("Adam with weight decay") {
    fg::optim::Adam::Config cfg;
    cfg.weight_decay = 0.01;
    check_cpu_matches_reference<fg::optim::Adam, S>(cfg);
  }
  SUBCASE("AdamW") { check_cpu_matches_reference<fg::optim::AdamW, S>(fg::optim::AdamW::Config{}); }
  SUBCASE("RMSprop, centered with momentum and weight decay") {
    fg::optim::RMSprop::Config cfg;
    cfg.centered = true;
    cfg.momentum = 0.9;
    cfg.weight_decay = 0.01;
    check_cpu_matches_reference<fg::optim::RMSprop, S>(cfg);
  }
#if defined(_OPENMP)
  omp_set_num_threads(threads);
#endif
}

// ---- Invalid configurations -----------------------------------------------------------------

namespace {

/// `cfg` must be rejected both by validate() and by building a State, naming `field`.
template <class O>
void check_rejected(const typename O::Config& cfg, const std::string& field) {
  INFO("expected a config_error naming ", field);
  bool thrown = false;
  try {
    cfg.validate();
  } catch (const fg::config_error& e) {
    thrown = true;
    CHECK(e.field() == field);
    CHECK(std::string(e.what()).find(field) != std::string::npos);
  }
  CHECK(thrown);
  CHECK_THROWS_AS((typename O::template State<fg::backend::Cpu<float>>(cfg, 4)), fg::config_error);
}

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();
constexpr double k_inf = std::numeric_limits<double>::infinity();

} // namespace

TEST_CASE("invalid optimizer configs throw config_error naming the field") {
  using fg::optim::Adam, fg::optim::AdamW, fg::optim::RMSprop, fg::optim::SGD;
  CHECK_NOTHROW(SGD::Config{}.validate());
  CHECK_NOTHROW(Adam::Config{}.validate());
  CHECK_NOTHROW(AdamW::Config{}.validate());
  CHECK_NOTHROW(RMSprop::Config{}.validate());

  for (double lr : {0.0, -1e-3, k_nan, k_inf}) {
    INFO("lr = ", lr);
    check_rejected<SGD>(SGD::Config{.lr = lr}, "SGD.lr");
    check_rejected<Adam>(Adam::Config{.lr = lr}, "Adam.lr");
    check_rejected<AdamW>(AdamW::Config{.lr = lr}, "AdamW.lr");
    check_rejected<RMSprop>(RMSprop::Config{.lr = lr}, "RMSprop.lr");
  }
  SUBCASE("SGD") {
    check_rejected<SGD>(SGD::Config{.momentum = -0.1}, "SGD.momentum");
    check_rejected<SGD>(SGD::Config{.momentum = k_nan}, "SGD.momentum");
    check_rejected<SGD>(SGD::Config{.momentum = 0.9, .dampening = 1.5}, "SGD.dampening");
    check_rejected<SGD>(SGD::Config{.weight_decay = -1e-4}, "SGD.weight_decay");
    check_rejected<SGD>(SGD::Config{.nesterov = true}, "SGD.nesterov");
    check_rejected<SGD>(SGD::Config{.momentum = 0.9, .dampening = 0.1, .nesterov = true}, "SGD.nesterov");
    CHECK_NOTHROW(SGD::Config{.momentum = 0.9, .nesterov = true}.validate());
  }
  SUBCASE("Adam and AdamW") {
    check_rejected<Adam>(Adam::Config{.beta1 = 1.0}, "Adam.beta1");
    check_rejected<Adam>(Adam::Config{.beta1 = k_nan}, "Adam.beta1");
    check_rejected<Adam>(Adam::Config{.beta2 = -0.1}, "Adam.beta2");
    check_rejected<Adam>(Adam::Config{.beta2 = 1.0}, "Adam.beta2");
    check_rejected<Adam>(Adam::Config{.eps = 0.0}, "Adam.eps");
    check_rejected<Adam>(Adam::Config{.eps = -1e-8}, "Adam.eps");
    check_rejected<Adam>(Adam::Config{.weight_decay = -0.01}, "Adam.weight_decay");
    check_rejected<AdamW>(AdamW::Config{.beta1 = 1.0}, "AdamW.beta1");
    check_rejected<AdamW>(AdamW::Config{.beta2 = -0.1}, "AdamW.beta2");
    check_rejected<AdamW>(AdamW::Config{.eps = 0.0}, "AdamW.eps");
    check_rejected<AdamW>(AdamW::Config{.weight_decay = -0.01}, "AdamW.weight_decay");
    CHECK_NOTHROW(Adam::Config{.beta1 = 0.0, .beta2 = 0.0}.validate());
  }
  SUBCASE("RMSprop") {
    check_rejected<RMSprop>(RMSprop::Config{.alpha = 1.0}, "RMSprop.alpha");
    check_rejected<RMSprop>(RMSprop::Config{.alpha = -0.5}, "RMSprop.alpha");
    check_rejected<RMSprop>(RMSprop::Config{.eps = 0.0}, "RMSprop.eps");
    check_rejected<RMSprop>(RMSprop::Config{.weight_decay = -1.0}, "RMSprop.weight_decay");
    check_rejected<RMSprop>(RMSprop::Config{.momentum = -0.9}, "RMSprop.momentum");
  }
}

// ---- Steps, learning-rate changes, checkpoints, allocation --------------------------------

TEST_CASE_TEMPLATE("steps() counts and a changed lr takes effect at the next step", B, FORGERY_OPTIM_BACKENDS) {
  using S = typename B::scalar;
  fg::optim::SGD::State<B> sgd(fg::optim::SGD::Config{.lr = 0.5}, 2);
  CHECK(sgd.steps() == 0);
  CHECK(sgd.size() == 2);
  typename B::template buffer<S> p(2), g(2);
  p[0] = S(1);
  p[1] = S(-2);
  g[0] = S(0.25);
  g[1] = S(1);
  sgd.step(p.data(), g.data());
  CHECK(sgd.steps() == 1);
  CHECK(p[0] == S(1 - 0.5 * 0.25));
  CHECK(p[1] == S(-2 - 0.5));
  sgd.config().lr = 0.25;
  sgd.step(p.data(), g.data());
  CHECK(sgd.steps() == 2);
  CHECK(p[0] == S(1 - 0.5 * 0.25 - 0.25 * 0.25));
  CHECK(p[1] == S(-2 - 0.5 - 0.25));

  SUBCASE("a schedule may set lr to 0 between steps, not to NaN or below 0") {
    sgd.config().lr = 0.0;
    sgd.step(p.data(), g.data());
    CHECK(sgd.steps() == 3);
    CHECK(p[1] == S(-2 - 0.5 - 0.25));
    sgd.config().lr = k_nan;
    CHECK_THROWS_AS(sgd.step(p.data(), g.data()), fg::config_error);
    sgd.config().lr = -0.1;
    CHECK_THROWS_AS(sgd.step(p.data(), g.data()), fg::config_error);
    CHECK(sgd.steps() == 3);
    CHECK(p[1] == S(-2 - 0.5 - 0.25));
  }
  SUBCASE("Adam's update scales with lr") {
    // After the first step Adam's update is lr * m_hat / (sqrt(v_hat) + eps); with a constant
    // gradient m_hat / sqrt(v_hat) = 1 (up to eps), so the step equals lr.
    fg::optim::Adam::State<B> adam(fg::optim::Adam::Config{.lr = 0.5, .eps = 1e-12}, 2);
    adam.step(p.data(), g.data());
    const double before = static_cast<double>(p[0]);
    adam.config().lr = 0.125;
    adam.step(p.data(), g.data());
    CHECK(adam.steps() == 2);
    CHECK(before - static_cast<double>(p[0]) == doctest::Approx(0.125).epsilon(hand_tolerance<B> * 10));
  }
}

TEST_CASE("momentum and centering cannot be switched on after construction") {
  using B = fg::backend::Cpu<double>;
  fg::HostBuffer<double> p(3), g(3);
  fg::optim::SGD::State<B> sgd(fg::optim::SGD::Config{.lr = 0.1}, 3);
  sgd.config().momentum = 0.9;
  CHECK_THROWS_AS(sgd.step(p.data(), g.data()), fg::config_error);
  fg::optim::RMSprop::State<B> rms(fg::optim::RMSprop::Config{}, 3);
  rms.config().momentum = 0.9;
  CHECK_THROWS_AS(rms.step(p.data(), g.data()), fg::config_error);
  rms.config().momentum = 0.0;
  rms.config().centered = true;
  CHECK_THROWS_AS(rms.step(p.data(), g.data()), fg::config_error);
  CHECK(rms.steps() == 0);
}

namespace {

/// Runs 2 steps, copies the state into a fresh State (as a checkpoint would), runs 2 more
/// steps on both and requires bitwise-equal parameters.
template <class O, class B>
void check_resume(const typename O::Config& cfg, std::vector<std::string> expected_names) {
  using S = typename B::scalar;
  constexpr index_t n = 5;
  typename B::template buffer<S> p(n), g(n);
  for (index_t i = 0; i < n; ++i) p[i] = static_cast<S>(0.3 * static_cast<double>(i) - 0.5);
  auto grads = [&](int t) {
    for (index_t i = 0; i < n; ++i) g[i] = static_cast<S>(std::sin(static_cast<double>(i + 7 * t)));
  };
  typename O::template State<B> run(cfg, n);
  for (int t = 0; t < 2; ++t) {
    grads(t);
    run.step(p.data(), g.data());
  }
  // The "checkpoint": named copies of every buffer and the step count.
  std::vector<std::string> names;
  std::vector<std::vector<S>> saved;
  run.for_each_state([&](const char* name, const typename B::template buffer<S>& buf) {
    names.emplace_back(name);
    saved.emplace_back(buf.begin(), buf.end());
  });
  CHECK(names == expected_names);
  typename O::template State<B> resumed(cfg, n);
  std::size_t k = 0;
  resumed.for_each_state([&](const char* name, typename B::template buffer<S>& buf) {
    REQUIRE(k < saved.size());
    CHECK(names[k] == name);
    REQUIRE(buf.size() == static_cast<index_t>(saved[k].size()));
    std::copy(saved[k].begin(), saved[k].end(), buf.begin());
    ++k;
  });
  resumed.set_steps(run.steps());
  CHECK(resumed.steps() == 2);
  typename B::template buffer<S> q = p;
  for (int t = 2; t < 4; ++t) {
    grads(t);
    run.step(p.data(), g.data());
    resumed.step(q.data(), g.data());
  }
  CHECK(std::memcmp(p.data(), q.data(), sizeof(S) * n) == 0);
  CHECK_THROWS_AS(resumed.set_steps(-1), fg::config_error);
}

} // namespace

TEST_CASE_TEMPLATE("state buffers and the step count resume a run exactly", B, FORGERY_OPTIM_BACKENDS) {
  using namespace fg::optim;
  check_resume<SGD, B>(SGD::Config{.lr = 0.1}, {});
  check_resume<SGD, B>(SGD::Config{.lr = 0.1, .momentum = 0.9, .dampening = 0.2}, {"momentum_buffer"});
  check_resume<Adam, B>(Adam::Config{.lr = 0.01}, {"exp_avg", "exp_avg_sq"});
  check_resume<AdamW, B>(AdamW::Config{.lr = 0.01}, {"exp_avg", "exp_avg_sq"});
  check_resume<RMSprop, B>(RMSprop::Config{}, {"square_avg"});
  check_resume<RMSprop, B>(RMSprop::Config{.momentum = 0.5, .centered = true},
                           {"square_avg", "momentum_buffer", "grad_avg"});
}
