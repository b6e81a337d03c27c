// Upsample and AvgPool2d: shapes, hand-computed values, a direct-loop oracle and the adjoint
// identity, gradient checks (first order and tangent pass), Cpu vs Reference (bitwise for the
// layers alone, on 1 and 2 threads), and both inside a network with convolutions.
#include "../support.hpp"

#include <cstring>
#include <vector>

#include "forgery/layers/resample.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {
using fg::index_t;

static_assert(std::is_same_v<fg::Sequential<fg::Input<3, 4, 5>, fg::Upsample<>>::output_shape, fg::Shape<3, 8, 10>>);
static_assert(std::is_same_v<fg::Sequential<fg::Input<3, 4, 5>, fg::Upsample<3>>::output_shape, fg::Shape<3, 12, 15>>);
static_assert(std::is_same_v<fg::Sequential<fg::Input<3, 4, 6>, fg::AvgPool2d<>>::output_shape, fg::Shape<3, 2, 3>>);
static_assert(std::is_same_v<fg::Sequential<fg::Input<2, 6, 9>, fg::AvgPool2d<3>>::output_shape, fg::Shape<2, 2, 3>>);

using UpLayer = fg::Upsample<>::bind<fg::Shape<2, 3, 4>>::layer<fg::backend::Cpu<float>>;
using PoolLayer = fg::AvgPool2d<>::bind<fg::Shape<2, 4, 4>>::layer<fg::backend::Cpu<float>>;
static_assert(UpLayer::param_count == 0 && PoolLayer::param_count == 0);
static_assert(fg::TangentLayer<UpLayer> && fg::TangentLayer<PoolLayer>);

// The layers' maps written out as plain loops over (sample, channel, row, column).
template <index_t C, index_t H, index_t W, index_t F>
std::vector<double> direct_upsample(const double* x, index_t batch) {
  std::vector<double> y(static_cast<std::size_t>(batch * C * F * H * F * W));
  for (index_t j = 0; j < batch; ++j)
    for (index_t c = 0; c < C; ++c)
      for (index_t oy = 0; oy < F * H; ++oy)
        for (index_t ox = 0; ox < F * W; ++ox)
          y[static_cast<std::size_t>(((j * C + c) * F * H + oy) * F * W + ox)] =
              x[((j * C + c) * H + oy / F) * W + ox / F];
  return y;
}

template <index_t C, index_t H, index_t W, index_t K>
std::vector<double> direct_avgpool(const double* x, index_t batch) {
  constexpr index_t Ho = H / K, Wo = W / K;
  std::vector<double> y(static_cast<std::size_t>(batch * C * Ho * Wo));
  for (index_t j = 0; j < batch; ++j)
    for (index_t c = 0; c < C; ++c)
      for (index_t oy = 0; oy < Ho; ++oy)
        for (index_t ox = 0; ox < Wo; ++ox) {
          double acc = 0;
          for (index_t ky = 0; ky < K; ++ky)
            for (index_t kx = 0; kx < K; ++kx) acc += x[((j * C + c) * H + oy * K + ky) * W + ox * K + kx];
          y[static_cast<std::size_t>(((j * C + c) * Ho + oy) * Wo + ox)] = acc / (K * K);
        }
  return y;
}

double dot(const double* a, const double* b, index_t n) {
  double acc = 0;
  for (index_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

// Forward against the oracle, and backward as the adjoint: <A x, dy> = <x, A^T dy>.
template <class Spec, class Oracle>
void check_against_direct(Oracle oracle, index_t batch) {
  constexpr index_t nin = Spec::input_shape::size, nout = Spec::output_shape::size;
  fg::Network<Spec, fg::backend::Reference<double>> net;
  const auto x = fg::test::normal_buffer<double>(nin * batch, 61);
  const auto dy = fg::test::normal_buffer<double>(nout * batch, 62);
  const auto y = net.forward({x.data(), nin, batch});
  const std::vector<double> expected = oracle(x.data(), batch);
  REQUIRE(static_cast<std::size_t>(y.size()) == expected.size());
  CHECK(fg::test::max_rel_diff(y.data(), expected.data(), y.size()) < 1e-15);
  const auto dx = net.backward({dy.data(), nout, batch});
  CHECK(dot(y.data(), dy.data(), y.size()) == doctest::Approx(dot(x.data(), dx.data(), dx.size())).epsilon(1e-12));
}

// Both layers are linear in each value the checker perturbs, so central differences are exact
// for any step: a large one leaves only rounding (as for Conv2d).
template <class Spec, class B>
void require_exact_gradients(std::uint64_t seed, index_t batch) {
  fg::Network<Spec, B> net;
  net.initialize(seed);
  fg::testing::GradientCheckOptions opts;
  opts.batch = batch;
  opts.step = 1e-3;
  opts.tolerance = 1e-7;
  const auto report = fg::testing::check_gradients(net, opts);
  INFO(report.summary());
  CHECK(report.passed());
  CHECK(report.dual_checked);
}

TEST_CASE_TEMPLATE("Upsample repeats each value over a 2 x 2 block; its backward sums the block", B,
                   FORGERY_ALL_BACKENDS) {
  using S = typename B::scalar;
  fg::Network<fg::Sequential<fg::Input<1, 2, 2>, fg::Upsample<>>, B> net;
  const S x[] = {1, 2, 3, 4};
  const auto y = net.forward({x, 4, 1});
  const S expected[] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
  REQUIRE(y.features() == 16);
  CHECK(std::equal(std::begin(expected), std::end(expected), y.data()));
  S dy[16];
  for (int i = 0; i < 16; ++i) dy[i] = S(i);
  const auto dx = net.backward({dy, 16, 1});
  // dx(0, 0) = dy 0 + 1 + 4 + 5, dx(0, 1) = 2 + 3 + 6 + 7, dx(1, 0) = 8 + 9 + 12 + 13, ...
  const S expected_dx[] = {10, 18, 42, 50};
  CHECK(std::equal(std::begin(expected_dx), std::end(expected_dx), dx.data()));
}

TEST_CASE_TEMPLATE("AvgPool2d averages each 2 x 2 block; its backward spreads a quarter", B, FORGERY_ALL_BACKENDS) {
  using S = typename B::scalar;
  fg::Network<fg::Sequential<fg::Input<1, 4, 4>, fg::AvgPool2d<>>, B> net;
  S x[16];
  for (int i = 0; i < 16; ++i) x[i] = S(i);
  const auto y = net.forward({x, 16, 1});
  const S expected[] = {2.5, 4.5, 10.5, 12.5}; // (0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4, ...
  REQUIRE(y.features() == 4);
  CHECK(std::equal(std::begin(expected), std::end(expected), y.data()));
  const S dy[] = {4, 8, 12, 16};
  const auto dx = net.backward({dy, 4, 1});
  const S expected_dx[] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
  CHECK(std::equal(std::begin(expected_dx), std::end(expected_dx), dx.data()));
}

TEST_CASE("Upsample and AvgPool2d match direct loops, and backward is their adjoint") {
  using fg::Input, fg::Sequential;
  check_against_direct<Sequential<Input<2, 3, 5>, fg::Upsample<>>>(direct_upsample<2, 3, 5, 2>, 3);
  check_against_direct<Sequential<Input<3, 2, 4>, fg::Upsample<3>>>(direct_upsample<3, 2, 4, 3>, 2);
  check_against_direct<Sequential<Input<1, 3, 3>, fg::Upsample<1>>>(direct_upsample<1, 3, 3, 1>, 2);
  check_against_direct<Sequential<Input<2, 4, 6>, fg::AvgPool2d<>>>(direct_avgpool<2, 4, 6, 2>, 3);
  check_against_direct<Sequential<Input<3, 6, 9>, fg::AvgPool2d<3>>>(direct_avgpool<3, 6, 9, 3>, 2);
  check_against_direct<Sequential<Input<2, 5, 5>, fg::AvgPool2d<5>>>(direct_avgpool<2, 5, 5, 5>, 2);
}

TEST_CASE_TEMPLATE("Upsample and AvgPool2d gradients and tangent pass match finite differences", B,
                   FORGERY_DOUBLE_BACKENDS) {
  using fg::Input, fg::Sequential, fg::Upsample, fg::AvgPool2d;
  SUBCASE("Upsample<2>") { require_exact_gradients<Sequential<Input<2, 3, 4>, Upsample<>>, B>(1, 2); }
  SUBCASE("Upsample<3>") { require_exact_gradients<Sequential<Input<1, 2, 3>, Upsample<3>>, B>(2, 3); }
  SUBCASE("AvgPool2d<2>") { require_exact_gradients<Sequential<Input<2, 4, 6>, AvgPool2d<>>, B>(3, 2); }
  SUBCASE("AvgPool2d<3>") { require_exact_gradients<Sequential<Input<2, 6, 3>, AvgPool2d<3>>, B>(4, 3); }
  SUBCASE("between convolutions, with a nonlinearity") {
    fg::test::require_gradients<
        Sequential<Input<1, 6, 6>, fg::Conv2d<2, 3, 1, 1>, AvgPool2d<>, fg::Tanh, Upsample<>, fg::Conv2d<1, 3, 1, 1>>,
        B>(5, 2);
  }
}

using ConvStack = fg::Sequential<fg::Input<2, 8, 8>, fg::Conv2d<4, 3, 1, 1>, fg::AvgPool2d<>, fg::LeakyReLU<>,
                                 fg::Upsample<>, fg::Conv2d<1, 3, 1, 1>>;
static_assert(std::is_same_v<ConvStack::output_shape, fg::Shape<1, 8, 8>>);

TEST_CASE_TEMPLATE("Upsample and AvgPool2d on Cpu match the Reference backend", S, FORGERY_SCALARS) {
  fg::test::compare_with_reference<ConvStack, S>(3);
  // Large enough for the Cpu loops to fork (rows x work >= 2^14).
  fg::test::compare_with_reference<fg::Sequential<fg::Input<4, 16, 16>, fg::Upsample<>, fg::AvgPool2d<4>>, S>(5);
}

// Each output value is computed by one index in a fixed order, so the Cpu backend on any thread
// count gives the Reference backend's bits.
template <class Spec, class S>
void require_same_bits_as_reference(index_t batch) {
  constexpr index_t nin = Spec::input_shape::size, nout = Spec::output_shape::size;
  const auto x = fg::test::normal_buffer<S>(nin * batch, 71);
  const auto tx = fg::test::normal_buffer<S>(nin * batch, 72);
  const auto dy = fg::test::normal_buffer<S>(nout * batch, 73);
  const auto dty = fg::test::normal_buffer<S>(nout * batch, 74);
  auto run = [&]<class B>(B) {
    fg::Network<Spec, B> net;
    std::vector<S> out;
    auto keep = [&](fg::ConstBatchView<S> v) { out.insert(out.end(), v.data(), v.data() + v.size()); };
    keep(net.forward({x.data(), nin, batch}));
    keep(net.backward({dy.data(), nout, batch}));
    const auto [y, ty] = net.forward_dual({x.data(), nin, batch}, {tx.data(), nin, batch});
    keep(ty);
    const auto [gx, gtx] = net.backward_dual({dy.data(), nout, batch}, {dty.data(), nout, batch});
    keep(gx);
    keep(gtx);
    return out;
  };
  const std::vector<S> ref = run(fg::backend::Reference<S>{});
#if defined(_OPENMP)
  const int saved = omp_get_max_threads();
  for (const int threads : {1, 2}) {
    omp_set_num_threads(threads);
    const std::vector<S> cpu = run(fg::backend::Cpu<S>{});
    REQUIRE(cpu.size() == ref.size());
    CHECK(std::memcmp(cpu.data(), ref.data(), ref.size() * sizeof(S)) == 0);
  }
  omp_set_num_threads(saved);
#else
  const std::vector<S> cpu = run(fg::backend::Cpu<S>{});
  CHECK(std::memcmp(cpu.data(), ref.data(), ref.size() * sizeof(S)) == 0);
#endif
}

TEST_CASE_TEMPLATE("Upsample and AvgPool2d on Cpu give the Reference bits on 1 and 2 threads", S, FORGERY_SCALARS) {
  require_same_bits_as_reference<fg::Sequential<fg::Input<4, 16, 16>, fg::Upsample<>>, S>(9);
  require_same_bits_as_reference<fg::Sequential<fg::Input<4, 32, 32>, fg::AvgPool2d<>>, S>(9);
  require_same_bits_as_reference<fg::Sequential<fg::Input<3, 18, 18>, fg::AvgPool2d<3>, fg::Upsample<3>>, S>(9);
}

TEST_CASE_TEMPLATE("a network with AvgPool2d and Upsample runs every pass", B, FORGERY_ALL_BACKENDS) {
  using S = typename B::scalar;
  // The resampling layer first: its input gradient is the network's, which Grad::params skips.
  using Spec = fg::Sequential<fg::Input<2, 8, 8>, fg::AvgPool2d<>, fg::Conv2d<3, 3, 1, 1>, fg::Tanh, fg::Upsample<>>;
  static_assert(fg::Network<Spec, B>::supports_dual && fg::Network<Spec, B>::param_count > 0);
  constexpr index_t nin = Spec::input_shape::size, nout = Spec::output_shape::size, batch = 4;
  const auto x = fg::test::normal_buffer<S>(nin * batch, 81);
  const auto tx = fg::test::normal_buffer<S>(nin * batch, 82);
  const auto dy = fg::test::normal_buffer<S>(nout * batch, 83);
  const auto dty = fg::test::normal_buffer<S>(nout * batch, 84);
  const fg::ConstBatchView<S> xv(x.data(), nin, batch), tv(tx.data(), nin, batch), dyv(dy.data(), nout, batch),
      dtv(dty.data(), nout, batch);
  fg::Network<Spec, B> net;
  net.initialize(8);
  auto copy = [](fg::ConstBatchView<S> v) { return std::vector<S>(v.data(), v.data() + v.size()); };
  auto grads = [&] { return std::vector<S>(net.grads(), net.grads() + net.param_count); };
  auto same = [](const std::vector<S>& a, const std::vector<S>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(S)) == 0;
  };

  // backward: parameters only (an empty dx for the pooling layer), input only (a null
  // gradient pointer), both.
  net.forward(xv);
  net.zero_grad();
  CHECK(net.backward(dyv, fg::Grad::params).empty());
  const std::vector<S> g_params = grads();
  net.zero_grad();
  const std::vector<S> dx_input = copy(net.backward(dyv, fg::Grad::input));
  CHECK(std::all_of(net.grads(), net.grads() + net.param_count, [](S v) { return v == S(0); }));
  const std::vector<S> dx_both = copy(net.backward(dyv));
  CHECK(same(g_params, grads()));
  CHECK(same(dx_input, dx_both));

  // forward_tangent from the cached activations gives forward_dual's tangent.
  const auto [y_dual, ty_dual] = net.forward_dual(xv, tv);
  const std::vector<S> ty = copy(ty_dual);
  net.forward(xv);
  CHECK(same(copy(net.forward_tangent(tv).second), ty));

  // backward_dual with and without the input gradients.
  net.forward_dual(xv, tv);
  net.zero_grad();
  CHECK(net.backward_dual(dyv, dtv, fg::Grad::params).first.empty());
  const std::vector<S> gd_params = grads();
  net.zero_grad();
  const auto [gx, gtx] = net.backward_dual(dyv, dtv);
  CHECK(same(gd_params, grads()));
  CHECK(gx.size() == nin * batch);
  CHECK(gtx.size() == nin * batch);
}

} // namespace
