// Conv2d: shape inference, a direct convolution as the oracle, gradient checks (first order
// and tangent pass) over strides, paddings and kernel sizes, Cpu vs Reference, and bitwise
// determinism across thread counts.
#include "../support.hpp"

#include <cstring>
#include <vector>

#include "forgery/layers/conv2d.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {
using fg::index_t;

// The DCGAN critic's trunk on MNIST: 1x28x28 -> 64x14x14 -> 128x7x7.
using CriticTrunk =
    fg::Sequential<fg::Input<1, 28, 28>, fg::Conv2d<64, 4, 2, 1>, fg::LeakyReLU<>, fg::Conv2d<128, 4, 2, 1>>;
static_assert(std::is_same_v<CriticTrunk::output_shape, fg::Shape<128, 7, 7>>);
static_assert(std::is_same_v<fg::Sequential<fg::Input<3, 7, 5>, fg::Conv2d<2, 3>>::output_shape, fg::Shape<2, 5, 3>>);
// Rounding down: (8 + 2 - 3) / 2 + 1 = 4.
static_assert(
    std::is_same_v<fg::Sequential<fg::Input<1, 8, 9>, fg::Conv2d<4, 3, 2, 1>>::output_shape, fg::Shape<4, 4, 5>>);

using Bound = fg::Conv2d<5, 3, 2, 1>::bind<fg::Shape<4, 9, 8>>::layer<fg::backend::Cpu<float>>;
static_assert(Bound::weight_rows == 5 && Bound::weight_cols == 4 * 3 * 3);
static_assert(Bound::weight_count == 5 * 36 && Bound::param_count == 5 * 36 + 5);
static_assert(fg::Conv2d<5, 3, 2, 1, false>::bind<fg::Shape<4, 9, 8>>::layer<fg::backend::Cpu<float>>::param_count ==
              5 * 36);
static_assert(fg::DualLayer<Bound>);

// y_j(o, oy, ox) = b(o) + sum_{c, ky, kx} W(o, (c K + ky) K + kx) x_j(c, oy s - pad + ky, ox s - pad + kx),
// zeros outside the image, written out as plain loops over an explicitly padded copy.
template <index_t C, index_t H, index_t W, index_t Out, index_t K, index_t Stride, index_t Pad, bool HasBias>
std::vector<double> direct_conv(const double* p, const double* x, index_t batch) {
  constexpr index_t Hp = H + 2 * Pad, Wp = W + 2 * Pad;
  constexpr index_t Ho = (Hp - K) / Stride + 1, Wo = (Wp - K) / Stride + 1;
  std::vector<double> padded(static_cast<std::size_t>(C * Hp * Wp));
  std::vector<double> y(static_cast<std::size_t>(batch * Out * Ho * Wo));
  auto weight = [&](index_t o, index_t c, index_t ky, index_t kx) { return p[((c * K + ky) * K + kx) * Out + o]; };
  for (index_t j = 0; j < batch; ++j) {
    std::fill(padded.begin(), padded.end(), 0.0);
    for (index_t c = 0; c < C; ++c)
      for (index_t iy = 0; iy < H; ++iy)
        for (index_t ix = 0; ix < W; ++ix)
          padded[static_cast<std::size_t>((c * Hp + iy + Pad) * Wp + ix + Pad)] = x[((j * C + c) * H + iy) * W + ix];
    for (index_t o = 0; o < Out; ++o)
      for (index_t oy = 0; oy < Ho; ++oy)
        for (index_t ox = 0; ox < Wo; ++ox) {
          double acc = HasBias ? p[Out * C * K * K + o] : 0.0;
          for (index_t c = 0; c < C; ++c)
            for (index_t ky = 0; ky < K; ++ky)
              for (index_t kx = 0; kx < K; ++kx)
                acc += weight(o, c, ky, kx) *
                       padded[static_cast<std::size_t>((c * Hp + oy * Stride + ky) * Wp + ox * Stride + kx)];
          y[static_cast<std::size_t>(((j * Out + o) * Ho + oy) * Wo + ox)] = acc;
        }
  }
  return y;
}

template <index_t C, index_t H, index_t W, index_t Out, index_t K, index_t Stride, index_t Pad, bool HasBias = true>
void check_against_direct(index_t batch) {
  using Spec = fg::Sequential<fg::Input<C, H, W>, fg::Conv2d<Out, K, Stride, Pad, HasBias>>;
  fg::Network<Spec, fg::backend::Reference<double>> net;
  const auto params = fg::test::normal_buffer<double>(net.param_count, 31);
  std::copy(params.begin(), params.end(), net.params());
  const auto x = fg::test::normal_buffer<double>(C * H * W * batch, 32);
  const auto y = net.forward({x.data(), C * H * W, batch});
  const std::vector<double> expected =
      direct_conv<C, H, W, Out, K, Stride, Pad, HasBias>(params.data(), x.data(), batch);
  REQUIRE(static_cast<std::size_t>(y.size()) == expected.size());
  CHECK(fg::test::max_rel_diff(y.data(), expected.data(), y.size()) < 1e-13);
}

// A convolution is linear in each variable the checker perturbs (one input value, tangent
// value or parameter at a time), so central differences are exact for any step. A step of
// 1e-3 leaves only rounding, far below the tolerance; the default 1e-6 step of
// fg::test::require_gradients leaves rounding errors that reach ~1e-6 relative on the
// smallest entries judged (pixels under a single tap), so it is kept for the nonlinear stacks.
template <class Spec, class B>
void require_exact_gradients(std::uint64_t seed, index_t batch) {
  fg::Network<Spec, B> net;
  net.initialize(seed);
  fg::testing::GradientCheckOptions opts;
  opts.batch = batch;
  opts.step = 1e-3;
  opts.tolerance = 1e-7;
  const auto report = fg::testing::check_gradients(net, opts);
  INFO(report.summary());
  CHECK(report.passed());
  CHECK(report.dual_checked);
}

TEST_CASE("Conv2d is a cross-correlation with weights Out x (C K K), column (c K + ky) K + kx") {
  // One 3x3 image 1..9 and the kernel [[1, 0], [0, -1]]: y = x(i, j) - x(i + 1, j + 1) = -4.
  // A second output channel reads only channel 0's top-right tap, plus its bias.
  using Spec = fg::Sequential<fg::Input<1, 3, 3>, fg::Conv2d<2, 2>>;
  fg::Network<Spec, fg::backend::Reference<double>> net;
  // Columns ckk = ky * 2 + kx, each holding (o = 0, o = 1); then the biases.
  const double params[] = {1, 0, 0, 1, 0, 0, -1, 0, 0, 10};
  std::copy(std::begin(params), std::end(params), net.params());
  const double x[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const auto y = net.forward({x, 9, 1});
  REQUIRE(y.features() == 8);
  for (index_t i = 0; i < 4; ++i) CHECK(y(i, 0) == -4);
  CHECK(y(4, 0) == 12); // x(0, 1) + 10
  CHECK(y(5, 0) == 13);
  CHECK(y(6, 0) == 15);
  CHECK(y(7, 0) == 16);
}

TEST_CASE("Conv2d matches a direct convolution") {
  check_against_direct<2, 5, 6, 3, 3, 1, 1>(2);
  check_against_direct<3, 7, 6, 2, 4, 2, 1>(3);
  check_against_direct<1, 6, 5, 2, 3, 2, 2>(2);
  check_against_direct<2, 4, 5, 3, 1, 1, 0>(2);
  check_against_direct<3, 9, 7, 4, 3, 3, 0, false>(2);
  check_against_direct<1, 28, 28, 4, 4, 2, 1>(1);
}

TEST_CASE_TEMPLATE("Conv2d gradients match finite differences", B, FORGERY_DOUBLE_BACKENDS) {
  using fg::Input, fg::Sequential, fg::Conv2d;
  SUBCASE("stride 1, pad 1, K 3") { require_exact_gradients<Sequential<Input<2, 4, 5>, Conv2d<2, 3, 1, 1>>, B>(1, 2); }
  SUBCASE("stride 2, pad 1, K 4") { require_exact_gradients<Sequential<Input<3, 7, 6>, Conv2d<2, 4, 2, 1>>, B>(2, 2); }
  SUBCASE("stride 2, pad 2, K 3") { require_exact_gradients<Sequential<Input<1, 6, 5>, Conv2d<2, 3, 2, 2>>, B>(3, 3); }
  SUBCASE("K 1") { require_exact_gradients<Sequential<Input<2, 4, 5>, Conv2d<3, 1>>, B>(4, 3); }
  SUBCASE("no bias") { require_exact_gradients<Sequential<Input<2, 5, 5>, Conv2d<2, 3, 2, 0, false>>, B>(5, 2); }
  SUBCASE("two convolutions with a nonlinearity between them") {
    fg::test::require_gradients<Sequential<Input<1, 6, 5>, Conv2d<2, 4, 2, 1>, fg::Tanh, Conv2d<2, 3, 1, 1>>, B>(6, 2);
  }
}

TEST_CASE_TEMPLATE("Conv2d on Cpu matches the Reference backend", S, FORGERY_SCALARS) {
  fg::test::compare_with_reference<fg::Sequential<fg::Input<3, 7, 6>, fg::Conv2d<4, 3, 2, 1>>, S>(3);
  // Every GEMM takes the tiled, multi-threaded path (m n k = 144 * 2 * 16 * 72 >= 2^18); the
  // batch stays small because the weight gradient sums over k = 144 * batch products, which
  // float rounds beyond the comparison's tolerance for large k.
  fg::test::compare_with_reference<fg::Sequential<fg::Input<8, 12, 12>, fg::Conv2d<16, 3, 1, 1>>, S>(2);
}

TEST_CASE("Conv2d backward lowers its input again when it is not the input of the last forward") {
  using Layer = fg::Conv2d<3, 3, 2, 1>::bind<fg::Shape<2, 6, 5>>::layer<fg::backend::Reference<double>>;
  constexpr index_t nin = 2 * 6 * 5, nout = Layer::output_shape::size, batch = 2;
  const Layer layer{};
  const auto p = fg::test::normal_buffer<double>(Layer::param_count, 41);
  const auto x1 = fg::test::normal_buffer<double>(nin * batch, 42);
  const auto x2 = fg::test::normal_buffer<double>(nin * batch, 43);
  const auto dy = fg::test::normal_buffer<double>(nout * batch, 44);
  fg::HostBuffer<double> y(nout * batch), g_fresh(Layer::param_count), g_stale(Layer::param_count);
  const fg::Context ctx{};
  layer.forward(p.data(), {x2.data(), nin, batch}, {y.data(), nout, batch}, ctx);
  layer.backward(p.data(), g_fresh.data(), {x2.data(), nin, batch}, {y.data(), nout, batch}, {dy.data(), nout, batch},
                 {});
  layer.forward(p.data(), {x1.data(), nin, batch}, {y.data(), nout, batch}, ctx);
  layer.backward(p.data(), g_stale.data(), {x2.data(), nin, batch}, {y.data(), nout, batch}, {dy.data(), nout, batch},
                 {});
  CHECK(std::equal(g_fresh.begin(), g_fresh.end(), g_stale.begin()));
  CHECK(std::any_of(g_fresh.begin(), g_fresh.end(), [](double v) { return v != 0; }));
}

TEST_CASE_TEMPLATE("Conv2d initialisation uses fan-in C K K", S, FORGERY_SCALARS) {
  using Spec = fg::Sequential<fg::Input<32, 8, 8>, fg::Conv2d<64, 4, 2, 1>>;
  fg::Network<Spec, fg::backend::Cpu<S>> net;
  net.initialize(3, fg::Init::he_normal);
  constexpr index_t nw = 64 * 32 * 16;
  double sq = 0;
  for (index_t i = 0; i < nw; ++i) sq += static_cast<double>(net.params()[i]) * static_cast<double>(net.params()[i]);
  CHECK(std::sqrt(sq / nw) == doctest::Approx(std::sqrt(2.0 / (32 * 16))).epsilon(0.02));
  for (index_t i = nw; i < net.param_count; ++i) CHECK(net.params()[i] == 0);
}

#if defined(_OPENMP)
TEST_CASE_TEMPLATE("Conv2d on Cpu is bitwise identical with 1 and 2 threads", S, FORGERY_SCALARS) {
  // The first layer's GEMMs take the tiled path (m n k = 144 * 16 * 2 * 72 >= 2^18); the
  // parallel paths of im2col and col2im are compared with Reference in test_im2col.cpp.
  using Spec = fg::Sequential<fg::Input<8, 12, 12>, fg::Conv2d<2, 3, 1, 1>, fg::LeakyReLU<>, fg::Conv2d<2, 4, 2, 1>>;
  constexpr index_t batch = 16, nin = Spec::input_shape::size, nout = Spec::output_shape::size;
  const auto x = fg::test::normal_buffer<S>(nin * batch, 51);
  const auto tx = fg::test::normal_buffer<S>(nin * batch, 52);
  const auto dy = fg::test::normal_buffer<S>(nout * batch, 53);
  const auto dty = fg::test::normal_buffer<S>(nout * batch, 54);
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    fg::Network<Spec, fg::backend::Cpu<S>> net;
    net.initialize(9);
    std::vector<S> out;
    auto keep = [&](const S* d, index_t n) { out.insert(out.end(), d, d + n); };
    const auto y = net.forward({x.data(), nin, batch});
    keep(y.data(), y.size());
    const auto dx = net.backward({dy.data(), nout, batch});
    keep(dx.data(), dx.size());
    keep(net.grads(), net.param_count);
    const auto [yd, ty] = net.forward_dual({x.data(), nin, batch}, {tx.data(), nin, batch});
    keep(ty.data(), ty.size());
    const auto [gx, gtx] = net.backward_dual({dy.data(), nout, batch}, {dty.data(), nout, batch});
    keep(gx.data(), gx.size());
    keep(gtx.data(), gtx.size());
    keep(net.grads(), net.param_count);
    return out;
  };
  const int saved = omp_get_max_threads();
  const std::vector<S> one = run(1), two = run(2);
  omp_set_num_threads(saved);
  REQUIRE(one.size() == two.size());
  CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(S)) == 0);
}
#endif

} // namespace
