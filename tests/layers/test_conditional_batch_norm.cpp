// ConditionalBatchNorm: values against a direct computation, running statistics and eval
// mode, gradient checks with labels (gradients only in the rows of the classes present), Cpu
// vs Reference, one class everywhere against BatchNorm, statistics groups against separate
// passes, label errors.
#include "../support.hpp"

#include <forgery/layers/batch_norm.hpp>
#include <forgery/layers/conditional_batch_norm.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace {
using fg::index_t;

constexpr index_t K = 3;
using Flat = fg::Sequential<fg::Input<5>, fg::Dense<4>, fg::ConditionalBatchNorm<K>, fg::Tanh, fg::Dense<3>>;
using Image = fg::Sequential<fg::Input<2, 3, 3>, fg::ConditionalBatchNorm<K, 0.2>, fg::Flatten, fg::Dense<3>>;

// Labels j -> (3 j + 1) mod classes: every class appears in a batch of `classes` or more.
std::vector<std::int32_t> cycling_labels(index_t n, index_t classes) {
  std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
  for (index_t j = 0; j < n; ++j)
    labels[static_cast<std::size_t>(j)] = static_cast<std::int32_t>((3 * j + 1) % classes);
  return labels;
}

// Gains and biases away from (1, 0) and different per class.
template <class Net, std::size_t I>
void randomise_tables(Net& net, std::uint64_t seed) {
  using L = std::tuple_element_t<I, typename Net::layers_type>;
  const auto v = fg::test::normal_buffer<typename Net::scalar>(L::param_count, seed, 7);
  auto* p = net.template layer_params<I>();
  for (index_t i = 0; i < L::param_count / 2; ++i) {
    p[i] = 1 + v[i] / 2;
    p[L::param_count / 2 + i] = v[L::param_count / 2 + i];
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

TEST_CASE("ConditionalBatchNorm declares labels, batch statistics and state, and no tangent pass") {
  using Net = fg::Network<Image, fg::backend::Cpu<double>>;
  using L = std::tuple_element_t<0, Net::layers_type>;
  static_assert(Net::label_classes == K);
  static_assert(Net::uses_batch_statistics);
  static_assert(!Net::supports_dual);
  static_assert(fg::Layer<L> && !fg::DualLayer<L>);
  static_assert(L::param_count == 2 * K * 2 && L::state_count == 2 * 2);
  Net net;
  int states = 0;
  net.for_each_state([&](std::size_t layer, double*, index_t count) {
    CHECK(layer == 0);
    CHECK(count == 4);
    ++states;
  });
  CHECK(states == 1);
}

TEST_CASE_TEMPLATE("ConditionalBatchNorm normalises like BatchNorm, then applies each sample's class row", B,
                   FORGERY_DOUBLE_BACKENDS) {
  constexpr index_t C = 3, HW = 4, N = 5;
  constexpr double momentum = 0.25, eps = 1e-3;
  using Spec = fg::Sequential<fg::Input<C, 2, 2>, fg::ConditionalBatchNorm<4, momentum, eps>>;
  fg::Network<Spec, B> net;
  net.initialize(1);
  auto& layer = net.template layer<0>();
  for (index_t i = 0; i < 4 * C; ++i) {
    CHECK(net.params()[i] == 1);
    CHECK(net.params()[4 * C + i] == 0);
  }
  for (index_t c = 0; c < C; ++c) {
    CHECK(layer.state()[c] == 0);
    CHECK(layer.state()[C + c] == 1);
  }
  randomise_tables<decltype(net), 0>(net, 3);
  const auto labels = cycling_labels(N, 4);
  net.set_labels(labels.data(), N);
  const double* gain = net.params();
  const double* bias = net.params() + 4 * C;

  std::vector<double> rm(C, 0.0), rv(C, 1.0);
  for (std::uint64_t step = 0; step < 2; ++step) {
    auto x = fg::test::normal_buffer<double>(C * HW * N, 20 + step, 1);
    for (index_t i = 0; i < x.size(); ++i) x[i] = 2 * x[i] + double(step);
    const auto y = net.forward({x.data(), C * HW, N});
    for (index_t c = 0; c < C; ++c) {
      double s = 0, sq = 0;
      for (index_t j = 0; j < N; ++j)
        for (index_t k = 0; k < HW; ++k) s += x[(j * C + c) * HW + k];
      const double mu = s / double(N * HW);
      for (index_t j = 0; j < N; ++j)
        for (index_t k = 0; k < HW; ++k) sq += (x[(j * C + c) * HW + k] - mu) * (x[(j * C + c) * HW + k] - mu);
      const double var = sq / double(N * HW);
      for (index_t j = 0; j < N; ++j) {
        const index_t l = labels[static_cast<std::size_t>(j)];
        for (index_t k = 0; k < HW; ++k) {
          const index_t i = (j * C + c) * HW + k;
          const double expected = gain[l * C + c] * (x[i] - mu) / std::sqrt(var + eps) + bias[l * C + c];
          CHECK(y.data()[i] == doctest::Approx(expected).epsilon(1e-12));
        }
      }
      rm[static_cast<std::size_t>(c)] = (1 - momentum) * rm[static_cast<std::size_t>(c)] + momentum * mu;
      rv[static_cast<std::size_t>(c)] =
          (1 - momentum) * rv[static_cast<std::size_t>(c)] + momentum * sq / double(N * HW - 1);
      CHECK(layer.state()[c] == doctest::Approx(rm[static_cast<std::size_t>(c)]).epsilon(1e-12));
      CHECK(layer.state()[C + c] == doctest::Approx(rv[static_cast<std::size_t>(c)]).epsilon(1e-12));
    }
  }

  // Eval mode: the running statistics, nothing updated, any batch size.
  net.eval();
  const auto x = fg::test::normal_buffer<double>(C * HW * 2, 99, 1);
  const std::vector<std::int32_t> two{3, 0};
  net.set_labels(two.data(), 2);
  const auto y = net.forward({x.data(), C * HW, 2});
  for (index_t j = 0; j < 2; ++j)
    for (index_t c = 0; c < C; ++c)
      for (index_t k = 0; k < HW; ++k) {
        const index_t i = (j * C + c) * HW + k, l = two[static_cast<std::size_t>(j)];
        const double expected = gain[l * C + c] * (x[i] - rm[static_cast<std::size_t>(c)]) /
                                    std::sqrt(rv[static_cast<std::size_t>(c)] + eps) +
                                bias[l * C + c];
        CHECK(y.data()[i] == doctest::Approx(expected).epsilon(1e-12));
      }
  for (index_t c = 0; c < C; ++c) CHECK(layer.state()[c] == doctest::Approx(rm[static_cast<std::size_t>(c)]));

  // initialize() resets the running statistics.
  net.initialize(1);
  for (index_t c = 0; c < C; ++c) {
    CHECK(layer.state()[c] == 0);
    CHECK(layer.state()[C + c] == 1);
  }
}

TEST_CASE("ConditionalBatchNorm on a flat input normalises each feature over the batch") {
  using Spec = fg::Sequential<fg::Input<4>, fg::ConditionalBatchNorm<2>>;
  fg::Network<Spec, fg::backend::Cpu<double>> net;
  net.initialize(1);
  randomise_tables<decltype(net), 0>(net, 4);
  const index_t n = 8;
  const auto labels = cycling_labels(n, 2);
  net.set_labels(labels.data(), n);
  const auto x = fg::test::normal_buffer<double>(4 * n, 3, 1);
  const auto y = net.forward({x.data(), 4, n});
  for (index_t f = 0; f < 4; ++f) {
    double s = 0, sq = 0;
    for (index_t j = 0; j < n; ++j) s += x[j * 4 + f];
    const double mu = s / double(n);
    for (index_t j = 0; j < n; ++j) sq += (x[j * 4 + f] - mu) * (x[j * 4 + f] - mu);
    for (index_t j = 0; j < n; ++j) {
      const index_t l = labels[static_cast<std::size_t>(j)];
      const double expected = net.params()[l * 4 + f] * (x[j * 4 + f] - mu) / std::sqrt(sq / double(n) + 1e-5) +
                              net.params()[8 + l * 4 + f];
      CHECK(y(f, j) == doctest::Approx(expected).epsilon(1e-12));
    }
  }
}

TEST_CASE_TEMPLATE("ConditionalBatchNorm gradients match finite differences", B, FORGERY_DOUBLE_BACKENDS) {
  // Train mode: flat and image inputs, every class present, and one image sample (statistics
  // over its positions only).
  for (const index_t batch : {index_t{4}, index_t{1}}) {
    fg::Network<Image, B> net;
    net.initialize(6);
    randomise_tables<decltype(net), 0>(net, 6);
    const auto labels = cycling_labels(batch, K);
    net.set_labels(labels.data(), batch);
    require_check(net, batch);
  }
  {
    fg::Network<Flat, B> net;
    net.initialize(3);
    randomise_tables<decltype(net), 1>(net, 3);
    const auto labels = cycling_labels(5, K);
    net.set_labels(labels.data(), 5);
    require_check(net, 5);

    // Eval mode, after moving the running statistics away from (0, 1).
    const auto x = fg::test::normal_buffer<double>(5 * 6, 8, 1);
    const auto six = cycling_labels(6, K);
    net.set_labels(six.data(), 6);
    for (int i = 0; i < 3; ++i) net.forward({x.data(), 5, 6});
    net.eval();
    net.set_labels(labels.data(), 5);
    require_check(net, 3);
  }
}

TEST_CASE_TEMPLATE("ConditionalBatchNorm gradients reach only the rows of the classes present", B,
                   FORGERY_DOUBLE_BACKENDS) {
  constexpr index_t C = 2, classes = 4;
  using Spec = fg::Sequential<fg::Input<C, 2, 2>, fg::ConditionalBatchNorm<classes>>;
  fg::Network<Spec, B> net;
  net.initialize(2);
  randomise_tables<decltype(net), 0>(net, 2);
  const std::vector<std::int32_t> labels{2, 0, 2, 2, 0};
  net.set_labels(labels.data(), 5);
  const auto x = fg::test::normal_buffer<double>(C * 4 * 5, 5, 1);
  const auto dy = fg::test::normal_buffer<double>(C * 4 * 5, 5, 2);
  net.forward({x.data(), C * 4, 5});
  net.zero_grad();
  net.backward({dy.data(), C * 4, 5}, fg::Grad::params);
  for (index_t l = 0; l < classes; ++l)
    for (index_t c = 0; c < C; ++c) {
      const bool present = l == 0 || l == 2;
      INFO("class " << l << ", channel " << c);
      CHECK((net.grads()[l * C + c] != 0) == present);             // gain
      CHECK((net.grads()[(classes + l) * C + c] != 0) == present); // bias
    }
  // The bias gradient of class l is the sum of dy over its samples.
  for (index_t l : {index_t{0}, index_t{2}})
    for (index_t c = 0; c < C; ++c) {
      double s = 0;
      for (index_t j = 0; j < 5; ++j)
        if (labels[static_cast<std::size_t>(j)] == l)
          for (index_t k = 0; k < 4; ++k) s += dy[(j * C + c) * 4 + k];
      CHECK(net.grads()[(classes + l) * C + c] == doctest::Approx(s).epsilon(1e-12));
    }
}

// Cpu against Reference with identical tables and labels: outputs, running statistics,
// input and parameter gradients, and eval mode.
template <class Spec, class S>
void compare_conditional(index_t batch) {
  using Fast = fg::Network<Spec, fg::backend::Cpu<S>>;
  Fast fast;
  fg::Network<Spec, fg::backend::Reference<S>> ref;
  fast.initialize(9);
  ref.initialize(9);
  constexpr index_t nin = Spec::input_shape::size, nout = Spec::output_shape::size;
  const auto p = fg::test::normal_buffer<S>(Fast::param_count, 9, 3);
  std::copy(p.begin(), p.end(), fast.params());
  std::copy(p.begin(), p.end(), ref.params());
  const auto labels = cycling_labels(batch, Fast::label_classes);
  fast.set_labels(labels.data(), batch);
  ref.set_labels(labels.data(), batch);
  const auto x = fg::test::normal_buffer<S>(nin * batch, 9, 1);
  const auto dy = fg::test::normal_buffer<S>(nout * batch, 9, 2);
  const double tol = fg::test::backend_tolerance<S>();
  for (int mode = 0; mode < 2; ++mode) {
    if (mode == 1) {
      fast.eval();
      ref.eval();
    }
    const auto yf = fast.forward({x.data(), nin, batch});
    const auto yr = ref.forward({x.data(), nin, batch});
    CHECK(fg::test::max_rel_diff(yf.data(), yr.data(), yf.size()) < tol);
    fast.zero_grad();
    ref.zero_grad();
    const auto df = fast.backward({dy.data(), nout, batch});
    const auto dr = ref.backward({dy.data(), nout, batch});
    CHECK(fg::test::max_rel_diff(df.data(), dr.data(), df.size()) < tol);
    CHECK(fg::test::max_rel_diff(fast.grads(), ref.grads(), Fast::param_count) < tol);
    fast.for_each_state([&](std::size_t, S* s, index_t n) {
      ref.for_each_state([&](std::size_t, S* r, index_t) { CHECK(fg::test::max_rel_diff(s, r, n) < tol); });
    });
  }
}

TEST_CASE_TEMPLATE("ConditionalBatchNorm on Cpu matches the Reference backend", S, FORGERY_SCALARS) {
  compare_conditional<Flat, S>(6);
  compare_conditional<Image, S>(4);
  // Enough channels and values for the multi-threaded loops, and a long flat run.
  compare_conditional<fg::Sequential<fg::Input<16, 32, 32>, fg::ConditionalBatchNorm<5>>, S>(5);
  compare_conditional<fg::Sequential<fg::Input<600>, fg::ConditionalBatchNorm<4>>, S>(7);
}

// With every label k, ConditionalBatchNorm is BatchNorm with gamma, beta = row k of the
// tables: the forward pass (outputs and running statistics) bit for bit, since both apply
// the same kernels and expression; the backward to rounding (the gain sits inside the
// gradient sums here, outside them in BatchNorm).
template <class In, class S>
void check_one_class_is_batch_norm() {
  using Cbn = fg::Network<fg::Sequential<In, fg::ConditionalBatchNorm<K, 0.3>>, fg::backend::Cpu<S>>;
  using Bn = fg::Network<fg::Sequential<In, fg::BatchNorm<0.3>>, fg::backend::Cpu<S>>;
  constexpr index_t size = In::shape::size, C = In::shape::dims[0], n = 6, k = 1;
  Cbn cbn;
  Bn bn;
  cbn.initialize(1);
  bn.initialize(1);
  randomise_tables<Cbn, 0>(cbn, 8);
  std::copy(cbn.params() + k * C, cbn.params() + (k + 1) * C, bn.params());
  std::copy(cbn.params() + (K + k) * C, cbn.params() + (K + k + 1) * C, bn.params() + C);
  const std::vector<std::int32_t> labels(n, static_cast<std::int32_t>(k));
  cbn.set_labels(labels.data(), n);
  const auto x = fg::test::normal_buffer<S>(size * n, 4, 1);
  const auto dy = fg::test::normal_buffer<S>(size * n, 4, 2);
  const auto same = [](const S* a, const S* b, index_t count) {
    return std::memcmp(a, b, static_cast<std::size_t>(count) * sizeof(S)) == 0;
  };
  for (int mode = 0; mode < 2; ++mode) {
    if (mode == 1) {
      cbn.eval();
      bn.eval();
    }
    const auto yc = cbn.forward({x.data(), size, n});
    const auto yb = bn.forward({x.data(), size, n});
    CHECK(same(yc.data(), yb.data(), yc.size()));
    CHECK(same(cbn.template layer<0>().state(), bn.template layer<0>().state(), 2 * C));
    cbn.zero_grad();
    bn.zero_grad();
    const auto dc = cbn.backward({dy.data(), size, n});
    const auto db = bn.backward({dy.data(), size, n});
    const double tol = 20 * std::numeric_limits<S>::epsilon();
    CHECK(fg::test::max_rel_diff(dc.data(), db.data(), dc.size()) < tol);
    CHECK(fg::test::max_rel_diff(cbn.grads() + k * C, bn.grads(), C) < tol);
    CHECK(fg::test::max_rel_diff(cbn.grads() + (K + k) * C, bn.grads() + C, C) < tol);
  }
}

TEST_CASE_TEMPLATE("ConditionalBatchNorm with one class everywhere is BatchNorm with that class's row", S,
                   FORGERY_SCALARS) {
  check_one_class_is_batch_norm<fg::Input<3, 4, 4>, S>();
  check_one_class_is_batch_norm<fg::Input<300>, S>();
}

// One grouped pass over [a | b] against passes over a, then b, bit for bit: outputs, input
// and parameter gradients, running statistics.
template <class In, class S>
void check_statistics_groups() {
  using Net = fg::Network<fg::Sequential<In, fg::ConditionalBatchNorm<K, 0.2>>, fg::backend::Cpu<S>>;
  constexpr index_t size = In::shape::size, n = 5;
  const auto x = fg::test::normal_buffer<S>(size * 2 * n, 3, 1);
  const auto dy = fg::test::normal_buffer<S>(size * 2 * n, 3, 2);
  const auto labels = cycling_labels(2 * n, K);
  Net grouped, separate;
  grouped.initialize(4);
  separate.initialize(4);
  randomise_tables<Net, 0>(grouped, 5);
  randomise_tables<Net, 0>(separate, 5);

  grouped.set_labels(labels.data(), 2 * n);
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
    separate.set_labels(labels.data() + half * n, n);
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
  CHECK(same(grouped.template layer<0>().state(), separate.template layer<0>().state(), 2 * In::shape::dims[0]));

  grouped.set_statistics_groups(3);
  try {
    (void)grouped.forward({x.data(), size, 2 * n});
    FAIL("expected a shape_error");
  } catch (const fg::shape_error& e) {
    CHECK(std::string(e.what()).find("fg::ConditionalBatchNorm statistics groups") != std::string::npos);
  }
}

TEST_CASE_TEMPLATE("ConditionalBatchNorm statistics groups: one pass over [a | b] is two passes, bit for bit", S,
                   FORGERY_SCALARS) {
  check_statistics_groups<fg::Input<2, 3, 3>, S>();
  check_statistics_groups<fg::Input<4>, S>();
}

TEST_CASE("ConditionalBatchNorm: missing labels, a label out of range, one value per channel") {
  using Spec = fg::Sequential<fg::Input<2>, fg::ConditionalBatchNorm<3>>;
  fg::Network<Spec, fg::backend::Cpu<float>> net;
  net.initialize(1);
  const std::vector<float> x{1, 2, 3, 4, 5, 6};
  const std::string missing = fg::test::error_of([&] { net.forward({x.data(), 2, 3}); });
  CHECK(missing.find("ConditionalBatchNorm") != std::string::npos);
  CHECK(missing.find("set_labels") != std::string::npos);
  const std::vector<std::int32_t> bad{0, 1, 3};
  net.set_labels(bad.data(), 3);
  try {
    net.forward({x.data(), 2, 3});
    FAIL("expected a config_error for label 3");
  } catch (const fg::config_error& e) {
    const std::string what = e.what();
    CHECK(e.field() == "ConditionalBatchNorm label of sample 2");
    CHECK(what.find("= 3") != std::string::npos);
    CHECK(what.find("[0, 3)") != std::string::npos);
  }
  const std::vector<std::int32_t> negative{0, -1, 2};
  net.set_labels(negative.data(), 3);
  CHECK_THROWS_AS(net.forward({x.data(), 2, 3}), fg::config_error);
  // Train mode needs two values per channel, as BatchNorm.
  const std::vector<std::int32_t> one{1};
  net.set_labels(one.data(), 1);
  const std::string single = fg::test::error_of([&] { net.forward({x.data(), 2, 1}); });
  CHECK(single.find("fg::ConditionalBatchNorm in train mode") != std::string::npos);
  net.eval();
  CHECK_NOTHROW(net.forward({x.data(), 2, 1}));
}

// Cpu with host_memory = false: the layers take their device paths (one element per index,
// the per-(sample, channel) sums through a buffer) on host memory, so that those paths are
// checked on machines without a GPU. The forward gives the same bits; the backward agrees to
// rounding (the same sums in the same order, but the compiler contracts multiply-adds in
// the fused host loop and in the two device kernels differently).
struct DeviceLikeCpu : fg::backend::Cpu<double> {
  static constexpr bool host_memory = false;
};

template <class Spec>
void check_device_path(index_t batch, index_t groups) {
  fg::Network<Spec, fg::backend::Cpu<double>> host;
  fg::Network<Spec, DeviceLikeCpu> device;
  host.initialize(3);
  device.initialize(3);
  constexpr index_t np = decltype(host)::param_count, nin = Spec::input_shape::size, nout = Spec::output_shape::size;
  const auto p = fg::test::normal_buffer<double>(np, 3, 3);
  std::copy(p.begin(), p.end(), host.params());
  std::copy(p.begin(), p.end(), device.params());
  const auto labels = cycling_labels(batch, K);
  host.set_labels(labels.data(), batch);
  device.set_labels(labels.data(), batch);
  host.set_statistics_groups(groups);
  device.set_statistics_groups(groups);
  const auto x = fg::test::normal_buffer<double>(nin * batch, 3, 1);
  const auto dy = fg::test::normal_buffer<double>(nout * batch, 3, 2);
  const auto same = [](const double* a, const double* b, index_t count) {
    return std::memcmp(a, b, static_cast<std::size_t>(count) * sizeof(double)) == 0;
  };
  for (int mode = 0; mode < 2; ++mode) {
    if (mode == 1) {
      host.eval();
      device.eval();
    }
    const auto yh = host.forward({x.data(), nin, batch});
    const auto yd = device.forward({x.data(), nin, batch});
    CHECK(same(yh.data(), yd.data(), yh.size()));
    host.zero_grad();
    device.zero_grad();
    const auto dh = host.backward({dy.data(), nout, batch});
    const auto dd = device.backward({dy.data(), nout, batch});
    CHECK(fg::test::max_rel_diff(dh.data(), dd.data(), dh.size()) < 1e-14);
    CHECK(fg::test::max_rel_diff(host.grads(), device.grads(), np) < 1e-14);
  }
}

TEST_CASE("ConditionalBatchNorm's device path agrees with the host path") {
  check_device_path<Image>(6, 1);
  check_device_path<Image>(6, 2);
  check_device_path<fg::Sequential<fg::Input<300>, fg::ConditionalBatchNorm<K>>>(5, 1);
}

} // namespace
