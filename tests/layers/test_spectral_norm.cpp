// SpectralNorm: the power iteration converges to the top singular pair (checked against
// Eigen's SVD), the normalised weight has spectral norm 1, the forward pass is a pure
// function of (parameters, input), gradient checks (u, v constant) with the tangent pass.
#include "../support.hpp"

#include <forgery/layers/conv2d.hpp>
#include <forgery/layers/spectral_norm.hpp>

#include <Eigen/SVD>

#include <vector>

namespace {
using fg::index_t;

using DenseSN = fg::Sequential<fg::Input<5>, fg::SpectralNorm<fg::Dense<4>>, fg::Tanh, fg::Dense<2>>;
using NoBiasSN = fg::Sequential<fg::Input<4>, fg::SpectralNorm<fg::Dense<3, false>, 2>, fg::Sigmoid>;
using ConvSN =
    fg::Sequential<fg::Input<2, 5, 5>, fg::SpectralNorm<fg::Conv2d<4, 3, 1, 1>>, fg::Tanh, fg::Flatten, fg::Dense<2>>;

TEST_CASE_TEMPLATE("SpectralNorm gradients and tangent pass match finite differences", B, FORGERY_DOUBLE_BACKENDS) {
  static_assert(fg::Network<DenseSN, B>::supports_dual);
  fg::test::require_gradients<DenseSN, B>(3, 3);
  fg::test::require_gradients<NoBiasSN, B>(4, 2);
  fg::test::require_gradients<ConvSN, B>(5, 2);
}

TEST_CASE_TEMPLATE("SpectralNorm on Cpu matches the Reference backend", S, FORGERY_SCALARS) {
  fg::test::compare_with_reference<DenseSN, S>(6);
  fg::test::compare_with_reference<NoBiasSN, S>(3);
  fg::test::compare_with_reference<ConvSN, S>(2);
}

using Matrix = Eigen::MatrixXd;

// The layer's weight W (rows x cols, column-major, leading its parameters) as a matrix.
template <class Net>
Matrix weight_of(Net& net, index_t rows, index_t cols) {
  return Eigen::Map<const Matrix>(net.params(), rows, cols);
}

TEST_CASE_TEMPLATE("SpectralNorm's power iteration converges to the largest singular value", B,
                   FORGERY_DOUBLE_BACKENDS) {
  constexpr index_t R = 3, C = 4;
  using Spec = fg::Sequential<fg::Input<C>, fg::SpectralNorm<fg::Dense<R>>>;
  fg::Network<Spec, B> net;
  net.initialize(1);
  auto& sn = net.template layer<0>();
  static_assert(std::remove_reference_t<decltype(sn)>::state_count == R + C);
  // A weight with well separated singular values, and a non-zero bias that must pass through.
  const std::vector<double> w{3, 1, 0, 1, -2, 1, 0.5, 0, 1, 2, 1, -1};
  std::copy(w.begin(), w.end(), net.params());
  const std::vector<double> bias{0.25, -0.5, 1};
  std::copy(bias.begin(), bias.end(), net.params() + R * C);

  const Eigen::JacobiSVD<Matrix> svd(weight_of(net, R, C), Eigen::ComputeFullU | Eigen::ComputeFullV);
  const double s1 = svd.singularValues()(0);
  REQUIRE(svd.singularValues()(1) < 0.9 * s1);

  for (int i = 0; i < 100; ++i) net.after_step();
  // u and v are the top singular vectors (up to a common sign), of unit length.
  const Eigen::Map<const Eigen::VectorXd> u(sn.state(), R), v(sn.state() + R, C);
  CHECK(u.norm() == doctest::Approx(1).epsilon(1e-12));
  CHECK(v.norm() == doctest::Approx(1).epsilon(1e-12));
  CHECK(std::abs(u.dot(svd.matrixU().col(0))) == doctest::Approx(1).epsilon(1e-10));
  CHECK(std::abs(v.dot(svd.matrixV().col(0))) == doctest::Approx(1).epsilon(1e-10));
  CHECK(sn.sigma() == doctest::Approx(s1).epsilon(1e-10));

  // Forward on the identity: the columns of the output are W_sn plus the bias.
  std::vector<double> eye(C * C, 0.0);
  for (index_t i = 0; i < C; ++i) eye[i * C + i] = 1;
  const auto y = net.forward({eye.data(), C, C});
  CHECK(sn.sigma() == doctest::Approx(s1).epsilon(1e-10));
  Matrix wsn = y.matrix();
  for (index_t j = 0; j < C; ++j)
    for (index_t r = 0; r < R; ++r) wsn(r, j) -= bias[r];
  CHECK((wsn - weight_of(net, R, C) / s1).norm() < 1e-10);
  const Eigen::JacobiSVD<Matrix> svd_sn(wsn);
  CHECK(svd_sn.singularValues()(0) == doctest::Approx(1).epsilon(1e-10));
}

TEST_CASE("SpectralNorm converges on an initialised random weight too") {
  constexpr index_t R = 6, C = 8;
  using Spec = fg::Sequential<fg::Input<C>, fg::SpectralNorm<fg::Dense<R>>>;
  fg::Network<Spec, fg::backend::Cpu<double>> net;
  net.initialize(7);
  auto& sn = net.layer<0>();
  const Eigen::JacobiSVD<Matrix> svd(weight_of(net, R, C));
  const auto sv = svd.singularValues();
  for (int i = 0; i < 300; ++i) net.after_step();
  INFO("singular values " << sv.transpose());
  CHECK(sn.sigma() == doctest::Approx(sv(0)).epsilon(1e-8));
  // One step from initialisation is an underestimate (sigma = ||W v|| <= s1).
  fg::Network<Spec, fg::backend::Cpu<double>> fresh;
  fresh.initialize(7);
  const std::vector<double> x(C, 1.0);
  fresh.forward({x.data(), C, 1});
  CHECK(fresh.layer<0>().sigma() <= sv(0) * (1 + 1e-12));
  CHECK(fresh.layer<0>().sigma() > 0.5 * sv(0));
}

TEST_CASE_TEMPLATE("SpectralNorm's forward is pure; only after_step moves u and v", B, FORGERY_DOUBLE_BACKENDS) {
  fg::Network<DenseSN, B> net;
  net.initialize(2);
  auto& sn = net.template layer<0>();
  using L = std::remove_reference_t<decltype(sn)>;
  const auto state = [&] { return std::vector<double>(sn.state(), sn.state() + L::state_count); };
  const auto s0 = state();
  // Initialisation leaves unit vectors.
  CHECK(Eigen::Map<const Eigen::VectorXd>(s0.data(), 4).norm() == doctest::Approx(1).epsilon(1e-12));
  CHECK(Eigen::Map<const Eigen::VectorXd>(s0.data() + 4, 5).norm() == doctest::Approx(1).epsilon(1e-12));

  const auto x = fg::test::normal_buffer<double>(5 * 3, 1, 1);
  const auto dy = fg::test::normal_buffer<double>(2 * 3, 1, 2);
  const auto y1 = net.forward({x.data(), 5, 3});
  const std::vector<double> first(y1.data(), y1.data() + y1.size());
  net.backward({dy.data(), 2, 3});
  const auto y2 = net.forward({x.data(), 5, 3});
  CHECK(std::equal(first.begin(), first.end(), y2.data()));
  CHECK(state() == s0);
  // The raw parameters are never rewritten by the layer.
  const std::vector<double> p(net.params(), net.params() + net.param_count);
  net.after_step();
  CHECK(state() != s0);
  CHECK(std::equal(p.begin(), p.end(), net.params()));
  // Re-initialising draws the same u again.
  net.initialize(2);
  CHECK(state() == s0);
}

// A Dense-like layer without a tangent pass: SpectralNorm around it has none either.
template <index_t Out>
struct PlainDense {
  template <class In>
  struct bind {
    using output_shape = fg::Shape<Out>;
    template <class B>
    struct layer {
      using dense = typename fg::Dense<Out>::template bind<In>::template layer<B>;
      using backend = B;
      using scalar = typename B::scalar;
      using input_shape = In;
      using output_shape = fg::Shape<Out>;
      static constexpr index_t param_count = dense::param_count;
      static constexpr index_t weight_rows = dense::weight_rows, weight_cols = dense::weight_cols;
      dense d;
      void init_params(scalar* p, fg::RandomStream& rng, fg::Init scheme) const { d.init_params(p, rng, scheme); }
      void forward(const scalar* p, fg::ConstBatchView<scalar> x, fg::BatchView<scalar> y, const fg::Context& c) const {
        d.forward(p, x, y, c);
      }
      void backward(const scalar* p, scalar* g, fg::ConstBatchView<scalar> x, fg::ConstBatchView<scalar> y,
                    fg::ConstBatchView<scalar> dy, fg::BatchView<scalar> dx) const {
        d.backward(p, g, x, y, dy, dx);
      }
    };
  };
};

TEST_CASE("SpectralNorm has a tangent pass exactly when the wrapped layer has one") {
  using B = fg::backend::Cpu<double>;
  using Plain = fg::Sequential<fg::Input<5>, fg::SpectralNorm<PlainDense<3>>, fg::Tanh>;
  static_assert(!fg::Network<Plain, B>::supports_dual);
  static_assert(fg::Network<DenseSN, B>::supports_dual);
  static_assert(fg::DualLayer<std::tuple_element_t<0, fg::Network<DenseSN, B>::layers_type>>);
  static_assert(fg::Layer<std::tuple_element_t<0, fg::Network<Plain, B>::layers_type>>);
  fg::test::require_gradients<Plain, B>(2, 3);
}

} // namespace
