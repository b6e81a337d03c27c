// Activations: values, stable extremes, gradient checks including second derivatives
// (through the tangent pass), Cpu vs Reference.
#include "../support.hpp"

#include <limits>
#include <vector>

namespace {
using fg::index_t;

template <class Layer, class S>
std::vector<S> apply(const std::vector<S>& x) {
  using Spec = fg::Sequential<fg::Input<1>, Layer>;
  fg::Network<Spec, fg::backend::Reference<S>> net;
  const auto y = net.forward({x.data(), 1, static_cast<index_t>(x.size())});
  return {y.data(), y.data() + y.size()};
}

TEST_CASE_TEMPLATE("activation values", S, FORGERY_SCALARS) {
  const std::vector<S> x{-2, -0.5, 0, 0.5, 2};
  const auto relu = apply<fg::ReLU>(x);
  const auto leaky = apply<fg::LeakyReLU<>>(x);
  const auto leaky01 = apply<fg::LeakyReLU<0.01>>(x);
  const auto tanh = apply<fg::Tanh>(x);
  const auto sig = apply<fg::Sigmoid>(x);
  const auto id = apply<fg::Identity>(x);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    CHECK(relu[i] == doctest::Approx(v > 0 ? v : 0));
    CHECK(leaky[i] == doctest::Approx(v > 0 ? v : 0.2 * v));
    CHECK(leaky01[i] == doctest::Approx(v > 0 ? v : 0.01 * v));
    CHECK(tanh[i] == doctest::Approx(std::tanh(v)));
    CHECK(sig[i] == doctest::Approx(1 / (1 + std::exp(-v))));
    CHECK(id[i] == x[i]);
  }
}

TEST_CASE_TEMPLATE("Sigmoid and Tanh stay finite and saturate at extreme inputs", S, FORGERY_SCALARS) {
  const S big = std::numeric_limits<S>::max() / 4;
  const std::vector<S> x{-big, S(-1e4), S(1e4), big};
  const auto sig = apply<fg::Sigmoid>(x);
  const auto tanh = apply<fg::Tanh>(x);
  CHECK(sig[0] == 0);
  CHECK(sig[1] == 0);
  CHECK(sig[2] == 1);
  CHECK(sig[3] == 1);
  CHECK(tanh[0] == -1);
  CHECK(tanh[3] == 1);
}

template <class Act, class B>
void check_activation() {
  // Alone (input and tangent gradients), and between Dense layers so that parameter
  // gradients see the activation's first and second derivatives.
  fg::test::require_gradients<fg::Sequential<fg::Input<6>, Act>, B>(3, 4);
  fg::test::require_gradients<fg::Sequential<fg::Input<4>, fg::Dense<5>, Act, fg::Dense<3>>, B>(9, 4);
}

TEST_CASE_TEMPLATE("activation gradients match finite differences", B, FORGERY_DOUBLE_BACKENDS) {
  check_activation<fg::ReLU, B>();
  check_activation<fg::LeakyReLU<>, B>();
  check_activation<fg::Tanh, B>();
  check_activation<fg::Sigmoid, B>();
  check_activation<fg::Identity, B>();
}

TEST_CASE("the tangent pass uses the second derivative") {
  // For y = tanh(x), ty = (1 - y^2) tx. With Q = q . ty, dQ/dx = q tx d/dx(1 - y^2),
  // which is nonzero only if backward_dual carries f''.
  using Spec = fg::Sequential<fg::Input<1>, fg::Tanh>;
  fg::Network<Spec, fg::backend::Reference<double>> net;
  // Heap values: GCC 12 at -O3 misreads pointers to small locals through the inlined
  // kernels as uninitialised (-Wmaybe-uninitialized false positive).
  const std::vector<double> x{0.7}, t{1.3}, q{0.9}, zero{0.0};
  net.forward_dual({x.data(), 1, 1}, {t.data(), 1, 1});
  const auto [gx, gt] = net.backward_dual({zero.data(), 1, 1}, {q.data(), 1, 1});
  const double y = std::tanh(x[0]);
  CHECK(gx(0, 0) == doctest::Approx(q[0] * t[0] * (-2 * y * (1 - y * y))));
  CHECK(gt(0, 0) == doctest::Approx(q[0] * (1 - y * y)));
}

TEST_CASE_TEMPLATE("activations on Cpu match the Reference backend", S, FORGERY_SCALARS) {
  fg::test::compare_with_reference<fg::Sequential<fg::Input<8>, fg::Dense<20>, fg::LeakyReLU<>, fg::Dense<9>, fg::Tanh,
                                                  fg::Dense<6>, fg::Sigmoid, fg::Dense<5>, fg::ReLU>,
                                   S>(33);
  // Enough elements for the OpenMP loop.
  fg::test::compare_with_reference<fg::Sequential<fg::Input<512>, fg::Tanh>, S>(64);
}

} // namespace
