// check_gradients must catch wrong gradients: a layer with a deliberately wrong backward,
// and one with a wrong tangent pass, are reported as failures.
#include "../support.hpp"

namespace {
using fg::index_t;

// y = x^2 elementwise; `Bug` selects which hand-written pass is wrong.
enum class Bug { none, backward, tangent, backward_dual };

template <Bug bug>
struct Square {
  template <class In>
  struct bind {
    using output_shape = In;
    template <class B>
    struct layer {
      using backend = B;
      using scalar = typename B::scalar;
      using S = scalar;
      using input_shape = In;
      using output_shape = In;
      static constexpr index_t param_count = 0;
      void forward(const S*, fg::ConstBatchView<S> x, fg::BatchView<S> y, const fg::Context&) const {
        for (index_t i = 0; i < x.size(); ++i) y.data()[i] = x.data()[i] * x.data()[i];
      }
      void backward(const S*, S*, fg::ConstBatchView<S> x, fg::ConstBatchView<S>, fg::ConstBatchView<S> dy,
                    fg::BatchView<S> dx) const {
        if (dx.empty()) return;
        const S k = bug == Bug::backward ? S(2.001) : S(2);
        for (index_t i = 0; i < x.size(); ++i) dx.data()[i] = k * x.data()[i] * dy.data()[i];
      }
      void forward_dual(const S* p, fg::ConstBatchView<S> x, fg::ConstBatchView<S> tx, fg::BatchView<S> y,
                        fg::BatchView<S> ty, const fg::Context& c) const {
        forward(p, x, y, c);
        const S k = bug == Bug::tangent ? S(1.999) : S(2);
        for (index_t i = 0; i < x.size(); ++i) ty.data()[i] = k * x.data()[i] * tx.data()[i];
      }
      void backward_dual(const S*, S*, fg::ConstBatchView<S> x, fg::ConstBatchView<S> tx, fg::ConstBatchView<S>,
                         fg::ConstBatchView<S>, fg::ConstBatchView<S> gy, fg::ConstBatchView<S> gty,
                         fg::BatchView<S> gx, fg::BatchView<S> gtx) const {
        // y = x^2, ty = 2 x tx: gx = 2 x gy + 2 tx gty, gtx = 2 x gty.
        const S k = bug == Bug::backward_dual ? S(0) : S(2);
        for (index_t i = 0; i < x.size(); ++i) {
          if (!gx.empty()) gx.data()[i] = 2 * x.data()[i] * gy.data()[i] + k * tx.data()[i] * gty.data()[i];
          if (!gtx.empty()) gtx.data()[i] = 2 * x.data()[i] * gty.data()[i];
        }
      }
    };
  };
};

template <Bug bug>
fg::testing::GradientCheckReport check() {
  using Spec = fg::Sequential<fg::Input<3>, fg::Dense<4>, Square<bug>, fg::Dense<2>>;
  fg::Network<Spec, fg::backend::Reference<double>> net;
  net.initialize(1);
  return fg::testing::check_gradients(net);
}

TEST_CASE("a correct user layer passes") {
  const auto r = check<Bug::none>();
  INFO(r.summary());
  CHECK(r.passed());
}

TEST_CASE("a wrong backward is caught in input and parameter gradients") {
  const auto r = check<Bug::backward>();
  CHECK_FALSE(r.passed());
  CHECK(r.input > 1e-4);
  CHECK(r.params > 1e-4);
}

TEST_CASE("a wrong tangent is caught") {
  const auto r = check<Bug::tangent>();
  CHECK_FALSE(r.passed());
  CHECK(r.tangent > 1e-4);
  CHECK(r.input < 1e-6);
}

TEST_CASE("a backward_dual that drops the second-order term is caught") {
  const auto r = check<Bug::backward_dual>();
  CHECK_FALSE(r.passed());
  CHECK(r.dual_input > 1e-4);
  CHECK(r.dual_params > 1e-4);
  CHECK(r.tangent < 1e-6);
}

TEST_CASE("the check leaves the parameters unchanged") {
  using Spec = fg::Sequential<fg::Input<3>, fg::Dense<4>, fg::Tanh>;
  fg::Network<Spec, fg::backend::Reference<double>> net;
  net.initialize(4);
  const std::vector<double> before(net.params(), net.params() + net.param_count);
  fg::testing::check_gradients(net);
  CHECK(std::equal(before.begin(), before.end(), net.params()));
}

} // namespace
