// Class conditioning layers: ConcatOneHot, ConcatEmbedding and the Projection head: known
// values, label errors, gradient checks with labels (first order and tangent pass), Cpu vs
// Reference.
#include "../support.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace {
using fg::index_t;

// Gradient check of a conditional spec: the labels cycle through the classes.
template <class Spec, class B>
void require_conditional_gradients(index_t batch, index_t classes, std::uint64_t seed = 3) {
  fg::Network<Spec, B> net;
  net.initialize(seed);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
  for (index_t j = 0; j < batch; ++j)
    labels[static_cast<std::size_t>(j)] = static_cast<std::int32_t>((j * 3 + 1) % classes);
  net.set_labels(labels.data(), batch);
  fg::testing::GradientCheckOptions opts;
  opts.batch = batch;
  const auto report = fg::testing::check_gradients(net, opts);
  INFO(report.summary());
  CHECK(report.passed());
  CHECK(report.dual_checked);
}

TEST_CASE_TEMPLATE("ConcatOneHot appends the class code to flat and image samples", B, FORGERY_ALL_BACKENDS) {
  using S = typename B::scalar;
  {
    using Spec = fg::Sequential<fg::Input<2>, fg::ConcatOneHot<3>>;
    static_assert(std::is_same_v<Spec::output_shape, fg::Shape<5>>);
    fg::Network<Spec, B> net;
    const std::vector<S> x{1, 2, 3, 4};
    const std::vector<std::int32_t> labels{2, 0};
    net.set_labels(labels.data(), 2);
    const auto y = net.forward({x.data(), 2, 2});
    const std::vector<S> expect{1, 2, 0, 0, 1, 3, 4, 1, 0, 0};
    CHECK(std::equal(expect.begin(), expect.end(), y.data()));
  }
  {
    using Spec = fg::Sequential<fg::Input<1, 2, 2>, fg::ConcatOneHot<2>>;
    static_assert(std::is_same_v<Spec::output_shape, fg::Shape<3, 2, 2>>);
    fg::Network<Spec, B> net;
    const std::vector<S> x{1, 2, 3, 4};
    const std::vector<std::int32_t> labels{1};
    net.set_labels(labels.data(), 1);
    const auto y = net.forward({x.data(), 4, 1});
    const std::vector<S> expect{1, 2, 3, 4, 0, 0, 0, 0, 1, 1, 1, 1};
    CHECK(std::equal(expect.begin(), expect.end(), y.data()));
  }
}

TEST_CASE("a conditional layer without labels, or with a label out of range, is a clear error") {
  using Spec = fg::Sequential<fg::Input<2>, fg::ConcatOneHot<3>, fg::Dense<1>>;
  static_assert(fg::Network<Spec, fg::backend::Cpu<float>>::label_classes == 3);
  fg::Network<Spec, fg::backend::Cpu<float>> net;
  net.initialize(1);
  const std::vector<float> x{1, 2, 3, 4};
  try {
    net.forward({x.data(), 2, 2});
    FAIL("expected an error without labels");
  } catch (const fg::error& e) {
    CHECK(std::string(e.what()).find("set_labels") != std::string::npos);
  }
  const std::vector<std::int32_t> one{0};
  net.set_labels(one.data(), 1); // fewer labels than samples
  CHECK_THROWS_AS(net.forward({x.data(), 2, 2}), fg::error);
  const std::vector<std::int32_t> bad{0, 3};
  net.set_labels(bad.data(), 2);
  try {
    net.forward({x.data(), 2, 2});
    FAIL("expected a config_error for label 3");
  } catch (const fg::config_error& e) {
    CHECK(std::string(e.what()).find("sample 1") != std::string::npos);
    CHECK(std::string(e.what()).find("[0, 3)") != std::string::npos);
  }
}

TEST_CASE("ConcatEmbedding reads column y of its table") {
  using Spec = fg::Sequential<fg::Input<1>, fg::ConcatEmbedding<3, 2>>;
  fg::Network<Spec, fg::backend::Reference<double>> net;
  static_assert(decltype(net)::param_count == 6);
  const std::vector<double> table{10, 11, 20, 21, 30, 31}; // 2 x 3, column c = class c
  std::copy(table.begin(), table.end(), net.params());
  const std::vector<double> x{5, 6};
  const std::vector<std::int32_t> labels{2, 1};
  net.set_labels(labels.data(), 2);
  const auto y = net.forward({x.data(), 1, 2});
  const std::vector<double> expect{5, 30, 31, 6, 20, 21};
  CHECK(std::equal(expect.begin(), expect.end(), y.data()));
}

TEST_CASE_TEMPLATE("conditioning layers' gradients match finite differences", B, FORGERY_DOUBLE_BACKENDS) {
  require_conditional_gradients<fg::Sequential<fg::Input<3>, fg::ConcatOneHot<4>, fg::Dense<3>, fg::Tanh, fg::Dense<2>>,
                                B>(5, 4);
  require_conditional_gradients<
      fg::Sequential<fg::Input<3>, fg::ConcatEmbedding<4, 2>, fg::Dense<3>, fg::Tanh, fg::Dense<2>>, B>(5, 4);
  require_conditional_gradients<
      fg::Sequential<fg::Input<2, 2, 2>, fg::ConcatEmbedding<3, 2>, fg::Flatten, fg::Dense<3>, fg::Tanh>, B>(4, 3);
  require_conditional_gradients<fg::Sequential<fg::Input<4>, fg::Dense<5>, fg::Tanh, fg::Projection<3>>, B>(6, 3);
}

TEST_CASE("the projection head is w.phi + b + e_y.phi") {
  using Spec = fg::Sequential<fg::Input<2>, fg::Projection<2>>;
  fg::Network<Spec, fg::backend::Reference<double>> net;
  static_assert(decltype(net)::param_count == 2 + 1 + 4);
  const std::vector<double> p{1, 2, 0.5, 10, 20, 30, 40}; // w, b, e_0, e_1
  std::copy(p.begin(), p.end(), net.params());
  const std::vector<double> x{1, 1, 2, -1};
  const std::vector<std::int32_t> labels{0, 1};
  net.set_labels(labels.data(), 2);
  const auto y = net.forward({x.data(), 2, 2});
  CHECK(y(0, 0) == doctest::Approx((1 + 10) * 1 + (2 + 20) * 1 + 0.5));
  CHECK(y(0, 1) == doctest::Approx((1 + 30) * 2 + (2 + 40) * -1 + 0.5));
}

TEST_CASE_TEMPLATE("conditioning layers on Cpu match the Reference backend", S, FORGERY_SCALARS) {
  using Spec = fg::Sequential<fg::Input<3, 4, 4>, fg::ConcatEmbedding<5, 3>, fg::Flatten, fg::Dense<7>, fg::LeakyReLU<>,
                              fg::Projection<5>>;
  fg::Network<Spec, fg::backend::Cpu<S>> fast;
  fg::Network<Spec, fg::backend::Reference<S>> ref;
  fast.initialize(9);
  ref.initialize(9);
  const index_t n = 6;
  std::vector<std::int32_t> labels(n);
  for (index_t j = 0; j < n; ++j) labels[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(j % 5);
  fast.set_labels(labels.data(), n);
  ref.set_labels(labels.data(), n);
  const auto x = fg::test::normal_buffer<S>(48 * n, 4);
  const auto dy = fg::test::normal_buffer<S>(n, 5);
  const auto yf = fast.forward({x.data(), 48, n});
  const auto yr = ref.forward({x.data(), 48, n});
  CHECK(fg::test::max_rel_diff(yf.data(), yr.data(), n) < fg::test::backend_tolerance<S>());
  fast.zero_grad();
  ref.zero_grad();
  fast.backward({dy.data(), 1, n});
  ref.backward({dy.data(), 1, n});
  CHECK(fg::test::max_rel_diff(fast.grads(), ref.grads(), fast.param_count) < fg::test::backend_tolerance<S>());
}

} // namespace
