// Tests of forgery/metrics/features.hpp: activations at a boundary against a manual forward,
// chunking, eval mode and its restoration, and the errors.
#include "../support.hpp"

#include <cmath>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "forgery/metrics/features.hpp"

namespace {

using fg::index_t;
namespace metrics = fg::metrics;

using Mlp = fg::Sequential<fg::Input<4>, fg::Dense<3>, fg::Tanh, fg::Dense<2>>;

// y = x in eval mode and x + 100 in train mode, so features show which mode produced them;
// throws on an input above 1e30, to test that the mode is restored when a forward throws.
struct ModeProbe {
  template <class In>
  struct bind {
    using output_shape = In;
    template <class B>
    struct layer {
      using backend = B;
      using scalar = typename B::scalar;
      using input_shape = In;
      using output_shape = In;
      static constexpr index_t param_count = 0;
      static constexpr const char* name = "ModeProbe";
      void forward(const scalar*, fg::ConstBatchView<scalar> x, fg::BatchView<scalar> y, const fg::Context& ctx) const {
        const scalar add = ctx.mode == fg::Mode::eval ? scalar(0) : scalar(100);
        for (index_t i = 0; i < x.size(); ++i) {
          if (x.data()[i] > scalar(1e30)) throw std::runtime_error("ModeProbe: input too large");
          y.data()[i] = x.data()[i] + add;
        }
      }
      void backward(const scalar*, scalar*, fg::ConstBatchView<scalar>, fg::ConstBatchView<scalar>,
                    fg::ConstBatchView<scalar> dy, fg::BatchView<scalar> dx) const {
        if (!dx.empty()) B::copy(dy.size(), dy.data(), dx.data());
      }
    };
  };
};

// The MLP's activations at boundaries 0..3 for sample j, computed by hand in double from
// the network's parameters (Dense: W out x in column-major, then b).
template <class Net>
std::vector<Eigen::VectorXd> manual_forward(const Net& net, const typename Net::scalar* x) {
  using S = typename Net::scalar;
  const S* p = net.params();
  const Eigen::Matrix<double, 3, 4> w1 = Eigen::Map<const Eigen::Matrix<S, 3, 4>>(p).template cast<double>();
  const Eigen::Vector3d b1 = Eigen::Map<const Eigen::Matrix<S, 3, 1>>(p + 12).template cast<double>();
  const Eigen::Matrix<double, 2, 3> w2 =
      Eigen::Map<const Eigen::Matrix<S, 2, 3>>(p + Net::param_offsets[2]).template cast<double>();
  const Eigen::Vector2d b2 =
      Eigen::Map<const Eigen::Matrix<S, 2, 1>>(p + Net::param_offsets[2] + 6).template cast<double>();
  const Eigen::Vector4d in = Eigen::Map<const Eigen::Matrix<S, 4, 1>>(x).template cast<double>();
  const Eigen::Vector3d h1 = w1 * in + b1;
  const Eigen::Vector3d h2 = h1.array().tanh().matrix();
  const Eigen::Vector2d out = w2 * h2 + b2;
  return {in, h1, h2, out};
}

} // namespace

TEST_CASE_TEMPLATE("features at each boundary equal a manual forward", B, FORGERY_ALL_BACKENDS) {
  using S = typename B::scalar;
  using Net = fg::Network<Mlp, B>;
  Net net;
  net.initialize(3);
  const index_t n = 10;
  const auto x = fg::test::normal_buffer<S>(4 * n, 4);
  const fg::ConstBatchView<S> data(x.data(), 4, n);
  const double tol = sizeof(S) == 4 ? 1e-5 : 1e-13;
  for (std::size_t b = 0; b <= Net::depth; ++b) {
    const Eigen::MatrixXd f = metrics::extract_features(net, data, b);
    REQUIRE(f.rows() == Net::widths[b]);
    REQUIRE(f.cols() == n);
    double worst = 0;
    for (index_t j = 0; j < n; ++j) {
      const auto manual = manual_forward(net, x.data() + 4 * j);
      worst = std::max(worst, (f.col(j) - manual[b]).cwiseAbs().maxCoeff());
    }
    INFO("boundary ", b);
    CHECK(worst < tol);
  }
  // The penultimate boundary of Input, Dense, Tanh, Dense is the Tanh's output.
  CHECK(metrics::penultimate(net) == 2);
  CHECK(metrics::extract_penultimate(net, data) == metrics::extract_features(net, data, 2));
}

TEST_CASE_TEMPLATE("chunking does not change the features", B, FORGERY_ALL_BACKENDS) {
  using S = typename B::scalar;
  fg::Network<Mlp, B> net;
  net.initialize(5);
  const index_t n = 11;
  const auto x = fg::test::normal_buffer<S>(4 * n, 6);
  const fg::ConstBatchView<S> data(x.data(), 4, n);
  const Eigen::MatrixXd whole = metrics::extract_features(net, data, 2);
  // Chunks of 3 (the last one of 2), 1, exactly n and 4. Each sample's features depend on it
  // alone, but Cpu's GEMM kernel rounds a column differently by its position in a tile (a
  // register block or the remainder), so there the last bits may differ; Reference is exact.
  const bool exact = std::is_same_v<B, fg::backend::Reference<S>>;
  for (const index_t batch : {3, 1, 11, 4}) {
    const Eigen::MatrixXd chunked = metrics::extract_features(net, data, 2, batch);
    INFO("batch ", batch);
    if (exact)
      CHECK(chunked == whole);
    else
      CHECK(fg::test::max_rel_diff(chunked.data(), whole.data(), whole.size()) <= (sizeof(S) == 4 ? 1e-6 : 1e-15));
  }
  // The last chunk's activations are what the network holds afterwards.
  (void)metrics::extract_features(net, data, 3, 4);
  CHECK(net.batch() == 3);
}

TEST_CASE("features are taken in eval mode and the network's mode is restored") {
  using Spec = fg::Sequential<fg::Input<2>, ModeProbe>;
  fg::Network<Spec, fg::backend::Cpu<float>> net;
  const std::vector<float> x = {1.f, 2.f, 3.f, 4.f, 5.f, 6.f};
  const fg::ConstBatchView<float> data(x.data(), 2, 3);
  REQUIRE(net.mode() == fg::Mode::train);
  // In train mode the probe adds 100; the extracted features do not have it.
  CHECK(net.forward(data)(0, 0) == 101.f);
  const Eigen::MatrixXd f = metrics::extract_features(net, data, 1, 2);
  CHECK(f == fg::ConstBatchView<float>(x.data(), 2, 3).matrix().cast<double>());
  CHECK(net.mode() == fg::Mode::train);
  net.eval();
  (void)metrics::extract_features(net, data, 1);
  CHECK(net.mode() == fg::Mode::eval);

  // Restored also when a forward throws, here in the second chunk.
  net.train();
  const std::vector<float> bad = {1.f, 2.f, 3.f, 4.f, 1e31f, 6.f};
  CHECK_THROWS_AS((void)metrics::extract_features(net, fg::ConstBatchView<float>(bad.data(), 2, 3), 1, 2),
                  std::runtime_error);
  CHECK(net.mode() == fg::Mode::train);
}

TEST_CASE("extract_features rejects mismatched data and invalid settings") {
  fg::Network<Mlp, fg::backend::Cpu<double>> net;
  net.initialize(7);
  const std::vector<double> v(20, 0.5);
  const fg::ConstBatchView<double> good(v.data(), 4, 5);
  CHECK_THROWS_AS((void)metrics::extract_features(net, fg::ConstBatchView<double>(v.data(), 5, 4), 1), fg::shape_error);
  CHECK_THROWS_AS((void)metrics::extract_features(net, fg::ConstBatchView<double>(nullptr, 4, 0), 1), fg::config_error);
  CHECK_THROWS_AS((void)metrics::extract_features(net, good, 4), fg::config_error);
  CHECK_THROWS_AS((void)metrics::extract_features(net, good, 1, 0), fg::config_error);
  CHECK_NOTHROW((void)metrics::extract_features(net, good, 3));
  // A mutable view works as the data too.
  std::vector<double> m = v;
  CHECK(metrics::extract_features(net, fg::BatchView<double>(m.data(), 4, 5), 3).cols() == 5);
}
