// BatchNorm: batch statistics in train mode, running statistics (PyTorch's update rule) in
// eval mode, gradient checks in both modes, Cpu vs Reference.
#include "../support.hpp"

#include <forgery/layers/batch_norm.hpp>

#include <string>
#include <vector>

namespace {
using fg::index_t;

// Flat input: per feature over the batch; image input: per channel over batch and positions.
using Flat = fg::Sequential<fg::Input<5>, fg::Dense<4>, fg::BatchNorm<>, fg::Tanh, fg::Dense<3>>;
using Image = fg::Sequential<fg::Input<2, 3, 3>, fg::BatchNorm<0.2>, fg::Flatten, fg::Dense<3>>;

// Gamma and beta away from (1, 0), so that their gradients and the affine map are exercised.
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
  CHECK_FALSE(report.dual_checked);
}

TEST_CASE_TEMPLATE("BatchNorm train-mode gradients match finite differences", B, FORGERY_DOUBLE_BACKENDS) {
  fg::test::require_gradients<Flat, B>(3, 4);
  fg::test::require_gradients<Image, B>(4, 3);
  // Batch statistics over positions only (batch 1 of an image).
  fg::test::require_gradients<Image, B>(5, 1);
  fg::Network<Image, B> net;
  net.initialize(6);
  randomise_affine<decltype(net), 0>(net, 6);
  require_check(net, 3);
}

TEST_CASE_TEMPLATE("BatchNorm eval-mode gradients match finite differences", B, FORGERY_DOUBLE_BACKENDS) {
  fg::Network<Flat, B> net;
  net.initialize(8);
  randomise_affine<decltype(net), 1>(net, 8);
  // Move the running statistics away from (0, 1) first.
  const auto x = fg::test::normal_buffer<double>(5 * 6, 8, 1);
  for (int i = 0; i < 3; ++i) net.forward({x.data(), 5, 6});
  net.eval();
  require_check(net, 3);
}

TEST_CASE_TEMPLATE("BatchNorm on Cpu matches the Reference backend", S, FORGERY_SCALARS) {
  fg::test::compare_with_reference<Flat, S>(6);
  fg::test::compare_with_reference<Image, S>(3);
  // Enough channels and values for the multi-threaded loops.
  using Wide = fg::Sequential<fg::Input<16, 32, 32>, fg::BatchNorm<>>;
  fg::test::compare_with_reference<Wide, S>(3);

  // Running statistics, and eval mode on them.
  fg::Network<Image, fg::backend::Cpu<S>> fast;
  fg::Network<Image, fg::backend::Reference<S>> ref;
  fast.initialize(2);
  ref.initialize(2);
  const auto x = fg::test::normal_buffer<S>(18 * 4, 2, 1);
  fast.forward({x.data(), 18, 4});
  ref.forward({x.data(), 18, 4});
  CHECK(fg::test::max_rel_diff(fast.template layer<0>().state(), ref.template layer<0>().state(), 4) <
        fg::test::backend_tolerance<S>());
  fast.eval();
  ref.eval();
  const auto yf = fast.forward({x.data(), 18, 4});
  const auto yr = ref.forward({x.data(), 18, 4});
  CHECK(fg::test::max_rel_diff(yf.data(), yr.data(), yf.size()) < fg::test::backend_tolerance<S>());
}

// Per channel c of a C x HW batch: mean and biased / unbiased variance, by hand.
struct Moments {
  std::vector<double> mean, biased, unbiased;
};
Moments moments(const std::vector<double>& x, index_t c, index_t hw, index_t n) {
  Moments m{std::vector<double>(c), std::vector<double>(c), std::vector<double>(c)};
  for (index_t ch = 0; ch < c; ++ch) {
    double s = 0, sq = 0;
    for (index_t j = 0; j < n; ++j)
      for (index_t k = 0; k < hw; ++k) s += x[j * c * hw + ch * hw + k];
    const double mu = s / double(n * hw);
    for (index_t j = 0; j < n; ++j)
      for (index_t k = 0; k < hw; ++k) sq += (x[j * c * hw + ch * hw + k] - mu) * (x[j * c * hw + ch * hw + k] - mu);
    m.mean[ch] = mu;
    m.biased[ch] = sq / double(n * hw);
    m.unbiased[ch] = sq / double(n * hw - 1);
  }
  return m;
}

TEST_CASE_TEMPLATE("BatchNorm running statistics follow PyTorch's update, and eval uses them", B,
                   FORGERY_DOUBLE_BACKENDS) {
  constexpr index_t C = 3, HW = 4, N = 3;
  constexpr double momentum = 0.25, eps = 1e-3;
  using Spec = fg::Sequential<fg::Input<C, 2, 2>, fg::BatchNorm<momentum, eps>>;
  fg::Network<Spec, B> net;
  net.initialize(1);
  auto& bn = net.template layer<0>();
  static_assert(std::remove_reference_t<decltype(bn)>::state_count == 2 * C);
  for (index_t c = 0; c < C; ++c) {
    CHECK(bn.state()[c] == 0);
    CHECK(bn.state()[C + c] == 1);
    CHECK(net.params()[c] == 1);
    CHECK(net.params()[C + c] == 0);
  }

  std::vector<double> rm(C, 0.0), rv(C, 1.0);
  for (std::uint64_t step = 0; step < 3; ++step) {
    const auto buf = fg::test::normal_buffer<double>(C * HW * N, 10 + step, 1);
    std::vector<double> x(buf.begin(), buf.end());
    for (double& v : x) v = 3 * v + double(step); // mean and spread unlike the initial estimates
    const auto y = net.forward({x.data(), C * HW, N});
    const Moments m = moments(x, C, HW, N);
    for (index_t c = 0; c < C; ++c) {
      rm[c] = (1 - momentum) * rm[c] + momentum * m.mean[c];
      rv[c] = (1 - momentum) * rv[c] + momentum * m.unbiased[c];
      CHECK(bn.state()[c] == doctest::Approx(rm[c]).epsilon(1e-12));
      CHECK(bn.state()[C + c] == doctest::Approx(rv[c]).epsilon(1e-12));
    }
    // gamma = 1, beta = 0: per channel the output has mean 0 and variance var / (var + eps).
    std::vector<double> yv(y.data(), y.data() + y.size());
    const Moments my = moments(yv, C, HW, N);
    for (index_t c = 0; c < C; ++c) {
      CHECK(std::abs(my.mean[c]) < 1e-12);
      CHECK(my.biased[c] == doctest::Approx(m.biased[c] / (m.biased[c] + eps)).epsilon(1e-12));
    }
  }

  // Eval mode: y = gamma (x - running mean) / sqrt(running var + eps) + beta, nothing updated.
  net.params()[1] = 2.0;
  net.params()[C + 2] = -0.5;
  net.eval();
  const auto buf = fg::test::normal_buffer<double>(C * HW * 2, 99, 1);
  const auto y = net.forward({buf.data(), C * HW, 2});
  for (index_t j = 0; j < 2; ++j)
    for (index_t c = 0; c < C; ++c)
      for (index_t k = 0; k < HW; ++k) {
        const index_t i = j * C * HW + c * HW + k;
        const double expected = net.params()[c] * (buf[i] - rm[c]) / std::sqrt(rv[c] + eps) + net.params()[C + c];
        CHECK(y.data()[i] == doctest::Approx(expected).epsilon(1e-12));
      }
  for (index_t c = 0; c < C; ++c) CHECK(bn.state()[c] == doctest::Approx(rm[c]).epsilon(1e-12));

  // initialize() resets the running statistics.
  net.initialize(1);
  for (index_t c = 0; c < C; ++c) {
    CHECK(bn.state()[c] == 0);
    CHECK(bn.state()[C + c] == 1);
  }
}

TEST_CASE("BatchNorm on a flat input normalises each feature over the batch") {
  using Spec = fg::Sequential<fg::Input<4>, fg::BatchNorm<>>;
  fg::Network<Spec, fg::backend::Cpu<double>> net;
  net.initialize(1);
  const auto x = fg::test::normal_buffer<double>(4 * 8, 3, 1);
  const auto y = net.forward({x.data(), 4, 8});
  std::vector<double> yv(y.data(), y.data() + y.size()), xv(x.begin(), x.end());
  const Moments mx = moments(xv, 4, 1, 8), my = moments(yv, 4, 1, 8);
  for (index_t f = 0; f < 4; ++f) {
    CHECK(std::abs(my.mean[f]) < 1e-12);
    CHECK(my.biased[f] == doctest::Approx(mx.biased[f] / (mx.biased[f] + 1e-5)).epsilon(1e-12));
  }
}

TEST_CASE("BatchNorm in train mode rejects a single value per channel") {
  using Spec = fg::Sequential<fg::Input<4>, fg::BatchNorm<>>;
  fg::Network<Spec, fg::backend::Cpu<double>> net;
  net.initialize(1);
  const std::vector<double> x{1, 2, 3, 4};
  try {
    net.forward({x.data(), 4, 1});
    FAIL("expected fg::shape_error");
  } catch (const fg::shape_error& e) {
    CHECK(std::string(e.what()).find("fg::BatchNorm in train mode") != std::string::npos);
  }
  net.eval();
  CHECK_NOTHROW(net.forward({x.data(), 4, 1}));
}

TEST_CASE("BatchNorm has no tangent pass") {
  using Net = fg::Network<Flat, fg::backend::Cpu<double>>;
  static_assert(!Net::supports_dual);
  static_assert(fg::Layer<std::tuple_element_t<1, Net::layers_type>>);
  static_assert(!fg::DualLayer<std::tuple_element_t<1, Net::layers_type>>);
}

// One grouped pass of Spec (a lone BatchNorm) over [a | b] against passes over a, then b:
// outputs, input gradients, parameter gradients (added group after group) and running
// statistics (updated group after group), bit for bit.
template <class Spec, class S>
void check_statistics_groups() {
  using Net = fg::Network<Spec, fg::backend::Cpu<S>>;
  constexpr index_t size = Spec::input_shape::size, n = 5;
  const auto x = fg::test::normal_buffer<S>(size * 2 * n, 3, 1);
  const auto dy = fg::test::normal_buffer<S>(size * 2 * n, 3, 2);
  Net grouped, separate;
  grouped.initialize(4);
  separate.initialize(4);
  randomise_affine<Net, 0>(grouped, 5);
  randomise_affine<Net, 0>(separate, 5);

  grouped.set_statistics_groups(2);
  const auto y = grouped.forward({x.data(), size, 2 * n});
  const std::vector<S> y_grouped(y.data(), y.data() + y.size());
  grouped.set_statistics_groups(1);
  grouped.zero_grad();
  const auto dx = grouped.backward({dy.data(), size, 2 * n});
  const std::vector<S> dx_grouped(dx.data(), dx.data() + dx.size());

  std::vector<S> y_separate, dx_separate;
  separate.zero_grad();
  for (index_t half = 0; half < 2; ++half) {
    const auto yh = separate.forward({x.data() + half * size * n, size, n});
    y_separate.insert(y_separate.end(), yh.data(), yh.data() + yh.size());
    const auto dxh = separate.backward({dy.data() + half * size * n, size, n});
    dx_separate.insert(dx_separate.end(), dxh.data(), dxh.data() + dxh.size());
  }
  const auto same = [](const S* a, const S* b, index_t count) {
    return std::vector<S>(a, a + count) == std::vector<S>(b, b + count);
  };
  CHECK(y_grouped == y_separate);
  CHECK(dx_grouped == dx_separate);
  CHECK(same(grouped.grads(), separate.grads(), Net::param_count));
  constexpr index_t state = std::tuple_element_t<0, typename Net::layers_type>::state_count;
  CHECK(same(grouped.template layer<0>().state(), separate.template layer<0>().state(), state));

  // A batch that does not divide into the groups is a shape error naming the setting.
  grouped.set_statistics_groups(3);
  try {
    (void)grouped.forward({x.data(), size, 2 * n});
    FAIL("expected a shape_error");
  } catch (const fg::shape_error& e) {
    CHECK(std::string(e.what()).find("statistics_groups") != std::string::npos);
  }
}

TEST_CASE_TEMPLATE("BatchNorm statistics groups: one pass over [a | b] is two passes, bit for bit", S,
                   FORGERY_SCALARS) {
  check_statistics_groups<fg::Sequential<fg::Input<2, 3, 3>, fg::BatchNorm<0.2>>, S>();
  check_statistics_groups<fg::Sequential<fg::Input<4>, fg::BatchNorm<>>, S>();
}

} // namespace
