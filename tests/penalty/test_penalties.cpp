// Tests of the critic regularisers: every input-gradient penalty's parameter gradient
// against central finite differences of the penalty itself (the check that catches a
// penalty that never back-propagates into the critic), closed forms on a linear critic,
// the input gradient against finite differences, WeightClip, determinism, backends.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "../support.hpp"
#include "forgery/forgery.hpp"
#include "forgery/penalty/penalty.hpp"

namespace {

namespace pen = fg::penalty;
using fg::index_t;
using fg::RandomStream;

using Smooth = fg::Sequential<fg::Input<3>, fg::Dense<5>, fg::Tanh, fg::Dense<4>, fg::Sigmoid, fg::Dense<1>>;
using Leaky = fg::Sequential<fg::Input<3>, fg::Dense<5>, fg::LeakyReLU<>, fg::Dense<4>, fg::LeakyReLU<>, fg::Dense<1>>;
using Linear = fg::Sequential<fg::Input<3>, fg::Dense<1>>;
// Blocks: an identity-shortcut residual, a residual with a learned shortcut, a nested
// Sequential; the penalty's parameter gradient must be exact through all three.
using Blocks = fg::Sequential<fg::Input<3>, fg::Residual<fg::Sequential<fg::Dense<5>, fg::Tanh, fg::Dense<3>>>,
                              fg::Residual<fg::Sequential<fg::Dense<4>, fg::Sigmoid>, fg::Dense<4>>,
                              fg::Sequential<fg::Dense<4>, fg::Tanh>, fg::Dense<1>>;

constexpr index_t features = 3;
constexpr index_t batch = 4;

static_assert(fg::Penalty<pen::GradientPenalty, fg::Network<Smooth, fg::backend::Cpu<float>>>);
static_assert(fg::Penalty<pen::DRAGAN, fg::Network<Smooth, fg::backend::Reference<double>>>);
static_assert(fg::Penalty<pen::R1, fg::Network<Leaky, fg::backend::Cpu<double>>>);
static_assert(fg::Penalty<pen::R2, fg::Network<Linear, fg::backend::Cpu<double>>>);
static_assert(fg::Constraint<pen::WeightClip, fg::Network<Smooth, fg::backend::Cpu<float>>>);
static_assert(!fg::Penalty<pen::WeightClip, fg::Network<Smooth, fg::backend::Cpu<float>>>);
static_assert(!fg::Constraint<pen::GradientPenalty, fg::Network<Smooth, fg::backend::Cpu<float>>>);

template <class B>
std::vector<typename B::scalar> make_batch(std::uint64_t stream, double mean) {
  using S = typename B::scalar;
  std::vector<S> v(static_cast<std::size_t>(features * batch));
  RandomStream rng{2024, stream, 0};
  B::fill_normal(features * batch, v.data(), rng, static_cast<S>(mean), S(1));
  return v;
}

template <class S>
fg::ConstBatchView<S> view(const std::vector<S>& v) {
  return {v.data(), features, static_cast<index_t>(v.size()) / features};
}

/// Every parameter, weights and biases, drawn from N(0, sigma^2): zero biases would leave
/// part of the gradient untested.
template <class Net>
void randomise(Net& net, double sigma, std::uint64_t seed) {
  using B = typename Net::backend;
  using S = typename Net::scalar;
  RandomStream rng{seed, 11, 0};
  B::fill_normal(Net::param_count, net.params(), rng, S(0), static_cast<S>(sigma));
  net.zero_grad();
}

template <class Net>
std::vector<double> grads_of(const Net& net) {
  return std::vector<double>(net.grads(), net.grads() + Net::param_count);
}

struct GradientCheck {
  double max_relative_error = 0;
  double largest_component = 0;
};

/// The parameter gradient apply() adds against a fourth-order central difference
/// (Richardson-extrapolated, h = 1e-3) of P itself, recomputed with a copy of the same
/// random stream so the random points are identical. The error of component k is
/// |a - n| / max(|a|, |n|, 1e-3 * max_j |a_j|): components a thousand times smaller than
/// the largest are judged on that scale, where rounding in P dominates.
template <class Pen, class Net>
GradientCheck check_parameter_gradient(const Pen& penalty, Net& net, fg::ConstBatchView<double> real,
                                       fg::ConstBatchView<double> fake, RandomStream rng,
                                       fg::penalty::Workspace<typename Net::backend>& ws) {
  net.zero_grad();
  RandomStream r = rng;
  penalty.apply(net, real, fake, r, ws);
  const std::vector<double> analytic = grads_of(net);
  auto p_at = [&] {
    RandomStream copy = rng;
    return static_cast<double>(penalty.apply(net, real, fake, copy, ws));
  };
  GradientCheck out;
  for (double a : analytic) out.largest_component = std::max(out.largest_component, std::abs(a));
  const double h = 1e-3;
  double* p = net.params();
  for (index_t k = 0; k < Net::param_count; ++k) {
    const double saved = p[k];
    double f[4];
    const double steps[4] = {h, -h, 2 * h, -2 * h};
    for (int s = 0; s < 4; ++s) {
      p[k] = saved + steps[s];
      f[s] = p_at();
    }
    p[k] = saved;
    const double numeric = (8 * (f[0] - f[1]) - (f[2] - f[3])) / (12 * h);
    const double a = analytic[static_cast<std::size_t>(k)];
    const double scale = std::max({std::abs(a), std::abs(numeric), 1e-3 * out.largest_component});
    out.max_relative_error = std::max(out.max_relative_error, std::abs(a - numeric) / scale);
  }
  net.zero_grad();
  return out;
}

/// The smallest |pre-activation| of the Leaky critic's two LeakyReLUs at the points x. A
/// finite difference of P is only meaningful when its steps (up to 2e-3 in one parameter)
/// cross no kink, so the LeakyReLU checks require a margin well above that.
template <class B>
double leaky_kink_margin(fg::Network<Leaky, B>& net, fg::ConstBatchView<double> x) {
  fg::Network<fg::Sequential<fg::Input<3>, fg::Dense<5>>, B> first;
  fg::Network<fg::Sequential<fg::Input<3>, fg::Dense<5>, fg::LeakyReLU<>, fg::Dense<4>>, B> second;
  std::copy_n(net.params(), decltype(first)::param_count, first.params());
  std::copy_n(net.params(), decltype(second)::param_count, second.params());
  double margin = HUGE_VAL;
  const auto z1 = first.forward(x);
  for (index_t i = 0; i < z1.size(); ++i) margin = std::min(margin, std::abs(z1.data()[i]));
  const auto z2 = second.forward(x);
  for (index_t i = 0; i < z2.size(); ++i) margin = std::min(margin, std::abs(z2.data()[i]));
  return margin;
}

/// grad_x D at each column of x by fourth-order central differences of the critic output.
template <class Net>
std::vector<double> input_gradient_fd(Net& net, const std::vector<double>& x) {
  const index_t n = static_cast<index_t>(x.size()) / features;
  std::vector<double> g(x.size());
  std::vector<double> xp = x;
  const double h = 1e-3;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::size_t j = i / features;
    double f[4];
    const double steps[4] = {h, -h, 2 * h, -2 * h};
    for (int s = 0; s < 4; ++s) {
      xp[i] = x[i] + steps[s];
      f[s] = net.forward({xp.data(), features, n})(0, static_cast<index_t>(j));
    }
    xp[i] = x[i];
    g[i] = (8 * (f[0] - f[1]) - (f[2] - f[3])) / (12 * h);
  }
  return g;
}

std::vector<double> column_norms(const std::vector<double>& g) {
  std::vector<double> r(g.size() / features, 0.0);
  for (std::size_t i = 0; i < g.size(); ++i) r[i / features] += g[i] * g[i];
  for (double& v : r) v = std::sqrt(v);
  return r;
}

template <class Spec, class B, class Pen>
void gradient_check_case(const char* label, const Pen& penalty, double sigma, std::uint64_t seed) {
  fg::Network<Spec, B> net;
  randomise(net, sigma, seed);
  const auto real = make_batch<B>(1, 0.3);
  const auto fake = make_batch<B>(2, -0.2);
  const RandomStream rng{77, 5, 3};
  pen::Workspace<B> ws;
  const GradientCheck c = check_parameter_gradient(penalty, net, view(real), view(fake), rng, ws);
  INFO(std::string(label) << " on " << std::string(B::name) << ": max relative error " << c.max_relative_error
                          << ", largest component " << c.largest_component);
  if constexpr (std::is_same_v<Spec, Leaky>) {
    fg::ConstBatchView<double> points = ws.input();
    if constexpr (std::is_same_v<Pen, pen::R1>) points = view(real);
    if constexpr (std::is_same_v<Pen, pen::R2>) points = view(fake);
    REQUIRE(leaky_kink_margin(net, points) > 0.02);
  }
  if constexpr (std::is_same_v<Pen, pen::GradientPenalty>) {
    if (penalty.config.one_sided) {
      // Vacuous unless the norms lie on both sides of the hinge at 1.
      bool above = false, below = false;
      for (index_t j = 0; j < batch; ++j) (ws.gradient_norms()(0, j) > 1 ? above : below) = true;
      REQUIRE(above);
      REQUIRE(below);
    }
  }
  CHECK(c.max_relative_error < 1e-6);
  // The penalty reaches the critic's parameters at all (the shipped bug elsewhere: a GP
  // that added nothing to the critic's gradient).
  CHECK(c.largest_component > 1e-3);
}

} // namespace

TEST_CASE_TEMPLATE("every penalty's parameter gradient matches finite differences of P", B, FORGERY_DOUBLE_BACKENDS) {
  pen::GradientPenalty gp;
  pen::GradientPenalty one_sided({.lambda = 10, .one_sided = true});
  pen::DRAGAN dragan;
  pen::DRAGAN dragan_plain({.lambda = 10, .k = 1, .c = 0.5, .interpolate = false});
  pen::R1 r1;
  pen::R2 r2({.gamma = 3});

  SUBCASE("smooth critic (Tanh, Sigmoid)") {
    gradient_check_case<Smooth, B>("GP", gp, 0.8, 1);
    gradient_check_case<Smooth, B>("one-sided GP", one_sided, 1.6, 2);
    gradient_check_case<Smooth, B>("DRAGAN", dragan, 0.8, 3);
    gradient_check_case<Smooth, B>("DRAGAN without alpha", dragan_plain, 0.8, 4);
    gradient_check_case<Smooth, B>("R1", r1, 0.8, 5);
    gradient_check_case<Smooth, B>("R2", r2, 0.8, 6);
  }
  SUBCASE("critic of residual and nested blocks") {
    gradient_check_case<Blocks, B>("GP", gp, 0.8, 1);
    gradient_check_case<Blocks, B>("DRAGAN", dragan, 0.8, 3);
    gradient_check_case<Blocks, B>("R1", r1, 0.8, 5);
    gradient_check_case<Blocks, B>("R2", r2, 0.8, 6);
  }
  SUBCASE("LeakyReLU critic") {
    // Seeds chosen so that no finite-difference step crosses a kink (checked inside).
    gradient_check_case<Leaky, B>("GP", gp, 0.8, 3);
    gradient_check_case<Leaky, B>("one-sided GP", one_sided, 1.2, 17);
    gradient_check_case<Leaky, B>("DRAGAN", dragan, 0.8, 1);
    gradient_check_case<Leaky, B>("DRAGAN without alpha", dragan_plain, 0.8, 2);
    gradient_check_case<Leaky, B>("R1", r1, 0.8, 2);
    gradient_check_case<Leaky, B>("R2", r2, 0.8, 3);
  }
}

TEST_CASE_TEMPLATE("P and the input gradient it uses agree with finite differences of the critic", B,
                   FORGERY_DOUBLE_BACKENDS) {
  const auto real = make_batch<B>(1, 0.3);
  const auto fake = make_batch<B>(2, -0.2);

  SUBCASE("GP on a smooth critic") {
    fg::Network<Smooth, B> net;
    randomise(net, 0.8, 1);
    RandomStream rng{77, 5, 3};
    pen::Workspace<B> ws;
    const double p = pen::GradientPenalty{}.apply(net, view(real), view(fake), rng, ws);
    const std::vector<double> x_hat(ws.input().data(), ws.input().data() + ws.input().size());
    const auto norms = column_norms(input_gradient_fd(net, x_hat));
    double expected = 0;
    for (double r : norms) expected += (r - 1) * (r - 1);
    expected *= 10.0 / batch;
    CHECK(p == doctest::Approx(expected).epsilon(1e-8));
    for (index_t j = 0; j < batch; ++j)
      CHECK(ws.gradient_norms()(0, j) == doctest::Approx(norms[static_cast<std::size_t>(j)]).epsilon(1e-8));
  }
  SUBCASE("R1 on a LeakyReLU critic") {
    fg::Network<Leaky, B> net;
    randomise(net, 0.8, 5);
    RandomStream rng{77, 5, 3};
    pen::Workspace<B> ws;
    const double p = pen::R1({.gamma = 4}).apply(net, view(real), view(fake), rng, ws);
    const auto norms = column_norms(input_gradient_fd(net, real));
    double expected = 0;
    for (double r : norms) expected += r * r;
    expected *= 4.0 / 2 / batch;
    CHECK(p == doctest::Approx(expected).epsilon(1e-8));
  }
}

TEST_CASE_TEMPLATE("the penalised points are the documented ones", B, FORGERY_DOUBLE_BACKENDS) {
  using Net = fg::Network<Smooth, B>;
  Net net;
  randomise(net, 0.8, 1);
  const auto real = make_batch<B>(1, 0.3);
  const auto fake = make_batch<B>(2, -0.2);
  const RandomStream start{77, 5, 3};
  pen::Workspace<B> ws;

  SUBCASE("GP: eps_i real_i + (1 - eps_i) fake_i, eps_i ~ U(0, 1) drawn first, one per sample") {
    RandomStream rng = start;
    pen::GradientPenalty{}.apply(net, view(real), view(fake), rng, ws);
    RandomStream expected_rng = start;
    std::vector<double> eps(batch);
    B::fill_uniform(batch, eps.data(), expected_rng, 0.0, 1.0);
    CHECK(rng == expected_rng);
    for (index_t i = 0; i < features * batch; ++i) {
      const double e = eps[static_cast<std::size_t>(i / features)];
      const auto k = static_cast<std::size_t>(i);
      CHECK(ws.input().data()[i] == doctest::Approx(e * real[k] + (1 - e) * fake[k]).epsilon(1e-14));
    }
  }
  SUBCASE("DRAGAN: real + alpha_i * c * std(real) * U(0, 1), std over the whole batch") {
    RandomStream rng = start;
    pen::DRAGAN{}.apply(net, view(real), view(fake), rng, ws);
    double mean = 0, var = 0;
    for (double v : real) mean += v;
    mean /= static_cast<double>(real.size());
    for (double v : real) var += (v - mean) * (v - mean);
    const double stddev = std::sqrt(var / static_cast<double>(real.size()));
    RandomStream expected_rng = start;
    std::vector<double> u(real.size()), alpha(batch);
    B::fill_uniform(features * batch, u.data(), expected_rng, 0.0, 1.0);
    B::fill_uniform(batch, alpha.data(), expected_rng, 0.0, 1.0);
    CHECK(rng == expected_rng);
    for (std::size_t i = 0; i < real.size(); ++i) {
      const double expected = real[i] + alpha[i / features] * 0.5 * stddev * u[i];
      CHECK(ws.input().data()[i] == doctest::Approx(expected).epsilon(1e-14));
    }
  }
  SUBCASE("R1 and R2 draw nothing") {
    RandomStream rng = start;
    pen::R1{}.apply(net, view(real), {}, rng, ws);
    pen::R2{}.apply(net, {}, view(fake), rng, ws);
    CHECK(rng == start);
  }
}

TEST_CASE_TEMPLATE("closed forms on a linear critic D(x) = w . x + b", B, FORGERY_DOUBLE_BACKENDS) {
  // grad_x D = w for every sample, so each penalty and its parameter gradient are known
  // exactly, whatever the random points.
  fg::Network<Linear, B> net;
  double* p = net.params();
  const double w[3] = {0.9, -0.7, 0.4}; // ||w|| = 1.2083
  p[0] = w[0];
  p[1] = w[1];
  p[2] = w[2];
  p[3] = 0.25; // b
  const double norm = std::sqrt(w[0] * w[0] + w[1] * w[1] + w[2] * w[2]);
  const auto real = make_batch<B>(1, 0.3);
  const auto fake = make_batch<B>(2, -0.2);
  pen::Workspace<B> ws;
  RandomStream rng{1, 2, 3};

  SUBCASE("GP = lambda (||w|| - 1)^2, dGP/dw = 2 lambda (||w|| - 1) w / ||w||") {
    net.zero_grad();
    const double gp = pen::GradientPenalty({.lambda = 7}).apply(net, view(real), view(fake), rng, ws);
    CHECK(gp == doctest::Approx(7 * (norm - 1) * (norm - 1)).epsilon(1e-13));
    for (int k = 0; k < 3; ++k) CHECK(net.grads()[k] == doctest::Approx(14 * (norm - 1) * w[k] / norm).epsilon(1e-13));
    CHECK(net.grads()[3] == 0.0);
  }
  SUBCASE("R1 = gamma / 2 ||w||^2, dR1/dw = gamma w; R2 the same on fake data") {
    net.zero_grad();
    const double r1 = pen::R1({.gamma = 3}).apply(net, view(real), {}, rng, ws);
    CHECK(r1 == doctest::Approx(1.5 * norm * norm).epsilon(1e-13));
    for (int k = 0; k < 3; ++k) CHECK(net.grads()[k] == doctest::Approx(3 * w[k]).epsilon(1e-13));
    net.zero_grad();
    const double r2 = pen::R2({.gamma = 3}).apply(net, {}, view(fake), rng, ws);
    CHECK(r2 == doctest::Approx(1.5 * norm * norm).epsilon(1e-13));
  }
  SUBCASE("DRAGAN = lambda (||w|| - k)^2") {
    const double d = pen::DRAGAN({.lambda = 2, .k = 0.5}).apply(net, view(real), {}, rng, ws);
    CHECK(d == doctest::Approx(2 * (norm - 0.5) * (norm - 0.5)).epsilon(1e-13));
  }
  SUBCASE("one-sided GP is zero, and adds nothing, when every norm is below 1") {
    p[0] = 0.5;
    p[1] = -0.3;
    p[2] = 0.2;
    net.zero_grad();
    const double gp =
        pen::GradientPenalty({.lambda = 10, .one_sided = true}).apply(net, view(real), view(fake), rng, ws);
    CHECK(gp == 0.0);
    for (index_t k = 0; k < decltype(net)::param_count; ++k) CHECK(net.grads()[k] == 0.0);
    // The two-sided form is not.
    CHECK(pen::GradientPenalty{}.apply(net, view(real), view(fake), rng, ws) > 0.0);
  }
  SUBCASE("a zero input gradient gives P = lambda and finite, zero parameter gradients") {
    for (int k = 0; k < 4; ++k) p[k] = 0;
    net.zero_grad();
    const double gp = pen::GradientPenalty{}.apply(net, view(real), view(fake), rng, ws);
    CHECK(gp == 10.0);
    for (int k = 0; k < 4; ++k) CHECK(net.grads()[k] == 0.0);
    CHECK(ws.gradient_norms()(0, 0) == 0.0);
  }
}

TEST_CASE_TEMPLATE("one-sided GP is zero on a nonlinear critic whose gradients are all below 1", B,
                   FORGERY_DOUBLE_BACKENDS) {
  fg::Network<Smooth, B> net;
  randomise(net, 0.3, 9);
  const auto real = make_batch<B>(1, 0.3);
  const auto fake = make_batch<B>(2, -0.2);
  pen::Workspace<B> ws;
  RandomStream rng{5, 5, 5};
  const double p = pen::GradientPenalty({.lambda = 10, .one_sided = true}).apply(net, view(real), view(fake), rng, ws);
  for (index_t j = 0; j < batch; ++j) REQUIRE(ws.gradient_norms()(0, j) < 1.0);
  CHECK(p == 0.0);
  for (double g : grads_of(net)) CHECK(g == 0.0);
}

TEST_CASE_TEMPLATE("a penalty adds to the gradients already in the buffer", B, FORGERY_DOUBLE_BACKENDS) {
  using Net = fg::Network<Smooth, B>;
  Net net;
  randomise(net, 0.8, 1);
  const auto real = make_batch<B>(1, 0.3);
  const auto fake = make_batch<B>(2, -0.2);
  pen::Workspace<B> ws;
  const RandomStream start{77, 5, 3};

  RandomStream rng = start;
  pen::GradientPenalty{}.apply(net, view(real), view(fake), rng, ws);
  const std::vector<double> alone = grads_of(net);

  std::vector<double> loss_grad(static_cast<std::size_t>(Net::param_count));
  for (std::size_t k = 0; k < loss_grad.size(); ++k) loss_grad[k] = 0.1 * static_cast<double>(k % 7) - 0.3;
  std::copy(loss_grad.begin(), loss_grad.end(), net.grads());
  rng = start;
  pen::GradientPenalty{}.apply(net, view(real), view(fake), rng, ws);
  for (std::size_t k = 0; k < loss_grad.size(); ++k)
    CHECK(net.grads()[k] == doctest::Approx(loss_grad[k] + alone[k]).epsilon(1e-12).scale(1));
}

TEST_CASE_TEMPLATE("the same random stream gives bitwise-identical results", S, float, double) {
  using B = fg::backend::Cpu<S>;
  using Net = fg::Network<Smooth, B>;
  const auto real = make_batch<B>(1, 0.3);
  const auto fake = make_batch<B>(2, -0.2);
  auto run = [&](auto penalty, RandomStream& rng, std::vector<S>& grads) {
    Net net;
    randomise(net, 0.8, 1);
    pen::Workspace<B> ws;
    const S p = penalty.apply(net, view(real), view(fake), rng, ws);
    grads.assign(net.grads(), net.grads() + Net::param_count);
    return p;
  };
  auto same = [&](auto penalty) {
    RandomStream a{9, 9, 9}, b{9, 9, 9};
    std::vector<S> ga, gb;
    const S pa = run(penalty, a, ga);
    const S pb = run(penalty, b, gb);
    CHECK(pa == pb);
    CHECK(ga == gb);
    CHECK(a == b);
  };
  same(pen::GradientPenalty{});
  same(pen::DRAGAN{});
  same(pen::R1{});
}

TEST_CASE("Cpu<float> matches Reference<float>") {
  using Ref = fg::backend::Reference<float>;
  using Cpu = fg::backend::Cpu<float>;
  const auto real = make_batch<Ref>(1, 0.3);
  const auto fake = make_batch<Ref>(2, -0.2);
  auto compare = [&](auto penalty) {
    fg::Network<Smooth, Ref> a;
    fg::Network<Smooth, Cpu> b;
    randomise(a, 0.8, 1);
    randomise(b, 0.8, 1);
    pen::Workspace<Ref> wa;
    pen::Workspace<Cpu> wb;
    RandomStream ra{3, 3, 3}, rb{3, 3, 3};
    const float pa = penalty.apply(a, view(real), view(fake), ra, wa);
    const float pb = penalty.apply(b, view(real), view(fake), rb, wb);
    CHECK(pb == doctest::Approx(pa).epsilon(1e-5));
    float largest = 0;
    for (index_t k = 0; k < decltype(a)::param_count; ++k) largest = std::max(largest, std::abs(a.grads()[k]));
    REQUIRE(largest > 0);
    for (index_t k = 0; k < decltype(a)::param_count; ++k)
      CHECK(std::abs(a.grads()[k] - b.grads()[k]) <= 1e-5f * largest);
  };
  compare(pen::GradientPenalty{});
  compare(pen::DRAGAN{});
  compare(pen::R1{});
  compare(pen::R2{});
}

TEST_CASE("the workspace only grows: a steady-state call reuses its buffers") {
  using B = fg::backend::Cpu<double>;
  fg::Network<Smooth, B> net;
  randomise(net, 0.8, 1);
  const auto real = make_batch<B>(1, 0.3);
  const auto fake = make_batch<B>(2, -0.2);
  pen::Workspace<B> ws;
  RandomStream rng{1, 1, 1};
  pen::GradientPenalty{}.apply(net, view(real), view(fake), rng, ws);
  const double* input = ws.input().data();
  const double* tangent = ws.tangent().data();
  const double* norms = ws.gradient_norms().data();
  CHECK(ws.element_capacity() == features * batch);
  CHECK(ws.batch_capacity() == batch);
  pen::DRAGAN{}.apply(net, view(real), view(fake), rng, ws);
  pen::R1{}.apply(net, fg::ConstBatchView<double>(real.data(), features, 2), {}, rng, ws); // a smaller batch
  CHECK(ws.gradient_norms().batch() == 2);
  pen::GradientPenalty{}.apply(net, view(real), view(fake), rng, ws);
  CHECK(ws.input().data() == input);
  CHECK(ws.tangent().data() == tangent);
  CHECK(ws.gradient_norms().data() == norms);
  CHECK(ws.element_capacity() == features * batch);
  CHECK(ws.batch_capacity() == batch);
}

TEST_CASE_TEMPLATE("WeightClip clamps every parameter into [-c, c] and leaves the rest", B,
                   fg::backend::Reference<float>, fg::backend::Cpu<double>) {
  using S = typename B::scalar;
  using Net = fg::Network<Smooth, B>;
  Net net;
  randomise(net, 0.02, 4); // about a third of the parameters lie outside [-0.01, 0.01]
  for (index_t k = 0; k < Net::param_count; ++k) net.grads()[k] = S(5); // clipping must not touch these
  const std::vector<S> before(net.params(), net.params() + Net::param_count);
  pen::WeightClip clip;
  clip.after_critic_step(net);
  const S c = S(0.01);
  int clipped = 0;
  for (index_t k = 0; k < Net::param_count; ++k) {
    const S was = before[static_cast<std::size_t>(k)], now = net.params()[k];
    CHECK(now >= -c);
    CHECK(now <= c);
    if (was > c) {
      CHECK(now == c);
      ++clipped;
    } else if (was < -c) {
      CHECK(now == -c);
      ++clipped;
    } else {
      CHECK(now == was);
    }
    CHECK(net.grads()[k] == S(5));
  }
  // Biases too: the last parameter is the output bias.
  CHECK(clipped > 5);
  CHECK(clipped < Net::param_count);
  pen::WeightClip({.c = 0.5}).after_critic_step(net);
  for (index_t k = 0; k < Net::param_count; ++k) CHECK(std::abs(net.params()[k]) <= c);
}

TEST_CASE("configurations are validated, naming the field") {
  auto field_of = [](auto make) -> std::string {
    try {
      make();
    } catch (const fg::config_error& e) {
      return e.field();
    }
    return "no error";
  };
  const double nan = std::nan("");
  const double inf = HUGE_VAL;
  CHECK(field_of([] { pen::GradientPenalty({.lambda = -1}); }) == "GradientPenalty.lambda");
  CHECK(field_of([&] { pen::GradientPenalty({.lambda = nan}); }) == "GradientPenalty.lambda");
  CHECK(field_of([&] { pen::GradientPenalty({.lambda = inf}); }) == "GradientPenalty.lambda");
  CHECK(field_of([] { pen::GradientPenalty({.lambda = 0}); }) == "no error");
  CHECK(field_of([] { pen::DRAGAN({.lambda = -1}); }) == "DRAGAN.lambda");
  CHECK(field_of([] { pen::DRAGAN({.k = -0.5}); }) == "DRAGAN.k");
  CHECK(field_of([&] { pen::DRAGAN({.c = nan}); }) == "DRAGAN.c");
  CHECK(field_of([] { pen::R1({.gamma = -2}); }) == "R1.gamma");
  CHECK(field_of([&] { pen::R2({.gamma = inf}); }) == "R2.gamma");
  CHECK(field_of([] { pen::WeightClip({.c = 0}); }) == "WeightClip.c");
  CHECK(field_of([] { pen::WeightClip({.c = -0.01}); }) == "WeightClip.c");

  // A field changed after construction is checked again when the penalty runs.
  using B = fg::backend::Reference<double>;
  fg::Network<Linear, B> net;
  const auto real = make_batch<B>(1, 0.3);
  pen::Workspace<B> ws;
  RandomStream rng;
  pen::R1 r1;
  r1.config.gamma = -1;
  CHECK_THROWS_AS(r1.apply(net, view(real), {}, rng, ws), fg::config_error);
}

TEST_CASE("batches of the wrong shape are refused") {
  using B = fg::backend::Reference<double>;
  fg::Network<Linear, B> net;
  const auto real = make_batch<B>(1, 0.3);
  pen::Workspace<B> ws;
  RandomStream rng;
  const fg::ConstBatchView<double> short_fake(real.data(), features, 2);
  const fg::ConstBatchView<double> wrong_features(real.data(), 4, 3);
  CHECK_THROWS_AS(pen::GradientPenalty{}.apply(net, view(real), short_fake, rng, ws), fg::shape_error);
  CHECK_THROWS_AS(pen::GradientPenalty{}.apply(net, wrong_features, view(real), rng, ws), fg::shape_error);
  CHECK_THROWS_AS(pen::R1{}.apply(net, {}, view(real), rng, ws), fg::shape_error);
  CHECK_THROWS_AS(pen::R2{}.apply(net, view(real), {}, rng, ws), fg::shape_error);
  CHECK_THROWS_AS(pen::DRAGAN{}.apply(net, wrong_features, {}, rng, ws), fg::shape_error);
}
