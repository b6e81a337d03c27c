// Reshape and Flatten: shapes at compile time, values unchanged, gradients pass through.
#include "../support.hpp"

namespace {

TEST_CASE("Reshape and Flatten change the per-sample shape, not the values") {
  using Spec = fg::Sequential<fg::Input<12>, fg::Reshape<3, 2, 2>, fg::Flatten, fg::Reshape<4, 3>>;
  static_assert(std::is_same_v<Spec::output_shape, fg::Shape<4, 3>>);
  using Img = fg::Sequential<fg::Input<1, 28, 28>, fg::Flatten, fg::Dense<10>>;
  static_assert(std::is_same_v<Img::output_shape, fg::Shape<10>>);
  fg::Network<Spec, fg::backend::Cpu<float>> net;
  const auto x = fg::test::normal_buffer<float>(24, 3);
  const auto y = net.forward({x.data(), 12, 2});
  CHECK(y.features() == 12);
  CHECK(std::equal(x.begin(), x.end(), y.data()));
}

TEST_CASE_TEMPLATE("reshape gradients match finite differences", B, FORGERY_DOUBLE_BACKENDS) {
  fg::test::require_gradients<fg::Sequential<fg::Input<2, 3>, fg::Flatten, fg::Dense<4>, fg::Reshape<2, 2>>, B>();
}

} // namespace
