// LayerNorm: per-sample normalisation with a per-channel affine map, gradient checks of
// the backward and tangent passes (second derivatives of the normalisation), Cpu vs Reference.
#include "../support.hpp"

#include <forgery/layers/layer_norm.hpp>

#include <vector>

namespace {
using fg::index_t;

using Flat = fg::Sequential<fg::Input<5>, fg::Dense<4>, fg::LayerNorm<>, fg::Tanh, fg::Dense<3>>;
using Image = fg::Sequential<fg::Input<2, 3, 3>, fg::LayerNorm<>, fg::Tanh, fg::Flatten, fg::Dense<2>>;
using ImageOnly = fg::Sequential<fg::Input<3, 2, 2>, fg::LayerNorm<1e-3>>;

template <class Net, std::size_t I>
void randomise_affine(Net& net, std::uint64_t seed) {
  constexpr index_t c = std::tuple_element_t<I, typename Net::layers_type>::channels;
  const auto v = fg::test::normal_buffer<typename Net::scalar>(2 * c, seed, 7);
  auto* p = net.template layer_params<I>();
  for (index_t i = 0; i < c; ++i) {
    p[i] = 1 + v[i] / 2;
    p[c + i] = v[c + i];
  }
}

template <class Net>
void require_check(Net& net, index_t batch) {
  fg::testing::GradientCheckOptions opts;
  opts.batch = batch;
  const auto report = fg::testing::check_gradients(net, opts);
  INFO(report.summary());
  CHECK(report.passed());
  CHECK(report.dual_checked);
}

TEST_CASE_TEMPLATE("LayerNorm gradients and tangent pass match finite differences", B, FORGERY_DOUBLE_BACKENDS) {
  static_assert(fg::Network<Flat, B>::supports_dual);
  fg::test::require_gradients<Flat, B>(3, 3);
  fg::test::require_gradients<Image, B>(4, 2);
  fg::test::require_gradients<ImageOnly, B>(5, 3);
  {
    fg::Network<Flat, B> net;
    net.initialize(6);
    randomise_affine<decltype(net), 1>(net, 6);
    require_check(net, 3);
  }
  {
    fg::Network<Image, B> net;
    net.initialize(7);
    randomise_affine<decltype(net), 0>(net, 7);
    require_check(net, 2);
  }
  {
    // Alone, with a non-trivial affine map: the normalisation's own second derivatives
    // reach dQ/dx without a nonlinearity after it.
    fg::Network<ImageOnly, B> net;
    net.initialize(8);
    randomise_affine<decltype(net), 0>(net, 8);
    require_check(net, 3);
  }
}

TEST_CASE_TEMPLATE("LayerNorm on Cpu matches the Reference backend", S, FORGERY_SCALARS) {
  fg::test::compare_with_reference<Flat, S>(6);
  fg::test::compare_with_reference<Image, S>(3);
  using Wide = fg::Sequential<fg::Input<4, 16, 16>, fg::LayerNorm<>>;
  fg::test::compare_with_reference<Wide, S>(3);
}

TEST_CASE_TEMPLATE("LayerNorm gives each sample mean 0 and variance 1, then gamma and beta per channel", B,
                   FORGERY_ALL_BACKENDS) {
  using S = typename B::scalar;
  constexpr index_t C = 3, HW = 4, D = C * HW, N = 3;
  using Spec = fg::Sequential<fg::Input<C, 2, 2>, fg::LayerNorm<>>;
  fg::Network<Spec, B> net;
  net.initialize(1);
  for (index_t c = 0; c < C; ++c) {
    CHECK(net.params()[c] == 1);
    CHECK(net.params()[C + c] == 0);
  }
  auto x = fg::test::normal_buffer<S>(D * N, 2, 1);
  for (index_t i = 0; i < x.size(); ++i) x[i] = S(5) * x[i] + S(i / D); // sample j centred near j
  const double tol = sizeof(S) == 4 ? 1e-5 : 1e-12;

  std::vector<double> xhat(D * N);
  {
    const auto y = net.forward({x.data(), D, N});
    for (index_t j = 0; j < N; ++j) {
      double mean = 0, var = 0, xm = 0, xv = 0;
      for (index_t f = 0; f < D; ++f) {
        mean += y(f, j);
        xm += x[j * D + f];
      }
      mean /= D;
      xm /= D;
      for (index_t f = 0; f < D; ++f) {
        var += (y(f, j) - mean) * (y(f, j) - mean);
        xv += (x[j * D + f] - xm) * (x[j * D + f] - xm);
      }
      var /= D;
      xv /= D;
      CHECK(std::abs(mean) < tol);
      CHECK(var == doctest::Approx(xv / (xv + 1e-5)).epsilon(tol));
      for (index_t f = 0; f < D; ++f) xhat[j * D + f] = y(f, j);
    }
  }
  // gamma and beta apply per channel, shared by the channel's positions; eval is the same.
  const S gamma[C] = {S(2), S(-1), S(0.5)}, beta[C] = {S(1), S(0), S(-3)};
  for (index_t c = 0; c < C; ++c) {
    net.params()[c] = gamma[c];
    net.params()[C + c] = beta[c];
  }
  net.eval();
  const auto y = net.forward({x.data(), D, N});
  for (index_t j = 0; j < N; ++j)
    for (index_t f = 0; f < D; ++f) {
      const index_t c = f / HW;
      CHECK(y(f, j) == doctest::Approx(gamma[c] * xhat[j * D + f] + beta[c]).epsilon(tol));
    }
}

TEST_CASE("LayerNorm on a flat input has one gamma and beta per feature") {
  using Spec = fg::Sequential<fg::Input<4>, fg::LayerNorm<>>;
  using Net = fg::Network<Spec, fg::backend::Reference<double>>;
  static_assert(Net::param_count == 8);
  Net net;
  net.initialize(1);
  const std::vector<double> x{1, 2, 3, 4};
  for (int f = 0; f < 4; ++f) net.params()[f] = f + 1; // gamma = 1, 2, 3, 4
  net.params()[4 + 3] = 10;                            // beta_3
  const auto y = net.forward({x.data(), 4, 1});
  const double r = 1 / std::sqrt(1.25 + 1e-5); // var of 1..4 is 1.25
  CHECK(y(0, 0) == doctest::Approx(1 * -1.5 * r));
  CHECK(y(1, 0) == doctest::Approx(2 * -0.5 * r));
  CHECK(y(2, 0) == doctest::Approx(3 * 0.5 * r));
  CHECK(y(3, 0) == doctest::Approx(4 * 1.5 * r + 10));
}

} // namespace
