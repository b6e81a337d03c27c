// SelfAttention: the forward pass against a direct computation (double loops over positions),
// the identity at initialisation, gradient checks of the backward and tangent passes (with
// gamma non-zero, where the attention branch is visible), Cpu vs Reference, bitwise
// determinism across thread counts, the cached forward values, spectral normalisation of the
// projections, and GradientPenalty's parameter gradient in a small image critic.
#include "../support.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include <forgery/layers/conv2d.hpp>
#include <forgery/layers/self_attention.hpp>
#include <forgery/penalty/penalty.hpp>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {
using fg::index_t;

// The bound layer type at position I of a network.
template <class Net, std::size_t I>
using layer_at = std::tuple_element_t<I, typename Net::layers_type>;

/// Sets layer I's gamma (the attention branch is invisible at its initial 0).
template <class Net, std::size_t I>
void set_gamma(Net& net, double gamma) {
  using L = layer_at<Net, I>;
  using S = typename Net::scalar;
  const S g = static_cast<S>(gamma);
  Net::backend::to_device(1, &g, net.template layer_params<I>() + L::gamma_offset);
}

/// Every parameter from N(0, sigma^2), gamma included.
template <class Net>
void randomise(Net& net, double sigma, std::uint64_t seed) {
  using B = typename Net::backend;
  using S = typename Net::scalar;
  fg::RandomStream rng{seed, 11, 0};
  B::fill_normal(Net::param_count, net.params(), rng, S(0), static_cast<S>(sigma));
  net.zero_grad();
}

/// y = x + gamma Wo (A V) per sample, with the layer's documented parameter layout, in
/// double, position by position.
template <class L, class S>
std::vector<double> direct_attention(const S* p, const S* x, index_t batch) {
  constexpr index_t C = L::channels, P = L::pixels, Ck = L::key_channels, Cv = L::value_channels;
  auto wq = [&](index_t o, index_t c) { return double(p[L::query_offset + o * C + c]); };
  auto wk = [&](index_t o, index_t c) { return double(p[L::key_offset + o * C + c]); };
  auto wv = [&](index_t o, index_t c) { return double(p[L::value_offset + o * C + c]); };
  auto wo = [&](index_t o, index_t i) { return double(p[L::output_offset + o * Cv + i]); };
  const double gamma = p[L::gamma_offset];
  std::vector<double> y(static_cast<std::size_t>(C * P * batch));
  for (index_t j = 0; j < batch; ++j) {
    const S* xj = x + j * C * P;
    auto xv = [&](index_t c, index_t pos) { return double(xj[c * P + pos]); };
    std::vector<double> q(P * Ck, 0), k(P * Ck, 0), v(P * Cv, 0);
    for (index_t pos = 0; pos < P; ++pos) {
      for (index_t o = 0; o < Ck; ++o)
        for (index_t c = 0; c < C; ++c) {
          q[pos * Ck + o] += wq(o, c) * xv(c, pos);
          k[pos * Ck + o] += wk(o, c) * xv(c, pos);
        }
      for (index_t o = 0; o < Cv; ++o)
        for (index_t c = 0; c < C; ++c) v[pos * Cv + o] += wv(o, c) * xv(c, pos);
    }
    for (index_t out = 0; out < P; ++out) {
      std::vector<double> s(P);
      for (index_t i = 0; i < P; ++i) {
        s[i] = 0;
        for (index_t o = 0; o < Ck; ++o) s[i] += q[out * Ck + o] * k[i * Ck + o];
      }
      const double top = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (double& e : s) sum += (e = std::exp(e - top));
      std::vector<double> o(Cv, 0);
      for (index_t i = 0; i < P; ++i)
        for (index_t c = 0; c < Cv; ++c) o[c] += s[i] / sum * v[i * Cv + c];
      for (index_t c = 0; c < C; ++c) {
        double acc = 0;
        for (index_t i = 0; i < Cv; ++i) acc += wo(c, i) * o[i];
        y[static_cast<std::size_t>((j * C + c) * P + out)] = xv(c, out) + gamma * acc;
      }
    }
  }
  return y;
}

template <class Spec, class B>
void check_against_direct(index_t batch, std::uint64_t seed) {
  using S = typename B::scalar;
  using Net = fg::Network<Spec, B>;
  using L = layer_at<Net, 0>;
  Net net;
  randomise(net, 0.6, seed);
  set_gamma<Net, 0>(net, 1.0);
  constexpr index_t nin = Spec::input_shape::size;
  auto x = fg::test::normal_buffer<S>(nin * batch, seed, 1);
  for (index_t i = 0; i < x.size(); ++i) x[i] *= S(1.5); // scores of a few units: a peaked softmax
  const auto y = net.forward({x.data(), nin, batch});
  const auto expected = direct_attention<L>(net.params(), x.data(), batch);
  double worst = 0, moved = 0;
  INFO("seed " << seed);
  for (index_t i = 0; i < y.size(); ++i) {
    worst = std::max(worst, std::abs(y.data()[i] - expected[static_cast<std::size_t>(i)]) /
                                std::max(1.0, std::abs(expected[static_cast<std::size_t>(i)])));
    moved = std::max(moved, std::abs(expected[static_cast<std::size_t>(i)] - x[i]));
  }
  CHECK(worst < (sizeof(S) == 4 ? 1e-5 : 1e-12));
  CHECK(moved > 0.1); // the attention branch changed the output
}

TEST_CASE_TEMPLATE("SelfAttention's forward pass matches a direct computation over positions", B,
                   FORGERY_ALL_BACKENDS) {
  // Ck = 2, Cv = 8; Ck = 3, Cv = 6; and channel counts the divisors do not divide.
  check_against_direct<fg::Sequential<fg::Input<16, 3, 4>, fg::SelfAttention<>>, B>(3, 1);
  check_against_direct<fg::Sequential<fg::Input<6, 2, 3>, fg::SelfAttention<2, 1>>, B>(2, 2);
  check_against_direct<fg::Sequential<fg::Input<10, 2, 2>, fg::SelfAttention<4, 3>>, B>(3, 3);
  check_against_direct<fg::Sequential<fg::Input<8, 1, 1>, fg::SelfAttention<>>, B>(2, 4); // one position
}

TEST_CASE_TEMPLATE("SelfAttention starts as the identity with each projection drawn by the scheme", B,
                   FORGERY_ALL_BACKENDS) {
  using S = typename B::scalar;
  using Spec = fg::Sequential<fg::Input<16, 3, 3>, fg::SelfAttention<>>;
  using Net = fg::Network<Spec, B>;
  using L = layer_at<Net, 0>;
  static_assert(L::key_channels == 2 && L::value_channels == 8);
  static_assert(L::param_count == 16 * 2 + 16 * 2 + 16 * 8 + 8 * 16 + 1);
  static_assert(fg::DualLayer<L> && fg::TangentLayer<L>);
  Net net;
  net.initialize(3);
  CHECK(net.params()[L::gamma_offset] == 0);
  for (const auto& pr : L::projections) {
    const double bound = std::sqrt(6.0 / static_cast<double>(pr.in + pr.out)); // glorot_uniform's
    double largest = 0;
    for (index_t i = 0; i < pr.in * pr.out; ++i)
      largest = std::max(largest, std::abs(double(net.params()[pr.offset + i])));
    CHECK(largest <= bound);
    CHECK(largest > 0.5 * bound);
  }
  constexpr index_t n = 2, nin = Spec::input_shape::size;
  const auto x = fg::test::normal_buffer<S>(nin * n, 4);
  const auto y = net.forward({x.data(), nin, n});
  CHECK(std::memcmp(y.data(), x.data(), sizeof(S) * static_cast<std::size_t>(y.size())) == 0);
  // The gradient at gamma = 0 reaches gamma and nothing else of the attention branch.
  const auto dy = fg::test::normal_buffer<S>(nin * n, 5);
  net.zero_grad();
  net.backward({dy.data(), nin, n});
  CHECK(std::abs(double(net.grads()[L::gamma_offset])) > 1e-3);
  for (index_t i = 0; i < L::gamma_offset; ++i) CHECK(net.grads()[i] == 0);
}

template <class Net>
void require_check(Net& net, index_t batch) {
  fg::testing::GradientCheckOptions opts;
  opts.batch = batch;
  // Q = s . y + q . ty holds the residual terms s . x + q . tx, large beside the attention's
  // share: at the default step (1e-6) the differences' round-off (eps |Q| / h) comes within
  // a factor of two of the tolerance on the smaller components. At 1e-5 the truncation
  // error (h^2 |Q'''|) is still far below it.
  opts.step = 1e-5;
  const auto report = fg::testing::check_gradients(net, opts);
  INFO(report.summary());
  CHECK(report.passed());
  CHECK(report.dual_checked);
}

/// The gradient check with gamma set to `gamma` (layer I), and the query weights' gradient
/// non-zero (the check sees the attention itself, not only the residual path).
template <class Spec, class B, std::size_t I>
void check_with_gamma(std::uint64_t seed, index_t batch, double gamma) {
  using Net = fg::Network<Spec, B>;
  using L = layer_at<Net, I>;
  INFO("seed " << seed << ", gamma " << gamma);
  Net net;
  net.initialize(seed);
  set_gamma<Net, I>(net, gamma);
  require_check(net, batch);
  constexpr index_t nin = Spec::input_shape::size, nout = Spec::output_shape::size;
  const auto x = fg::test::normal_buffer<double>(nin * batch, seed, 1);
  const auto dy = fg::test::normal_buffer<double>(nout * batch, seed, 2);
  net.zero_grad();
  net.forward({x.data(), nin, batch});
  net.backward({dy.data(), nout, batch});
  double wq = 0;
  for (index_t i = 0; i < L::key_offset; ++i) wq = std::max(wq, std::abs(net.grads()[Net::param_offsets[I] + i]));
  CHECK(wq > 1e-4);
}

TEST_CASE_TEMPLATE("SelfAttention gradients and tangent pass match finite differences", B, FORGERY_DOUBLE_BACKENDS) {
  using Alone = fg::Sequential<fg::Input<8, 3, 3>, fg::SelfAttention<4, 2>>;
  using Chain = fg::Sequential<fg::Input<2, 4, 4>, fg::Conv2d<8, 3, 1, 1>, fg::Tanh, fg::SelfAttention<>, fg::Flatten,
                               fg::Dense<2>>;
  using Uneven = fg::Sequential<fg::Input<10, 2, 3>, fg::SelfAttention<3, 4>>;
  using Spectral = fg::Sequential<fg::Input<8, 3, 3>, fg::SelfAttention<4, 2, true>, fg::Tanh>;
  static_assert(fg::Network<Chain, B>::supports_dual);
  check_with_gamma<Alone, B, 0>(1, 3, 0.8);
  check_with_gamma<Alone, B, 0>(2, 2, -1.5);
  check_with_gamma<Chain, B, 2>(3, 2, 1.2);
  check_with_gamma<Uneven, B, 0>(4, 3, 0.6);
  check_with_gamma<Spectral, B, 0>(5, 2, 0.9);
  {
    // Every parameter random: larger scores, a more peaked softmax.
    fg::Network<Alone, B> net;
    randomise(net, 0.7, 6);
    require_check(net, 2);
  }
}

/// compare_with_reference (support.hpp) with gamma non-zero: Cpu and Reference from the same
/// seed, forward, backward and the tangent pass.
template <class Spec, class S, std::size_t gamma_layer>
void compare_cpu_reference(index_t batch, std::uint64_t seed) {
  fg::Network<Spec, fg::backend::Cpu<S>> fast;
  fg::Network<Spec, fg::backend::Reference<S>> ref;
  fast.initialize(seed);
  ref.initialize(seed);
  // Weights of 0.15 keep the scores of order 1: a softmax saturated by large scores makes
  // the gradients ill-conditioned, and float round-off then exceeds the tolerance.
  randomise(fast, 0.15, seed);
  set_gamma<decltype(fast), gamma_layer>(fast, 0.7);
  std::copy(fast.params(), fast.params() + fast.param_count, ref.params());
  // Spectral: u and v were drawn for the initial weights; converge them to the new ones
  // (far from the top singular pair, u^T W v can be near 0 and W / sigma huge).
  for (int i = 0; i < 50; ++i) {
    fast.after_step();
    ref.after_step();
  }
  constexpr index_t nin = Spec::input_shape::size, nout = Spec::output_shape::size;
  const auto x = fg::test::normal_buffer<S>(nin * batch, seed, 1);
  const auto dy = fg::test::normal_buffer<S>(nout * batch, seed, 2);
  const auto t = fg::test::normal_buffer<S>(nin * batch, seed, 3);
  const auto q = fg::test::normal_buffer<S>(nout * batch, seed, 4);
  const fg::ConstBatchView<S> xv(x.data(), nin, batch), dyv(dy.data(), nout, batch);
  const fg::ConstBatchView<S> tv(t.data(), nin, batch), qv(q.data(), nout, batch);
  const double tol = fg::test::backend_tolerance<S>();
  using fg::test::max_rel_diff;

  const auto yf = fast.forward(xv);
  const auto yr = ref.forward(xv);
  CHECK(max_rel_diff(yf.data(), yr.data(), yf.size()) < tol);
  fast.zero_grad();
  ref.zero_grad();
  const auto df = fast.backward(dyv);
  const auto dr = ref.backward(dyv);
  CHECK(max_rel_diff(df.data(), dr.data(), df.size()) < tol);
  CHECK(max_rel_diff(fast.grads(), ref.grads(), fast.param_count) < tol);
  const auto [y1, ty1] = fast.forward_dual(xv, tv);
  const auto [y2, ty2] = ref.forward_dual(xv, tv);
  CHECK(max_rel_diff(ty1.data(), ty2.data(), ty1.size()) < tol);
  fast.zero_grad();
  ref.zero_grad();
  const auto [gx1, gt1] = fast.backward_dual(dyv, qv);
  const auto [gx2, gt2] = ref.backward_dual(dyv, qv);
  CHECK(max_rel_diff(gx1.data(), gx2.data(), gx1.size()) < tol);
  CHECK(max_rel_diff(gt1.data(), gt2.data(), gt1.size()) < tol);
  // The second-order parameter gradients sum products over every position pair of the
  // batch, twice over (scores and their tangents); in float the AVX-512 tiles' summation
  // order against Reference's sequential one leaves up to 2.3e-5 here (double: below 1e-12,
  // the same check), so float gets 5e-5.
  const double tol2 = sizeof(S) == 4 ? 5e-5 : tol;
  CHECK(max_rel_diff(fast.grads(), ref.grads(), fast.param_count) < tol2);
}

TEST_CASE_TEMPLATE("SelfAttention on Cpu matches the Reference backend", S, FORGERY_SCALARS) {
  compare_cpu_reference<fg::Sequential<fg::Input<8, 3, 3>, fg::SelfAttention<4, 2>>, S, 0>(3, 1);
  // 64 positions, 32 channels: the GEMMs take the packed, tiled paths.
  compare_cpu_reference<fg::Sequential<fg::Input<32, 8, 8>, fg::SelfAttention<>>, S, 0>(4, 2);
  compare_cpu_reference<fg::Sequential<fg::Input<2, 6, 6>, fg::Conv2d<16, 3, 1, 1>, fg::LeakyReLU<>,
                                       fg::SelfAttention<8, 2, true>, fg::Flatten, fg::Dense<3>>,
                        S, 2>(3, 3);
}

TEST_CASE("forward_tangent reuses the forward pass and equals forward_dual; a pass on another input recomputes") {
  using B = fg::backend::Cpu<double>;
  using Spec = fg::Sequential<fg::Input<8, 3, 3>, fg::SelfAttention<4, 2>>;
  constexpr index_t n = 3, nin = Spec::input_shape::size;
  fg::Network<Spec, B> net;
  randomise(net, 0.5, 7);
  const auto x = fg::test::normal_buffer<double>(nin * n, 8, 1);
  const auto x2 = fg::test::normal_buffer<double>(nin * n, 8, 2);
  const auto t = fg::test::normal_buffer<double>(nin * n, 8, 3);
  const auto s = fg::test::normal_buffer<double>(nin * n, 8, 4);
  const auto q = fg::test::normal_buffer<double>(nin * n, 8, 5);
  const fg::ConstBatchView<double> xv(x.data(), nin, n), tv(t.data(), nin, n), sv(s.data(), nin, n),
      qv(q.data(), nin, n);
  auto copy = [](fg::ConstBatchView<double> v) { return std::vector<double>(v.data(), v.data() + v.size()); };

  const auto [yd, tyd] = net.forward_dual(xv, tv);
  const auto ty_dual = copy(tyd);
  net.zero_grad();
  const auto [gx_d, gt_d] = net.backward_dual(sv, qv);
  const auto gx_dual = copy(gx_d), gt_dual = copy(gt_d);
  const std::vector<double> g_dual(net.grads(), net.grads() + net.param_count);

  // The penalties' order: forward, an input-only backward, forward_tangent, backward_dual.
  net.forward(xv);
  net.backward(sv, fg::Grad::input);
  const auto [yt, tyt] = net.forward_tangent(tv);
  CHECK(copy(tyt) == ty_dual);
  net.zero_grad();
  const auto [gx_t, gt_t] = net.backward_dual(sv, qv);
  CHECK(copy(gx_t) == gx_dual);
  CHECK(copy(gt_t) == gt_dual);
  CHECK(std::vector<double>(net.grads(), net.grads() + net.param_count) == g_dual);

  // The bound layer called directly: a backward on x after a forward on x2 recomputes x's
  // attention instead of using x2's.
  using L = layer_at<fg::Network<Spec, B>, 0>;
  L layer, fresh;
  fg::Context ctx;
  std::vector<double> y(static_cast<std::size_t>(nin * n)), gx1(y.size()), gx2(y.size());
  std::vector<double> g1(L::param_count, 0.0), g2(L::param_count, 0.0);
  const double* p = net.params();
  fresh.forward(p, xv, {y.data(), nin, n}, ctx);
  fresh.backward(p, g1.data(), xv, {y.data(), nin, n}, sv, {gx1.data(), nin, n});
  layer.forward(p, xv, {y.data(), nin, n}, ctx);
  layer.forward(p, {x2.data(), nin, n}, {y.data(), nin, n}, ctx);
  layer.backward(p, g2.data(), xv, {y.data(), nin, n}, sv, {gx2.data(), nin, n});
  CHECK(gx1 == gx2);
  CHECK(g1 == g2);
}

#if defined(_OPENMP)
TEST_CASE_TEMPLATE("SelfAttention on Cpu is bitwise identical with 1 and 2 threads", S, FORGERY_SCALARS) {
  // The projections' GEMMs (m = 512 rows) take the parallel tiled path; softmax over 512 columns.
  using Spec = fg::Sequential<fg::Input<32, 8, 8>, fg::SelfAttention<>>;
  constexpr index_t batch = 8, nin = Spec::input_shape::size;
  const auto x = fg::test::normal_buffer<S>(nin * batch, 61);
  const auto tx = fg::test::normal_buffer<S>(nin * batch, 62);
  const auto dy = fg::test::normal_buffer<S>(nin * batch, 63);
  const auto dty = fg::test::normal_buffer<S>(nin * batch, 64);
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    fg::Network<Spec, fg::backend::Cpu<S>> net;
    randomise(net, 0.3, 9);
    std::vector<S> out;
    auto keep = [&](const S* d, index_t n) { out.insert(out.end(), d, d + n); };
    const auto y = net.forward({x.data(), nin, batch});
    keep(y.data(), y.size());
    const auto dx = net.backward({dy.data(), nin, batch});
    keep(dx.data(), dx.size());
    keep(net.grads(), net.param_count);
    const auto [yd, ty] = net.forward_dual({x.data(), nin, batch}, {tx.data(), nin, batch});
    keep(ty.data(), ty.size());
    const auto [gx, gtx] = net.backward_dual({dy.data(), nin, batch}, {dty.data(), nin, batch});
    keep(gx.data(), gx.size());
    keep(gtx.data(), gtx.size());
    keep(net.grads(), net.param_count);
    return out;
  };
  const int saved = omp_get_max_threads();
  const std::vector<S> one = run(1), two = run(2);
  omp_set_num_threads(saved);
  REQUIRE(one.size() == two.size());
  CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(S)) == 0);
}
#endif

TEST_CASE_TEMPLATE("Spectral SelfAttention runs each projection divided by its largest singular value", B,
                   FORGERY_DOUBLE_BACKENDS) {
  using Sn = fg::Sequential<fg::Input<8, 2, 3>, fg::SelfAttention<4, 2, true>>;
  using Plain = fg::Sequential<fg::Input<8, 2, 3>, fg::SelfAttention<4, 2>>;
  using L = layer_at<fg::Network<Sn, B>, 0>;
  static_assert(L::state_count == 4 * 8 + 2 * 2 + 2 * 4);
  fg::Network<Sn, B> sn;
  sn.initialize(12);
  randomise(sn, 0.5, 12); // gamma too
  index_t states = 0;
  sn.for_each_state([&](std::size_t, double*, index_t count) { states += count; });
  CHECK(states == L::state_count); // saved by checkpoints
  for (int i = 0; i < 1000; ++i) sn.after_step();

  // Each sigma against the top singular value from a power iteration of its own, in the
  // same in x out storage.
  fg::Network<Plain, B> plain;
  std::copy(sn.params(), sn.params() + sn.param_count, plain.params());
  auto& layer = sn.template layer<0>();
  for (int b = 0; b < 4; ++b) {
    const auto& pr = L::projections[b];
    const double* m = sn.params() + pr.offset;
    std::vector<double> v(static_cast<std::size_t>(pr.in), 1.0), u(static_cast<std::size_t>(pr.out));
    double s = 0;
    for (int it = 0; it < 2000; ++it) {
      for (index_t o = 0; o < pr.out; ++o) {
        u[o] = 0;
        for (index_t i = 0; i < pr.in; ++i) u[o] += m[o * pr.in + i] * v[i];
      }
      for (index_t i = 0; i < pr.in; ++i) {
        v[i] = 0;
        for (index_t o = 0; o < pr.out; ++o) v[i] += m[o * pr.in + i] * u[o];
      }
      double nv = 0;
      for (double e : v) nv += e * e;
      nv = std::sqrt(nv);
      for (double& e : v) e /= nv;
      s = std::sqrt(nv);
    }
    CHECK(layer.sigma(b) == doctest::Approx(s).epsilon(1e-8));
    for (index_t i = 0; i < pr.in * pr.out; ++i) plain.params()[pr.offset + i] /= layer.sigma(b);
  }
  // The forward pass is the plain layer's with W / sigma.
  constexpr index_t n = 2, nin = Sn::input_shape::size;
  const auto x = fg::test::normal_buffer<double>(nin * n, 13);
  const auto ys = sn.forward({x.data(), nin, n});
  const auto yp = plain.forward({x.data(), nin, n});
  CHECK(fg::test::max_rel_diff(ys.data(), yp.data(), ys.size()) < 1e-12);
}

TEST_CASE("the softmax's float exp is within 1.5 ulp of e^t on [-87, 0] and keeps NaN") {
  namespace ad = fg::kernels::attention_detail;
  double worst = 0;
  // Every 127th float of [-87, 0] (about 8.5 million, by bit pattern), against e^t in double.
  const auto top = std::bit_cast<std::uint32_t>(87.0f);
  for (std::uint32_t bits = 0; bits <= top; bits += 127) {
    const float t = -std::bit_cast<float>(bits);
    const double exact = std::exp(static_cast<double>(t));
    const double ulp = std::ldexp(1.0, std::ilogb(exact) - 23);
    worst = std::max(worst, std::abs(static_cast<double>(ad::exp_nonpositive_float(t)) - exact) / ulp);
  }
  CHECK(worst < 1.5);
  CHECK(ad::exp_nonpositive_float(0.0f) == 1.0f);
  CHECK(ad::exp_nonpositive_float(-0.0f) == 1.0f);
  CHECK(std::isnan(ad::exp_nonpositive_float(std::nanf(""))));
  const float tiny = ad::exp_nonpositive_float(-HUGE_VALF); // -inf: e^-87, nothing beside 1
  CHECK(tiny >= 0.0f);
  CHECK(tiny < 2e-38f);
  // A column with a NaN score gives NaN weights (a NaN guard sees it), not a silent softmax.
  std::vector<float> col{1.0f, std::nanf(""), -2.0f, 0.5f};
  fg::kernels::ColumnSoftmax<float>{col.data(), 4}(0);
  CHECK(std::isnan(col[1]));
}

// --- GradientPenalty through a critic with SelfAttention --------------------------------

using Critic = fg::Sequential<fg::Input<1, 4, 4>, fg::Conv2d<8, 3, 1, 1>, fg::LeakyReLU<>, fg::SelfAttention<4, 2>,
                              fg::Flatten, fg::Dense<1>>;
using SpectralCritic = fg::Sequential<fg::Input<1, 4, 4>, fg::Conv2d<8, 3, 1, 1>, fg::LeakyReLU<>,
                                      fg::SelfAttention<4, 2, true>, fg::Flatten, fg::Dense<1>>;

/// The parameter gradient apply() adds against a fourth-order central difference of P (step
/// h), recomputed with a copy of the same random stream so the interpolates are the same
/// (tests/penalty/test_penalties.cpp's check). Returns the worst relative error, judged on
/// 1e-3 of the largest component for components far below it, and the largest component of
/// the attention's query weights.
template <class Pen, class Net>
std::pair<double, double> penalty_gradient_error(const Pen& penalty, Net& net, fg::ConstBatchView<double> real,
                                                 fg::ConstBatchView<double> fake, fg::RandomStream rng,
                                                 fg::penalty::Workspace<typename Net::backend>& ws, double h) {
  net.zero_grad();
  fg::RandomStream r = rng;
  penalty.apply(net, real, fake, r, ws);
  const std::vector<double> analytic(net.grads(), net.grads() + Net::param_count);
  double largest = 0;
  for (double a : analytic) largest = std::max(largest, std::abs(a));
  auto p_at = [&] {
    fg::RandomStream copy = rng;
    return static_cast<double>(penalty.apply(net, real, fake, copy, ws));
  };
  double worst = 0;
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
    worst = std::max(worst, std::abs(a - numeric) / std::max({std::abs(a), std::abs(numeric), 1e-3 * largest}));
  }
  using L = layer_at<Net, 2>;
  double wq = 0;
  for (index_t i = 0; i < L::key_offset; ++i)
    wq = std::max(wq, std::abs(analytic[static_cast<std::size_t>(Net::param_offsets[2] + i)]));
  net.zero_grad();
  return {worst, wq};
}

template <class Spec, class B>
void gradient_penalty_case(std::uint64_t seed) {
  using Net = fg::Network<Spec, B>;
  constexpr index_t nin = Spec::input_shape::size, n = 3;
  Net net;
  net.initialize(seed);
  randomise(net, 0.5, seed);                     // gamma and the biases non-zero too
  for (int i = 0; i < 50; ++i) net.after_step(); // Spectral: u, v of the new weights
  const auto real = fg::test::normal_buffer<double>(nin * n, seed, 1);
  const auto fake = fg::test::normal_buffer<double>(nin * n, seed, 2);
  const fg::RandomStream rng{77, 5, 3};
  fg::penalty::Workspace<B> ws;
  const fg::penalty::GradientPenalty gp;
  const double h = 1e-4;
  const auto [worst, wq] = penalty_gradient_error(gp, net, {real.data(), nin, n}, {fake.data(), nin, n}, rng, ws, h);
  // The differences are meaningful only if no step (at most 2h in one parameter) moves a
  // LeakyReLU input across 0 at the interpolates: the convolution's outputs keep a margin.
  fg::Network<fg::Sequential<fg::Input<1, 4, 4>, fg::Conv2d<8, 3, 1, 1>>, B> conv;
  std::copy_n(net.params(), decltype(conv)::param_count, conv.params());
  const auto points = ws.input();
  double largest_input = 1;
  for (index_t i = 0; i < points.size(); ++i) largest_input = std::max(largest_input, std::abs(points.data()[i]));
  const auto z = conv.forward(points);
  double margin = HUGE_VAL;
  for (index_t i = 0; i < z.size(); ++i) margin = std::min(margin, std::abs(z.data()[i]));
  INFO("max relative error " << worst << ", largest query-weight component " << wq << ", kink margin " << margin);
  REQUIRE(margin > 10 * h * largest_input);
  CHECK(worst < 1e-6);
  CHECK(wq > 1e-3); // the penalty reaches the attention's own weights
}

TEST_CASE_TEMPLATE("GradientPenalty's parameter gradient through a critic with SelfAttention matches finite "
                   "differences",
                   B, FORGERY_DOUBLE_BACKENDS) {
  gradient_penalty_case<Critic, B>(21);
  gradient_penalty_case<SpectralCritic, B>(22);
}

} // namespace
