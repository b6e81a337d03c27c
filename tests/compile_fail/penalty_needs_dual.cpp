// An input-gradient penalty on a critic with a layer that has no tangent pass must not
// compile, and the error must name the layer and say what to use instead.
// expect: has no tangent pass (forward_dual/backward_dual), which an input-gradient penalty needs
#include <vector>

#include <forgery/forgery.hpp>
#include <forgery/penalty/penalty.hpp>

// A user's elementwise layer, y = x^2, with forward and backward only (like BatchNorm, it
// cannot carry a tangent).
struct Square {
  template <class In>
  struct bind {
    using output_shape = In;
    template <class B>
    struct layer {
      using backend = B;
      using scalar = typename B::scalar;
      using input_shape = In;
      using output_shape = In;
      static constexpr fg::index_t param_count = 0;
      void forward(const scalar*, fg::ConstBatchView<scalar> x, fg::BatchView<scalar> y, const fg::Context&) const {
        for (fg::index_t i = 0; i < x.size(); ++i) y.data()[i] = x.data()[i] * x.data()[i];
      }
      void backward(const scalar*, scalar*, fg::ConstBatchView<scalar> x, fg::ConstBatchView<scalar>,
                    fg::ConstBatchView<scalar> dy, fg::BatchView<scalar> dx) const {
        if (dx.empty()) return;
        for (fg::index_t i = 0; i < x.size(); ++i) dx.data()[i] = 2 * x.data()[i] * dy.data()[i];
      }
    };
  };
};

#ifdef FORGERY_COMPILE_FAIL_CONTROL
using Hidden = fg::ReLU;
#else
using Hidden = Square;
#endif

int main() {
  using B = fg::backend::Reference<double>;
  fg::Network<fg::Sequential<fg::Input<3>, fg::Dense<4>, Hidden, fg::Dense<1>>, B> critic;
  critic.initialize(1);
  std::vector<double> real(3 * 2, 0.5), fake(3 * 2, -0.5);
  fg::RandomStream rng{1, 2, 3};
  fg::penalty::Workspace<B> ws;
  const double p = fg::penalty::GradientPenalty{}.apply(critic, {real.data(), 3, 2}, {fake.data(), 3, 2}, rng, ws);
  return p >= 0 ? 0 : 1;
}
