// Sequential and Network: compile-time shapes and offsets, initialisation determinism,
// run-time shape errors, Grad selection, and a composed network's gradient check.
#include "../support.hpp"

#include <cstring>
#include <string>

#include <omp.h>

namespace {
using fg::index_t;

using G = fg::Sequential<fg::Input<100>, fg::Dense<256>, fg::LeakyReLU<>, fg::Dense<784>, fg::Tanh>;
using D = fg::Sequential<fg::Input<784>, fg::Dense<256>, fg::LeakyReLU<>, fg::Dense<1>>;

TEST_CASE("shapes and parameter offsets are computed at compile time") {
  using Net = fg::Network<G, fg::backend::Cpu<float>>;
  static_assert(std::is_same_v<G::output_shape, fg::Shape<784>>);
  static_assert(Net::depth == 4);
  static_assert(Net::param_count == 100 * 256 + 256 + 256 * 784 + 784);
  static_assert(Net::param_offsets[1] == 100 * 256 + 256);
  static_assert(Net::param_offsets[2] == Net::param_offsets[1]); // LeakyReLU has none
  static_assert(Net::widths[0] == 100 && Net::widths[2] == 256 && Net::widths[4] == 784);
  static_assert(Net::supports_dual);
  static_assert(fg::Layer<std::tuple_element_t<0, Net::layers_type>>);
  static_assert(fg::DualLayer<std::tuple_element_t<1, Net::layers_type>>);
}

TEST_CASE_TEMPLATE("initialisation depends only on (seed, stream, scheme), not on backend", S, FORGERY_SCALARS) {
  fg::Network<D, fg::backend::Cpu<S>> a, b;
  fg::Network<D, fg::backend::Reference<S>> r;
  a.initialize(7);
  b.initialize(7);
  r.initialize(7);
  CHECK(std::memcmp(a.params(), b.params(), sizeof(S) * a.param_count) == 0);
  CHECK(std::memcmp(a.params(), r.params(), sizeof(S) * a.param_count) == 0);
  b.initialize(8);
  CHECK(std::memcmp(a.params(), b.params(), sizeof(S) * a.param_count) != 0);
  b.initialize(7, fg::Init::glorot_uniform, 1);
  CHECK(std::memcmp(a.params(), b.params(), sizeof(S) * a.param_count) != 0);
  // Two layers of one network do not share draws.
  CHECK(a.params()[0] != a.params()[a.param_offsets[2]]);
}

TEST_CASE("wrong input shapes are typed errors that name both shapes") {
  fg::Network<D, fg::backend::Cpu<float>> d;
  d.initialize(1);
  fg::HostBuffer<float> x(783 * 2);
  try {
    d.forward({x.data(), 783, 2});
    FAIL("expected a shape_error");
  } catch (const fg::shape_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("784 x 2") != std::string::npos);
    CHECK(msg.find("783 x 2") != std::string::npos);
  }
  CHECK_THROWS_AS(d.forward({x.data(), 784, 0}), fg::shape_error);
  fg::Network<D, fg::backend::Cpu<float>> fresh;
  fg::HostBuffer<float> dy(2);
  CHECK_THROWS_AS(fresh.backward({dy.data(), 1, 2}), fg::error);
  fg::HostBuffer<float> x2(784 * 2);
  d.forward({x2.data(), 784, 2});
  CHECK_THROWS_AS(d.backward({dy.data(), 1, 1}), fg::shape_error);
  CHECK_THROWS_AS(d.backward({dy.data(), 2, 1}), fg::shape_error);
}

TEST_CASE("Grad selects what backward computes") {
  using Spec = fg::Sequential<fg::Input<6>, fg::Dense<5>, fg::Tanh, fg::Dense<2>>;
  fg::Network<Spec, fg::backend::Cpu<double>> net;
  net.initialize(2);
  const auto x = fg::test::normal_buffer<double>(6 * 4, 1);
  const auto dy = fg::test::normal_buffer<double>(2 * 4, 2);
  net.forward({x.data(), 6, 4});
  net.zero_grad();
  const auto dx_both = net.backward({dy.data(), 2, 4}, fg::Grad::both);
  std::vector<double> dx_ref(dx_both.data(), dx_both.data() + dx_both.size());
  std::vector<double> g_ref(net.grads(), net.grads() + net.param_count);

  net.zero_grad();
  const auto dx_in = net.backward({dy.data(), 2, 4}, fg::Grad::input);
  CHECK(std::equal(dx_ref.begin(), dx_ref.end(), dx_in.data()));
  CHECK(std::all_of(net.grads(), net.grads() + net.param_count, [](double v) { return v == 0; }));

  const auto dx_none = net.backward({dy.data(), 2, 4}, fg::Grad::params);
  CHECK(dx_none.empty());
  CHECK(std::equal(g_ref.begin(), g_ref.end(), net.grads()));

  // Gradients accumulate until zero_grad.
  net.backward({dy.data(), 2, 4}, fg::Grad::params);
  for (index_t i = 0; i < net.param_count; ++i) CHECK(net.grads()[i] == doctest::Approx(2 * g_ref[i]));
}

TEST_CASE("batch size may change between calls") {
  fg::Network<D, fg::backend::Cpu<float>> d;
  d.initialize(3);
  const auto x = fg::test::normal_buffer<float>(784 * 9, 4);
  const auto y9 = d.forward({x.data(), 784, 9});
  const float last = y9(0, 8);
  const auto y2 = d.forward({x.data(), 784, 2});
  CHECK(y2.batch() == 2);
  const auto y9b = d.forward({x.data(), 784, 9});
  CHECK(y9b(0, 8) == last);
}

TEST_CASE_TEMPLATE("a composed GAN-sized network passes the gradient check", B, FORGERY_DOUBLE_BACKENDS) {
  using Spec = fg::Sequential<fg::Input<12>, fg::Dense<16>, fg::LeakyReLU<>, fg::Dense<16>, fg::Tanh, fg::Dense<8>,
                              fg::Sigmoid, fg::Dense<1>>;
  fg::test::require_gradients<Spec, B>(21, 5);
}

TEST_CASE("Cpu forward is bitwise identical with 1 and 2 threads") {
  fg::Network<G, fg::backend::Cpu<float>> g;
  g.initialize(5);
  const auto z = fg::test::normal_buffer<float>(100 * 64, 6);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto y1 = g.forward({z.data(), 100, 64});
  std::vector<float> a(y1.data(), y1.data() + y1.size());
  omp_set_num_threads(2);
  const auto y2 = g.forward({z.data(), 100, 64});
  omp_set_num_threads(saved);
  CHECK(std::memcmp(a.data(), y2.data(), a.size() * sizeof(float)) == 0);
}

} // namespace

TEST_CASE_TEMPLATE("forward_tangent on a forward's cached activations equals forward_dual bitwise", B,
                   fg::backend::Cpu<float>, fg::backend::Cpu<double>, fg::backend::Reference<double>) {
  using S = typename B::scalar;
  // Dense and activations form the tangent alone; LayerNorm has no forward_tangent and runs
  // its forward_dual on the cached input.
  using Net = fg::Sequential<fg::Input<37>, fg::Dense<29>, fg::LeakyReLU<0.2>, fg::Dense<23>, fg::LayerNorm<>, fg::Tanh,
                             fg::Dense<1>>;
  static_assert(fg::TangentLayer<fg::detail::DenseLayer<37, 29, true, B>>);
  const index_t n = 9;
  fg::Network<Net, B> cached, dual;
  cached.initialize(4);
  dual.initialize(4);
  fg::HostBuffer<S> x(37 * n), tx(37 * n), ones(n);
  fg::RandomStream rng{21, 0, 0};
  fg::backend::Reference<S>::fill_normal(x.size(), x.data(), rng, S(0), S(1));
  fg::backend::Reference<S>::fill_normal(tx.size(), tx.data(), rng, S(0), S(1));
  fg::backend::Reference<S>::fill(n, ones.data(), S(1));

  CHECK_THROWS_AS(cached.forward_tangent({tx.data(), 37, n}), fg::error); // no forward yet
  cached.forward({x.data(), 37, n});
  cached.backward({ones.data(), 1, n}, fg::Grad::input); // keeps the activations
  CHECK_THROWS_AS(cached.forward_tangent({tx.data(), 37, n - 1}), fg::shape_error);
  const auto [y1, ty1] = cached.forward_tangent({tx.data(), 37, n});
  const auto [y2, ty2] = dual.forward_dual({x.data(), 37, n}, {tx.data(), 37, n});
  REQUIRE(ty1.size() == n);
  CHECK(std::memcmp(y1.data(), y2.data(), sizeof(S) * n) == 0);
  CHECK(std::memcmp(ty1.data(), ty2.data(), sizeof(S) * n) == 0);
  // The dual backward that follows sees the same buffers either way.
  cached.zero_grad();
  dual.zero_grad();
  cached.backward_dual({ones.data(), 1, n}, {ones.data(), 1, n}, fg::Grad::params);
  dual.backward_dual({ones.data(), 1, n}, {ones.data(), 1, n}, fg::Grad::params);
  CHECK(std::memcmp(cached.grads(), dual.grads(), sizeof(S) * fg::Network<Net, B>::param_count) == 0);
}
