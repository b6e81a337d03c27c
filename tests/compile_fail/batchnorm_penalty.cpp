// An input-gradient penalty on a critic with BatchNorm must not compile: BatchNorm has no
// tangent pass, and the error must name BatchNorm and say what to use instead. The
// instantiation trace names the layer, tangent_pass_check<forgery::detail::BatchNormLayer<...>>.
// expect: Use LayerNorm or no normalisation instead of BatchNorm
#include <vector>

#include <forgery/forgery.hpp>
#include <forgery/layers/batch_norm.hpp>
#include <forgery/layers/layer_norm.hpp>
#include <forgery/penalty/penalty.hpp>

#ifdef FORGERY_COMPILE_FAIL_CONTROL
using Norm = fg::LayerNorm<>;
#else
using Norm = fg::BatchNorm<>;
#endif

int main() {
  using B = fg::backend::Reference<double>;
  fg::Network<fg::Sequential<fg::Input<3>, fg::Dense<4>, Norm, fg::LeakyReLU<>, fg::Dense<1>>, B> critic;
  critic.initialize(1);
  std::vector<double> real(3 * 2, 0.5), fake(3 * 2, -0.5);
  fg::RandomStream rng{1, 2, 3};
  fg::penalty::Workspace<B> ws;
  const double p = fg::penalty::GradientPenalty{}.apply(critic, {real.data(), 3, 2}, {fake.data(), 3, 2}, rng, ws);
  return p >= 0 ? 0 : 1;
}
