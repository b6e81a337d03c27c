// Dense: known values, gradient checks (first order and tangent pass), Cpu vs Reference.
#include "../support.hpp"

namespace {
using fg::index_t;

TEST_CASE_TEMPLATE("Dense computes W x + b with W out x in, column-major", B, FORGERY_ALL_BACKENDS) {
  using S = typename B::scalar;
  using Spec = fg::Sequential<fg::Input<3>, fg::Dense<2>>;
  fg::Network<Spec, B> net;
  // W = [[1, 2, 3], [4, 5, 6]] stored column-major, then b = [0.5, -1].
  const S params[] = {1, 4, 2, 5, 3, 6, S(0.5), -1};
  std::copy(std::begin(params), std::end(params), net.params());
  const S x[] = {1, 0, -1, 2, 1, 0}; // two samples
  const auto y = net.forward({x, 3, 2});
  CHECK(y(0, 0) == doctest::Approx(1 - 3 + 0.5));
  CHECK(y(1, 0) == doctest::Approx(4 - 6 - 1));
  CHECK(y(0, 1) == doctest::Approx(2 + 2 + 0.5));
  CHECK(y(1, 1) == doctest::Approx(8 + 5 - 1));

  // dL/dy = ones: dW = sum_n x_n^T per row, db = batch, dx = W^T 1.
  const S ones[] = {1, 1, 1, 1};
  net.zero_grad();
  const auto dx = net.backward({ones, 2, 2});
  CHECK(dx(0, 0) == doctest::Approx(5));
  CHECK(dx(1, 0) == doctest::Approx(7));
  CHECK(dx(2, 0) == doctest::Approx(9));
  CHECK(net.grads()[0] == doctest::Approx(3));  // dW(0,0) = x(0,0) + x(0,1)
  CHECK(net.grads()[4] == doctest::Approx(-1)); // dW(0,2)
  CHECK(net.grads()[6] == doctest::Approx(2));  // db(0)
}

TEST_CASE("Dense without bias has only weights") {
  using Spec = fg::Sequential<fg::Input<7>, fg::Dense<3, false>>;
  static_assert(fg::Network<Spec, fg::backend::Cpu<float>>::param_count == 21);
  static_assert(fg::Network<fg::Sequential<fg::Input<7>, fg::Dense<3>>, fg::backend::Cpu<float>>::param_count == 24);
  fg::test::require_gradients<Spec, fg::backend::Cpu<double>>();
}

TEST_CASE_TEMPLATE("Dense gradients match finite differences", B, FORGERY_DOUBLE_BACKENDS) {
  fg::test::require_gradients<fg::Sequential<fg::Input<5>, fg::Dense<4>>, B>();
  fg::test::require_gradients<fg::Sequential<fg::Input<1>, fg::Dense<1>>, B>();
  fg::test::require_gradients<fg::Sequential<fg::Input<9>, fg::Dense<7>>, B>(3, 6);
}

TEST_CASE_TEMPLATE("Dense on Cpu matches the Reference backend", S, FORGERY_SCALARS) {
  fg::test::compare_with_reference<fg::Sequential<fg::Input<37>, fg::Dense<29>>, S>(7);
  // Large enough for the tiled, multi-threaded GEMM path.
  fg::test::compare_with_reference<fg::Sequential<fg::Input<300>, fg::Dense<260>>, S>(70);
}

TEST_CASE_TEMPLATE("Dense initialisation follows the scheme", S, FORGERY_SCALARS) {
  using Spec = fg::Sequential<fg::Input<400>, fg::Dense<300>>;
  fg::Network<Spec, fg::backend::Cpu<S>> net;
  const index_t nw = 400 * 300;
  auto moments = [&] {
    double mean = 0, sq = 0, maxabs = 0;
    for (index_t i = 0; i < nw; ++i) {
      const double v = net.params()[i];
      mean += v;
      sq += v * v;
      maxabs = std::max(maxabs, std::abs(v));
    }
    mean /= nw;
    return std::tuple{mean, std::sqrt(sq / nw - mean * mean), maxabs};
  };
  SUBCASE("Glorot uniform") {
    net.initialize(1, fg::Init::glorot_uniform);
    const double a = std::sqrt(6.0 / 700.0);
    const auto [mean, sd, maxabs] = moments();
    CHECK(maxabs <= a);
    CHECK(sd == doctest::Approx(a / std::sqrt(3.0)).epsilon(0.01));
    CHECK(std::abs(mean) < 5 * a / std::sqrt(3.0 * nw));
  }
  SUBCASE("He normal") {
    net.initialize(1, fg::Init::he_normal);
    const auto [mean, sd, maxabs] = moments();
    CHECK(sd == doctest::Approx(std::sqrt(2.0 / 400.0)).epsilon(0.01));
    (void)mean;
    (void)maxabs;
  }
  SUBCASE("DCGAN normal") {
    net.initialize(1, fg::Init::dcgan_normal);
    const auto [mean, sd, maxabs] = moments();
    CHECK(sd == doctest::Approx(0.02).epsilon(0.01));
    CHECK(std::abs(mean) < 5 * 0.02 / std::sqrt(double(nw)));
    (void)maxabs;
  }
  // Biases start at zero whatever the scheme.
  for (index_t i = nw; i < nw + 300; ++i) CHECK(net.params()[i] == 0);
}

} // namespace
