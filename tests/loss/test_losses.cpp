// Tests of the adversarial losses (forgery/loss/*.hpp): gradient checks against central
// finite differences, known values, stability at extreme logits, the Minimax saturation,
// concept conformance, Cpu-vs-Reference agreement and configuration validation.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "forgery/backend/cpu.hpp"
#include "forgery/backend/reference.hpp"
#include "forgery/core/concepts.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/loss/loss.hpp"

namespace fg = forgery;
using fg::index_t;

namespace {

using RefF = fg::backend::Reference<float>;
using RefD = fg::backend::Reference<double>;
using CpuF = fg::backend::Cpu<float>;
using CpuD = fg::backend::Cpu<double>;

// ---- running a loss on host vectors ---------------------------------------------------

template <class S>
struct DResult {
  S loss;
  std::vector<S> d_real, d_fake;
};

template <class S>
struct GResult {
  S loss;
  std::vector<S> d_fake;
};

// Outputs and scratch start as NaN so that a value the loss forgets to write shows up, and
// the scratch has exactly 2n scalars so that ASan sees any overrun.
template <class B, class L>
DResult<typename B::scalar> run_d(const L& loss, const std::vector<typename B::scalar>& real,
                                  const std::vector<typename B::scalar>& fake) {
  using S = typename B::scalar;
  REQUIRE(real.size() == fake.size());
  const auto n = static_cast<index_t>(real.size());
  const S nan = std::numeric_limits<S>::quiet_NaN();
  DResult<S> r{nan, std::vector<S>(real.size(), nan), std::vector<S>(real.size(), nan)};
  std::vector<S> work(2 * real.size(), nan);
  r.loss = loss.template discriminator<B>(n, real.data(), fake.data(), r.d_real.data(), r.d_fake.data(), work.data());
  return r;
}

// `real` is passed as nullptr unless the loss declares that its generator term reads it.
template <class B, class L>
GResult<typename B::scalar> run_g(const L& loss, const std::vector<typename B::scalar>& real,
                                  const std::vector<typename B::scalar>& fake) {
  using S = typename B::scalar;
  REQUIRE(real.size() == fake.size());
  const auto n = static_cast<index_t>(fake.size());
  const S nan = std::numeric_limits<S>::quiet_NaN();
  GResult<S> r{nan, std::vector<S>(fake.size(), nan)};
  std::vector<S> work(2 * fake.size(), nan);
  const S* real_ptr = L::generator_uses_real ? real.data() : nullptr;
  r.loss = loss.template generator<B>(n, real_ptr, fake.data(), r.d_fake.data(), work.data());
  return r;
}

/// Calls f once with each loss, LeastSquares both with the paper's defaults and with its
/// Pearson chi-squared targets (a, b, c) = (-1, 1, 0).
template <class F>
void for_each_loss(F&& f) {
  f(fg::loss::NonSaturating{});
  f(fg::loss::Minimax{});
  f(fg::loss::Wasserstein{});
  f(fg::loss::LeastSquares{});
  f(fg::loss::LeastSquares{{-1.0, 1.0, 0.0}});
  f(fg::loss::Hinge{});
  f(fg::loss::RelativisticAverage{});
}

// ---- comparisons -----------------------------------------------------------------------

/// |a - b| within rel * max(|a|, |b|) + abs.
template <class S>
bool close(S a, S b, double rel, double abs = 0.0) {
  const double da = static_cast<double>(a), db = static_cast<double>(b);
  return std::fabs(da - db) <= rel * std::max(std::fabs(da), std::fabs(db)) + abs;
}

template <class S>
constexpr double tol() {
  return std::is_same_v<S, float> ? 2e-6 : 1e-13;
}

template <class S>
bool all_finite(const std::vector<S>& v) {
  return std::all_of(v.begin(), v.end(), [](S x) { return std::isfinite(x); });
}

// ---- finite differences ---------------------------------------------------------------

/// Relative error of an analytic derivative against a finite-difference one, over
/// max(|a|, |f|, 1e-8) so that exact zeros (a flat hinge side) compare as equal.
double rel_error(double analytic, double fd) {
  return std::fabs(analytic - fd) / std::max({std::fabs(analytic), std::fabs(fd), 1e-8});
}

/// Central difference of value() with respect to x[i], restoring x[i] afterwards.
template <class F>
double central_difference(std::vector<double>& x, std::size_t i, F&& value) {
  const double saved = x[i];
  const double h = 1e-5 * std::max(1.0, std::fabs(saved));
  x[i] = saved + h;
  const double up = value();
  x[i] = saved - h;
  const double down = value();
  x[i] = saved;
  return (up - down) / (2 * h);
}

template <class B, class L>
void check_discriminator_gradient(const L& loss, std::vector<double> real, std::vector<double> fake) {
  const DResult<double> r = run_d<B>(loss, real, fake);
  REQUIRE(std::isfinite(r.loss));
  auto value = [&] { return run_d<B>(loss, real, fake).loss; };
  for (std::size_t i = 0; i < real.size(); ++i) {
    const double fd = central_difference(real, i, value);
    INFO(L::name, ": d loss_D / d real[", i, "] analytic ", r.d_real[i], " finite-difference ", fd);
    CHECK(rel_error(r.d_real[i], fd) < 1e-6);
  }
  for (std::size_t i = 0; i < fake.size(); ++i) {
    const double fd = central_difference(fake, i, value);
    INFO(L::name, ": d loss_D / d fake[", i, "] analytic ", r.d_fake[i], " finite-difference ", fd);
    CHECK(rel_error(r.d_fake[i], fd) < 1e-6);
  }
}

template <class B, class L>
void check_generator_gradient(const L& loss, std::vector<double> real, std::vector<double> fake) {
  const GResult<double> r = run_g<B>(loss, real, fake);
  REQUIRE(std::isfinite(r.loss));
  auto value = [&] { return run_g<B>(loss, real, fake).loss; };
  for (std::size_t i = 0; i < fake.size(); ++i) {
    const double fd = central_difference(fake, i, value);
    INFO(L::name, ": d loss_G / d fake[", i, "] analytic ", r.d_fake[i], " finite-difference ", fd);
    CHECK(rel_error(r.d_fake[i], fd) < 1e-6);
  }
}

/// Naive log(1 + e^x), fine for the moderate logits it is used on.
double naive_softplus(double x) { return std::log(1.0 + std::exp(x)); }

// ---- conformance -----------------------------------------------------------------------

// Instantiating this for a backend asserts that every loss meets fg::Loss on it, one
// assertion per loss so that a failure names it.
template <class B>
struct Conformance {
  static_assert(fg::Loss<fg::loss::NonSaturating, B>, "NonSaturating must satisfy fg::Loss");
  static_assert(fg::Loss<fg::loss::Minimax, B>, "Minimax must satisfy fg::Loss");
  static_assert(fg::Loss<fg::loss::Wasserstein, B>, "Wasserstein must satisfy fg::Loss");
  static_assert(fg::Loss<fg::loss::LeastSquares, B>, "LeastSquares must satisfy fg::Loss");
  static_assert(fg::Loss<fg::loss::Hinge, B>, "Hinge must satisfy fg::Loss");
  static_assert(fg::Loss<fg::loss::RelativisticAverage, B>, "RelativisticAverage must satisfy fg::Loss");
};
template struct Conformance<RefF>;
template struct Conformance<RefD>;
template struct Conformance<CpuF>;
template struct Conformance<CpuD>;

static_assert(!fg::loss::NonSaturating::generator_uses_real && !fg::loss::Minimax::generator_uses_real &&
              !fg::loss::Wasserstein::generator_uses_real && !fg::loss::LeastSquares::generator_uses_real &&
              !fg::loss::Hinge::generator_uses_real && fg::loss::RelativisticAverage::generator_uses_real);

} // namespace

// ---- gradient checks (double) -----------------------------------------------------------

TEST_CASE_TEMPLATE("every loss's gradients match central finite differences", B, RefD, CpuD) {
  // Logits at least 0.1 from the hinge kinks (real = 1, fake = -1) and from the LeastSquares
  // targets, with both sides of each hinge represented.
  const std::vector<double> real{1.3, -0.7, 2.1, 0.4, -1.8};
  const std::vector<double> fake{-0.9, 0.6, -2.3, 1.7, 0.2};
  const std::vector<double> real1{0.3}, fake1{-0.4};
  // A wider spread, where the logistic terms are far from their linear region.
  const std::vector<double> real_wide{6.0, -4.5, 0.05, 3.2, -7.5, 1.15, 9.0};
  const std::vector<double> fake_wide{-6.5, 4.0, -0.35, 2.4, -9.0, 7.7, 0.55};
  for_each_loss([&](const auto& loss) {
    check_discriminator_gradient<B>(loss, real, fake);
    check_generator_gradient<B>(loss, real, fake);
    check_discriminator_gradient<B>(loss, real1, fake1);
    check_generator_gradient<B>(loss, real1, fake1);
    check_discriminator_gradient<B>(loss, real_wide, fake_wide);
    check_generator_gradient<B>(loss, real_wide, fake_wide);
  });
}

// ---- known values ------------------------------------------------------------------------

TEST_CASE_TEMPLATE("logistic losses at zero logits", B, RefF, RefD, CpuF, CpuD) {
  using S = typename B::scalar;
  const std::vector<S> zeros(4, S(0));
  const double log2 = std::log(2.0), n = 4.0;
  for (const auto& d :
       {run_d<B>(fg::loss::NonSaturating{}, zeros, zeros), run_d<B>(fg::loss::Minimax{}, zeros, zeros)}) {
    CHECK(close(d.loss, S(2 * log2), tol<S>()));
    for (S g : d.d_real) CHECK(close(g, S(-0.5 / n), tol<S>()));
    for (S g : d.d_fake) CHECK(close(g, S(0.5 / n), tol<S>()));
  }
  const auto ns = run_g<B>(fg::loss::NonSaturating{}, zeros, zeros);
  CHECK(close(ns.loss, S(log2), tol<S>()));
  for (S g : ns.d_fake) CHECK(close(g, S(-0.5 / n), tol<S>()));
  const auto mm = run_g<B>(fg::loss::Minimax{}, zeros, zeros);
  CHECK(close(mm.loss, S(-log2), tol<S>()));
  for (S g : mm.d_fake) CHECK(close(g, S(-0.5 / n), tol<S>()));
  // RaSGAN at equal logits: every relative logit is 0, so both losses are 2 log 2.
  const auto ra_d = run_d<B>(fg::loss::RelativisticAverage{}, zeros, zeros);
  const auto ra_g = run_g<B>(fg::loss::RelativisticAverage{}, zeros, zeros);
  CHECK(close(ra_d.loss, S(2 * log2), tol<S>()));
  CHECK(close(ra_g.loss, S(2 * log2), tol<S>()));
}

TEST_CASE_TEMPLATE("NonSaturating and Minimax at chosen logits", B, RefF, RefD, CpuF, CpuD) {
  using S = typename B::scalar;
  const std::vector<S> real{S(2), S(-1)}, fake{S(-3), S(0.5)};
  auto sp = naive_softplus;
  const auto d = run_d<B>(fg::loss::NonSaturating{}, real, fake);
  CHECK(close(d.loss, S((sp(-2) + sp(1)) / 2 + (sp(-3) + sp(0.5)) / 2), tol<S>()));
  const auto g = run_g<B>(fg::loss::NonSaturating{}, real, fake);
  CHECK(close(g.loss, S((sp(3) + sp(-0.5)) / 2), tol<S>()));
  const auto m = run_g<B>(fg::loss::Minimax{}, real, fake);
  CHECK(
      close(m.loss, S((std::log(1 - 1 / (1 + std::exp(3.0))) + std::log(1 - 1 / (1 + std::exp(-0.5)))) / 2), tol<S>()));
}

TEST_CASE_TEMPLATE("Wasserstein values", B, RefF, RefD, CpuF, CpuD) {
  using S = typename B::scalar;
  const std::vector<S> real{S(1), S(2), S(3)}, fake{S(-1), S(0), S(4)};
  const auto d = run_d<B>(fg::loss::Wasserstein{}, real, fake);
  CHECK(close(d.loss, S(1.0 - 2.0), tol<S>())); // mean fake 1, mean real 2
  for (S x : d.d_real) CHECK(close(x, S(-1.0 / 3), tol<S>()));
  for (S x : d.d_fake) CHECK(close(x, S(1.0 / 3), tol<S>()));
  const auto g = run_g<B>(fg::loss::Wasserstein{}, real, fake);
  CHECK(close(g.loss, S(-1), tol<S>()));
  for (S x : g.d_fake) CHECK(close(x, S(-1.0 / 3), tol<S>()));
}

TEST_CASE_TEMPLATE("LeastSquares values with default and custom targets", B, RefF, RefD, CpuF, CpuD) {
  using S = typename B::scalar;
  const std::vector<S> real{S(1), S(3)}, fake{S(-1), S(2)};
  SUBCASE("defaults a = 0, b = 1, c = 1") {
    const fg::loss::LeastSquares ls;
    CHECK(ls.config.a == 0.0);
    CHECK(ls.config.b == 1.0);
    CHECK(ls.config.c == 1.0);
    const auto d = run_d<B>(ls, real, fake);
    CHECK(close(d.loss, S(0.5 * (0 + 4) / 2 + 0.5 * (1 + 4) / 2), tol<S>()));
    CHECK(close(d.d_real[0], S(0), tol<S>()));
    CHECK(close(d.d_real[1], S(1), tol<S>()));
    CHECK(close(d.d_fake[0], S(-0.5), tol<S>()));
    CHECK(close(d.d_fake[1], S(1), tol<S>()));
    const auto g = run_g<B>(ls, real, fake);
    CHECK(close(g.loss, S(0.5 * (4 + 1) / 2), tol<S>()));
    CHECK(close(g.d_fake[0], S(-1), tol<S>()));
    CHECK(close(g.d_fake[1], S(0.5), tol<S>()));
  }
  SUBCASE("custom a = -1, b = 1, c = 0") {
    const fg::loss::LeastSquares ls{{-1.0, 1.0, 0.0}};
    const auto d = run_d<B>(ls, real, fake);
    CHECK(close(d.loss, S(0.5 * (0 + 4) / 2 + 0.5 * (0 + 9) / 2), tol<S>())); // 3.25
    CHECK(close(d.d_real[0], S(0), tol<S>()));
    CHECK(close(d.d_real[1], S(1), tol<S>()));
    CHECK(close(d.d_fake[0], S(0), tol<S>()));
    CHECK(close(d.d_fake[1], S(1.5), tol<S>()));
    const auto g = run_g<B>(ls, real, fake);
    CHECK(close(g.loss, S(0.5 * (1 + 4) / 2), tol<S>())); // 1.25
    CHECK(close(g.d_fake[0], S(-0.5), tol<S>()));
    CHECK(close(g.d_fake[1], S(1), tol<S>()));
  }
}

TEST_CASE_TEMPLATE("Hinge values, including the kinks", B, RefF, RefD, CpuF, CpuD) {
  using S = typename B::scalar;
  // real 0.5 and -1 inside the margin, 2 outside, 1 on the kink; fake -2 outside, 0.5 and 0
  // inside, -1 on the kink.
  const std::vector<S> real{S(0.5), S(2), S(-1), S(1)}, fake{S(-2), S(0.5), S(0), S(-1)};
  const auto d = run_d<B>(fg::loss::Hinge{}, real, fake);
  CHECK(close(d.loss, S((0.5 + 0 + 2 + 0) / 4 + (0 + 1.5 + 1 + 0) / 4), tol<S>()));
  const std::vector<double> want_real{-0.25, 0, -0.25, 0}, want_fake{0, 0.25, 0.25, 0};
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(close(d.d_real[i], S(want_real[i]), tol<S>()));
    CHECK(close(d.d_fake[i], S(want_fake[i]), tol<S>()));
  }
  // The subgradient at the kinks is exactly 0.
  CHECK(d.d_real[3] == S(0));
  CHECK(d.d_fake[3] == S(0));
  const auto g = run_g<B>(fg::loss::Hinge{}, real, fake);
  CHECK(close(g.loss, S(-(-2 + 0.5 + 0 - 1) / 4.0), tol<S>()));
  for (S x : g.d_fake) CHECK(close(x, S(-0.25), tol<S>()));
}

TEST_CASE_TEMPLATE("RelativisticAverage matches a naive host computation", B, RefF, RefD, CpuF, CpuD) {
  using S = typename B::scalar;
  const std::vector<double> real{1.5, -0.25, 0.75, 2.0, -1.0}, fake{-0.5, 0.3, -2.0, 1.1, 0.0};
  double mr = 0, mf = 0;
  for (double r : real) mr += r / 5;
  for (double f : fake) mf += f / 5;
  double want_d = 0, want_g = 0;
  for (std::size_t i = 0; i < 5; ++i) {
    want_d += (naive_softplus(-(real[i] - mf)) + naive_softplus(fake[i] - mr)) / 5;
    want_g += (naive_softplus(-(fake[i] - mr)) + naive_softplus(real[i] - mf)) / 5;
  }
  const std::vector<S> rs(real.begin(), real.end()), fs(fake.begin(), fake.end());
  const auto d = run_d<B>(fg::loss::RelativisticAverage{}, rs, fs);
  const auto g = run_g<B>(fg::loss::RelativisticAverage{}, rs, fs);
  CHECK(close(d.loss, S(want_d), tol<S>()));
  CHECK(close(g.loss, S(want_g), tol<S>()));
  // The means couple the batch: the critic's gradients through mr and mf have one sign.
  for (S x : d.d_real) CHECK(x < S(0));
  for (S x : d.d_fake) CHECK(x > S(0));
  for (S x : g.d_fake) CHECK(x < S(0));
}

// ---- stability ---------------------------------------------------------------------------

TEST_CASE_TEMPLATE("extreme logits give finite losses and gradients with the right limits", B, RefF, RefD, CpuF, CpuD) {
  using S = typename B::scalar;
  const std::vector<double> magnitudes =
      std::is_same_v<S, float> ? std::vector<double>{1e4, 1e30} : std::vector<double>{1e4, 1e30, 1e300};
  constexpr std::size_t n = 4;
  const double inv_n = 1.0 / n;
  for (double m : magnitudes) {
    CAPTURE(m);
    const S M = static_cast<S>(m);
    const std::vector<S> pos(n, M), neg(n, -M);
    // (critic right: real = +M, fake = -M) and (critic wrong: real = -M, fake = +M).
    auto check_finite_everywhere = [&](const auto& loss) {
      INFO(std::string(loss.name));
      for (const auto* r : {&pos, &neg})
        for (const auto* f : {&pos, &neg}) {
          const auto d = run_d<B>(loss, *r, *f);
          const auto g = run_g<B>(loss, *r, *f);
          CHECK(std::isfinite(d.loss));
          CHECK(all_finite(d.d_real));
          CHECK(all_finite(d.d_fake));
          CHECK(std::isfinite(g.loss));
          CHECK(all_finite(g.d_fake));
        }
    };
    // Limits shared by the logistic losses' critic.
    auto check_logistic_d = [&](const auto& loss) {
      const auto right = run_d<B>(loss, pos, neg);
      CHECK(close(right.loss, S(0), 0, 1e-30));
      for (S x : right.d_real) CHECK(close(x, S(0), 0, 1e-30));
      for (S x : right.d_fake) CHECK(close(x, S(0), 0, 1e-30));
      const auto wrong = run_d<B>(loss, neg, pos);
      CHECK(close(wrong.loss, S(2 * m), tol<S>()));
      for (S x : wrong.d_real) CHECK(close(x, S(-inv_n), tol<S>()));
      for (S x : wrong.d_fake) CHECK(close(x, S(inv_n), tol<S>()));
    };

    {
      INFO("NonSaturating");
      const fg::loss::NonSaturating loss;
      check_finite_everywhere(loss);
      check_logistic_d(loss);
      const auto rejected = run_g<B>(loss, pos, neg); // G's samples rejected: loss ~ M, gradient ~ -1/n
      CHECK(close(rejected.loss, M, tol<S>()));
      for (S x : rejected.d_fake) CHECK(close(x, S(-inv_n), tol<S>()));
      const auto accepted = run_g<B>(loss, neg, pos);
      CHECK(close(accepted.loss, S(0), 0, 1e-30));
      for (S x : accepted.d_fake) CHECK(close(x, S(0), 0, 1e-30));
    }
    {
      INFO("Minimax");
      const fg::loss::Minimax loss;
      check_finite_everywhere(loss);
      check_logistic_d(loss);
      const auto rejected = run_g<B>(loss, pos, neg); // saturated: loss ~ 0, gradient ~ 0
      CHECK(close(rejected.loss, S(0), 0, 1e-30));
      for (S x : rejected.d_fake) CHECK(close(x, S(0), 0, 1e-30));
      const auto accepted = run_g<B>(loss, neg, pos);
      CHECK(close(accepted.loss, -M, tol<S>()));
      for (S x : accepted.d_fake) CHECK(close(x, S(-inv_n), tol<S>()));
    }
    {
      INFO("Wasserstein");
      const fg::loss::Wasserstein loss;
      check_finite_everywhere(loss);
      const auto wrong = run_d<B>(loss, neg, pos);
      CHECK(close(wrong.loss, S(2 * m), tol<S>()));
      for (S x : wrong.d_real) CHECK(close(x, S(-inv_n), tol<S>()));
      for (S x : wrong.d_fake) CHECK(close(x, S(inv_n), tol<S>()));
      CHECK(close(run_g<B>(loss, neg, pos).loss, -M, tol<S>()));
    }
    {
      INFO("Hinge");
      const fg::loss::Hinge loss;
      check_finite_everywhere(loss);
      const auto right = run_d<B>(loss, pos, neg);
      CHECK(right.loss == S(0));
      for (S x : right.d_real) CHECK(x == S(0));
      for (S x : right.d_fake) CHECK(x == S(0));
      const auto wrong = run_d<B>(loss, neg, pos);
      CHECK(close(wrong.loss, S(2 * (1 + m)), tol<S>()));
      for (S x : wrong.d_real) CHECK(close(x, S(-inv_n), tol<S>()));
      for (S x : wrong.d_fake) CHECK(close(x, S(inv_n), tol<S>()));
      CHECK(close(run_g<B>(loss, pos, neg).loss, M, tol<S>()));
    }
    {
      INFO("LeastSquares");
      // The loss itself is ~M^2 / 2: representable for M = 1e4 (and 1e30 in double), not
      // beyond, where inf is the right answer rather than an instability.
      if (m * m / 2 < static_cast<double>(std::numeric_limits<S>::max())) {
        const fg::loss::LeastSquares loss;
        check_finite_everywhere(loss);
        const auto right = run_d<B>(loss, pos, neg);
        CHECK(close(right.loss, S(0.5 * (m - 1) * (m - 1) + 0.5 * m * m), 1e-5));
        for (S x : right.d_real) CHECK(close(x, S((m - 1) * inv_n), tol<S>()));
        for (S x : right.d_fake) CHECK(close(x, S(-m * inv_n), tol<S>()));
      }
    }
    {
      INFO("RelativisticAverage");
      const fg::loss::RelativisticAverage loss;
      check_finite_everywhere(loss);
      // Critic right: every relative logit is 2M on the right side.
      const auto right = run_d<B>(loss, pos, neg);
      CHECK(close(right.loss, S(0), 0, 1e-30));
      for (S x : right.d_real) CHECK(close(x, S(0), 0, 1e-30));
      for (S x : right.d_fake) CHECK(close(x, S(0), 0, 1e-30));
      const auto g = run_g<B>(loss, pos, neg); // both G terms ~ 2M, gradient -1/n direct - 1/n via mf
      CHECK(close(g.loss, S(4 * m), tol<S>()));
      for (S x : g.d_fake) CHECK(close(x, S(-2 * inv_n), tol<S>()));
      const auto wrong = run_d<B>(loss, neg, pos);
      CHECK(close(wrong.loss, S(4 * m), tol<S>()));
      for (S x : wrong.d_real) CHECK(close(x, S(-2 * inv_n), tol<S>()));
      for (S x : wrong.d_fake) CHECK(close(x, S(2 * inv_n), tol<S>()));
    }
  }
}

TEST_CASE_TEMPLATE("mixed extreme and moderate logits stay finite", B, RefF, RefD, CpuF, CpuD) {
  using S = typename B::scalar;
  const S big = std::is_same_v<S, float> ? S(1e30) : S(1e300);
  const std::vector<S> real{big, -big, S(0.5), S(1e4)}, fake{-big, S(-1e4), S(-0.5), big};
  for_each_loss([&](const auto& loss) {
    using L = std::decay_t<decltype(loss)>;
    INFO(std::string(L::name));
    if constexpr (std::is_same_v<L, fg::loss::LeastSquares>) return; // its value is ~big^2 here
    const auto d = run_d<B>(loss, real, fake);
    const auto g = run_g<B>(loss, real, fake);
    CHECK(std::isfinite(d.loss));
    CHECK(all_finite(d.d_real));
    CHECK(all_finite(d.d_fake));
    CHECK(std::isfinite(g.loss));
    CHECK(all_finite(g.d_fake));
  });
}

TEST_CASE_TEMPLATE("a NaN logit gives a NaN loss, so a NaN guard sees it", B, RefF, RefD, CpuF, CpuD) {
  using S = typename B::scalar;
  const S nan = std::numeric_limits<S>::quiet_NaN();
  const std::vector<S> ok{S(0.5), S(-2), S(3)};
  std::vector<S> bad = ok;
  bad[1] = nan;
  for_each_loss([&](const auto& loss) {
    using L = std::decay_t<decltype(loss)>;
    INFO(std::string(L::name));
    CHECK(std::isnan(run_d<B>(loss, bad, ok).loss));
    CHECK(std::isnan(run_d<B>(loss, ok, bad).loss));
    CHECK(std::isnan(run_g<B>(loss, ok, bad).loss));
    if constexpr (L::generator_uses_real) CHECK(std::isnan(run_g<B>(loss, bad, ok).loss));
  });
}

// ---- Minimax vs NonSaturating ------------------------------------------------------------

TEST_CASE_TEMPLATE("Minimax and NonSaturating share the critic; Minimax's generator saturates", B, RefF, RefD, CpuF,
                   CpuD) {
  using S = typename B::scalar;
  const std::vector<S> real{S(1.5), S(-0.5), S(3), S(0.25)}, fake{S(-1), S(-3), S(-6), S(-10)};
  const auto dn = run_d<B>(fg::loss::NonSaturating{}, real, fake);
  const auto dm = run_d<B>(fg::loss::Minimax{}, real, fake);
  CHECK(dn.loss == dm.loss);
  CHECK(dn.d_real == dm.d_real);
  CHECK(dn.d_fake == dm.d_fake);

  const auto gn = run_g<B>(fg::loss::NonSaturating{}, real, fake);
  const auto gm = run_g<B>(fg::loss::Minimax{}, real, fake);
  for (std::size_t i = 0; i < fake.size(); ++i) {
    CAPTURE(fake[i]);
    // Same direction: both push the fake logit up.
    CHECK(gn.d_fake[i] < S(0));
    CHECK(gm.d_fake[i] < S(0));
    // Different magnitude: sigma(f) / sigma(-f) = e^f, vanishing as f -> -inf.
    CHECK(std::fabs(gm.d_fake[i]) < std::fabs(gn.d_fake[i]));
    CHECK(close(gm.d_fake[i] / gn.d_fake[i], S(std::exp(static_cast<double>(fake[i]))), 1e-5));
    if (i > 0) CHECK(gm.d_fake[i] / gn.d_fake[i] < gm.d_fake[i - 1] / gn.d_fake[i - 1]);
  }
  // Where the critic rejects the fake outright, Minimax's gradient has all but vanished
  // while NonSaturating's is near its largest, -1/n.
  CHECK(std::fabs(gm.d_fake[3]) < 1e-4 * std::fabs(gn.d_fake[3]));
  CHECK(close(gn.d_fake[3], S(-0.25), 1e-4));
}

// ---- Cpu vs Reference in float ----------------------------------------------------------

TEST_CASE("float Cpu matches float Reference and double Reference on a large batch") {
  // Large enough for Cpu's parallel for_each (2^14) and several reduction chunks (4096).
  constexpr index_t n = 40000;
  std::vector<double> real_d(n), fake_d(n);
  fg::RandomStream rng{2024, 7, 0};
  RefD::fill_normal(n, real_d.data(), rng, 1.0, 3.0);
  RefD::fill_normal(n, fake_d.data(), rng, -1.0, 3.0);
  const std::vector<float> real(real_d.begin(), real_d.end()), fake(fake_d.begin(), fake_d.end());
  const std::vector<double> real_fd(real.begin(), real.end()), fake_fd(fake.begin(), fake.end());

  auto same_grads = [](const std::vector<float>& a, const std::vector<float>& b, double rel) {
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!close(a[i], b[i], rel, 1e-12)) return false;
    return true;
  };
  auto near_double = [](const std::vector<float>& a, const std::vector<double>& b, double rel) {
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!close(static_cast<double>(a[i]), b[i], rel, 1e-12)) return false;
    return true;
  };

  for_each_loss([&](const auto& loss) {
    using L = std::decay_t<decltype(loss)>;
    INFO(std::string(L::name));
    const auto dc = run_d<CpuF>(loss, real, fake);
    const auto dr = run_d<RefF>(loss, real, fake);
    const auto dd = run_d<RefD>(loss, real_fd, fake_fd);
    CAPTURE(dc.loss);
    CAPTURE(dr.loss);
    CAPTURE(dd.loss);
    // The loss is a float sum of 2n terms: Reference's single running sum drifts by ~1e-5
    // relative at this n, Cpu's chunked sum less; 1e-4 is float tolerance for both.
    CHECK(close(dc.loss, dr.loss, 1e-4));
    CHECK(same_grads(dc.d_real, dr.d_real, 1e-5));
    CHECK(same_grads(dc.d_fake, dr.d_fake, 1e-5));
    CHECK(close(static_cast<double>(dc.loss), dd.loss, 1e-4));
    CHECK(near_double(dc.d_real, dd.d_real, 1e-4));
    CHECK(near_double(dc.d_fake, dd.d_fake, 1e-4));

    const auto gc = run_g<CpuF>(loss, real, fake);
    const auto gr = run_g<RefF>(loss, real, fake);
    const auto gd = run_g<RefD>(loss, real_fd, fake_fd);
    CHECK(close(gc.loss, gr.loss, 1e-4));
    CHECK(same_grads(gc.d_fake, gr.d_fake, 1e-5));
    CHECK(close(static_cast<double>(gc.loss), gd.loss, 1e-4));
    CHECK(near_double(gc.d_fake, gd.d_fake, 1e-4));
  });
}

// ---- configuration and misuse ------------------------------------------------------------

TEST_CASE("LeastSquares rejects invalid targets, naming the field") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  auto field_of = [](fg::loss::LeastSquares::Config c) -> std::string {
    try {
      fg::loss::LeastSquares loss{c};
    } catch (const fg::config_error& e) {
      CHECK(std::string(e.what()).find(e.field()) != std::string::npos);
      return e.field();
    }
    return "(no error)";
  };
  CHECK(field_of({nan, 1.0, 1.0}) == "LeastSquares.a");
  CHECK(field_of({0.0, inf, 1.0}) == "LeastSquares.b");
  CHECK(field_of({0.0, 1.0, -inf}) == "LeastSquares.c");
  CHECK(field_of({1.0, 1.0, 1.0}) == "LeastSquares.a"); // equal real and fake targets
  CHECK(field_of({0.0, 1.0, 1.0}) == "(no error)");
  CHECK(field_of({-1.0, 1.0, 0.0}) == "(no error)");
  CHECK_THROWS_AS(fg::loss::LeastSquares({nan, 1.0, 1.0}), fg::config_error);
  CHECK_THROWS_AS(fg::loss::LeastSquares({nan, 1.0, 1.0}), fg::error);
}

TEST_CASE_TEMPLATE("an empty batch is a shape_error", B, RefD, CpuF) {
  using S = typename B::scalar;
  S x[2] = {S(0), S(0)}, d[2], w[4];
  for_each_loss([&](const auto& loss) {
    INFO(std::string(loss.name));
    CHECK_THROWS_AS(loss.template discriminator<B>(0, x, x, d, d, w), fg::shape_error);
    CHECK_THROWS_AS(loss.template generator<B>(0, x, x, d, w), fg::shape_error);
  });
}
