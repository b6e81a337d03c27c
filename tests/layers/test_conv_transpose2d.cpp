// ConvTranspose2d: shape inference, a direct scatter-form transposed convolution as the
// oracle, the adjoint identity with Conv2d, gradient checks, Cpu vs Reference, and bitwise
// determinism across thread counts.
#include "../support.hpp"

#include <cstring>
#include <vector>

#include "forgery/layers/conv2d.hpp"
#include "forgery/layers/conv_transpose2d.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {
using fg::index_t;

// The DCGAN generator's head on MNIST: 128x7x7 -> 64x14x14 -> 1x28x28.
using GeneratorHead =
    fg::Sequential<fg::Input<128, 7, 7>, fg::ConvTranspose2d<64, 4, 2, 1>, fg::ReLU, fg::ConvTranspose2d<1, 4, 2, 1>>;
static_assert(std::is_same_v<GeneratorHead::output_shape, fg::Shape<1, 28, 28>>);
static_assert(
    std::is_same_v<fg::Sequential<fg::Input<2, 3, 4>, fg::ConvTranspose2d<5, 3>>::output_shape, fg::Shape<5, 5, 6>>);
static_assert(
    std::is_same_v<fg::Sequential<fg::Input<2, 3, 2>, fg::ConvTranspose2d<1, 1, 2>>::output_shape, fg::Shape<1, 5, 3>>);

using Bound = fg::ConvTranspose2d<5, 3, 2, 1>::bind<fg::Shape<4, 6, 7>>::layer<fg::backend::Cpu<float>>;
static_assert(Bound::weight_rows == 4 && Bound::weight_cols == 5 * 3 * 3);
static_assert(Bound::weight_count == 4 * 45 && Bound::param_count == 4 * 45 + 5);
static_assert(
    fg::ConvTranspose2d<5, 3, 2, 1, false>::bind<fg::Shape<4, 6, 7>>::layer<fg::backend::Cpu<float>>::param_count ==
    4 * 45);
static_assert(fg::DualLayer<Bound>);

// Every input pixel scattered through the kernel: y_j(o, iy s - pad + ky, ix s - pad + kx) +=
// W(c, (o K + ky) K + kx) x_j(c, iy, ix), on the full (uncropped) output, then cropped by pad.
template <index_t C, index_t H, index_t W, index_t Out, index_t K, index_t Stride, index_t Pad, bool HasBias>
std::vector<double> direct_conv_transpose(const double* p, const double* x, index_t batch) {
  constexpr index_t Hf = (H - 1) * Stride + K, Wf = (W - 1) * Stride + K; // before cropping
  constexpr index_t Ho = Hf - 2 * Pad, Wo = Wf - 2 * Pad;
  std::vector<double> full(static_cast<std::size_t>(Out * Hf * Wf));
  std::vector<double> y(static_cast<std::size_t>(batch * Out * Ho * Wo));
  auto weight = [&](index_t c, index_t o, index_t ky, index_t kx) { return p[((o * K + ky) * K + kx) * C + c]; };
  for (index_t j = 0; j < batch; ++j) {
    std::fill(full.begin(), full.end(), 0.0);
    for (index_t c = 0; c < C; ++c)
      for (index_t iy = 0; iy < H; ++iy)
        for (index_t ix = 0; ix < W; ++ix) {
          const double v = x[((j * C + c) * H + iy) * W + ix];
          for (index_t o = 0; o < Out; ++o)
            for (index_t ky = 0; ky < K; ++ky)
              for (index_t kx = 0; kx < K; ++kx)
                full[static_cast<std::size_t>((o * Hf + iy * Stride + ky) * Wf + ix * Stride + kx)] +=
                    weight(c, o, ky, kx) * v;
        }
    for (index_t o = 0; o < Out; ++o)
      for (index_t oy = 0; oy < Ho; ++oy)
        for (index_t ox = 0; ox < Wo; ++ox)
          y[static_cast<std::size_t>(((j * Out + o) * Ho + oy) * Wo + ox)] =
              full[static_cast<std::size_t>((o * Hf + oy + Pad) * Wf + ox + Pad)] +
              (HasBias ? p[C * Out * K * K + o] : 0.0);
  }
  return y;
}

template <index_t C, index_t H, index_t W, index_t Out, index_t K, index_t Stride, index_t Pad, bool HasBias = true>
void check_against_direct(index_t batch) {
  using Spec = fg::Sequential<fg::Input<C, H, W>, fg::ConvTranspose2d<Out, K, Stride, Pad, HasBias>>;
  fg::Network<Spec, fg::backend::Reference<double>> net;
  const auto params = fg::test::normal_buffer<double>(net.param_count, 61);
  std::copy(params.begin(), params.end(), net.params());
  const auto x = fg::test::normal_buffer<double>(C * H * W * batch, 62);
  const auto y = net.forward({x.data(), C * H * W, batch});
  const std::vector<double> expected =
      direct_conv_transpose<C, H, W, Out, K, Stride, Pad, HasBias>(params.data(), x.data(), batch);
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

TEST_CASE("ConvTranspose2d matches a direct scatter-form transposed convolution") {
  check_against_direct<2, 3, 4, 3, 4, 2, 1>(2);
  check_against_direct<3, 4, 3, 2, 3, 1, 1>(3);
  check_against_direct<1, 3, 3, 2, 3, 2, 2>(2);
  check_against_direct<2, 3, 2, 1, 1, 2, 0>(2);
  check_against_direct<2, 2, 3, 2, 3, 3, 0, false>(2);
  check_against_direct<4, 7, 7, 2, 4, 2, 1>(1);
}

// <conv(x), y> == <x, convT(y)> when both use the same parameter memory: Conv2d's
// Out x (C K K) weight is ConvTranspose2d's (its input channels) x (its output channels K K).
template <index_t C, index_t H, index_t W, index_t Out, index_t K, index_t Stride, index_t Pad, class B>
void check_adjoint() {
  using S = typename B::scalar;
  using Conv = fg::Sequential<fg::Input<C, H, W>, fg::Conv2d<Out, K, Stride, Pad, false>>;
  using Mid = typename Conv::output_shape;
  using ConvT =
      fg::Sequential<fg::Input<Out, Mid::dims[1], Mid::dims[2]>, fg::ConvTranspose2d<C, K, Stride, Pad, false>>;
  static_assert(std::is_same_v<typename ConvT::output_shape, fg::Shape<C, H, W>>,
                "pick a geometry with (H + 2 Pad - K) divisible by Stride, so the shapes round-trip");
  fg::Network<Conv, B> conv;
  fg::Network<ConvT, B> convt;
  static_assert(fg::Network<Conv, B>::param_count == fg::Network<ConvT, B>::param_count);
  conv.initialize(71);
  std::copy(conv.params(), conv.params() + conv.param_count, convt.params());
  constexpr index_t batch = 2, nx = C * H * W, ny = Mid::size;
  const auto x = fg::test::normal_buffer<S>(nx * batch, 72);
  const auto y = fg::test::normal_buffer<S>(ny * batch, 73);
  const auto cx = conv.forward({x.data(), nx, batch});
  const auto ty = convt.forward({y.data(), ny, batch});
  const S lhs = B::dot(cx.size(), cx.data(), y.data());
  const S rhs = B::dot(ty.size(), x.data(), ty.data());
  CHECK(std::abs(lhs) > 0.1);
  CHECK(std::abs(lhs - rhs) <= 1e-12 * std::max(S(1), std::abs(lhs)));
}

TEST_CASE_TEMPLATE("ConvTranspose2d is the adjoint of Conv2d with the same weights", B, FORGERY_DOUBLE_BACKENDS) {
  check_adjoint<2, 7, 5, 3, 3, 2, 1, B>();
  check_adjoint<3, 6, 8, 2, 4, 2, 1, B>();
  check_adjoint<1, 5, 4, 2, 3, 1, 2, B>();
  check_adjoint<2, 4, 6, 2, 1, 1, 0, B>();
}

TEST_CASE_TEMPLATE("ConvTranspose2d gradients match finite differences", B, FORGERY_DOUBLE_BACKENDS) {
  using fg::Input, fg::Sequential, fg::ConvTranspose2d;
  SUBCASE("stride 2, pad 1, K 4") {
    require_exact_gradients<Sequential<Input<3, 3, 2>, ConvTranspose2d<2, 4, 2, 1>>, B>(1, 2);
  }
  SUBCASE("stride 1, pad 1, K 3") {
    require_exact_gradients<Sequential<Input<2, 4, 3>, ConvTranspose2d<2, 3, 1, 1>>, B>(2, 2);
  }
  SUBCASE("stride 2, pad 2, K 3") {
    require_exact_gradients<Sequential<Input<1, 3, 3>, ConvTranspose2d<2, 3, 2, 2>>, B>(3, 3);
  }
  SUBCASE("K 1, stride 2") { require_exact_gradients<Sequential<Input<2, 3, 2>, ConvTranspose2d<2, 1, 2>>, B>(4, 3); }
  SUBCASE("no bias") {
    require_exact_gradients<Sequential<Input<2, 2, 3>, ConvTranspose2d<2, 3, 2, 0, false>>, B>(5, 2);
  }
  SUBCASE("two transposed convolutions with a nonlinearity between them") {
    fg::test::require_gradients<
        Sequential<Input<3, 2, 2>, ConvTranspose2d<2, 4, 2, 1>, fg::Tanh, ConvTranspose2d<1, 3, 1, 1>>, B>(6, 2);
  }
}

TEST_CASE_TEMPLATE("ConvTranspose2d on Cpu matches the Reference backend", S, FORGERY_SCALARS) {
  fg::test::compare_with_reference<fg::Sequential<fg::Input<3, 4, 3>, fg::ConvTranspose2d<2, 4, 2, 1>>, S>(3);
  // Every GEMM takes the tiled, multi-threaded path (m n k >= 2^18 with m = 36 * 2 pixels,
  // n = 8 * 16 weight columns, k = 32 channels; the weight gradient's k = 72).
  fg::test::compare_with_reference<fg::Sequential<fg::Input<32, 6, 6>, fg::ConvTranspose2d<8, 4, 2, 1>>, S>(2);
}

TEST_CASE("ConvTranspose2d backward moves its input again when it is not the input of the last forward") {
  using Layer = fg::ConvTranspose2d<3, 3, 2, 1>::bind<fg::Shape<2, 3, 4>>::layer<fg::backend::Reference<double>>;
  constexpr index_t nin = 2 * 3 * 4, nout = Layer::output_shape::size, batch = 2;
  const Layer layer{};
  const auto p = fg::test::normal_buffer<double>(Layer::param_count, 81);
  const auto x1 = fg::test::normal_buffer<double>(nin * batch, 82);
  const auto x2 = fg::test::normal_buffer<double>(nin * batch, 83);
  const auto dy = fg::test::normal_buffer<double>(nout * batch, 84);
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

TEST_CASE_TEMPLATE("ConvTranspose2d initialisation uses fan-in C K K", S, FORGERY_SCALARS) {
  using Spec = fg::Sequential<fg::Input<64, 4, 4>, fg::ConvTranspose2d<16, 4, 2, 1>>;
  fg::Network<Spec, fg::backend::Cpu<S>> net;
  net.initialize(3, fg::Init::he_normal);
  constexpr index_t nw = 64 * 16 * 16;
  double sq = 0;
  for (index_t i = 0; i < nw; ++i) sq += static_cast<double>(net.params()[i]) * static_cast<double>(net.params()[i]);
  CHECK(std::sqrt(sq / nw) == doctest::Approx(std::sqrt(2.0 / (64 * 16))).epsilon(0.02));
  for (index_t i = nw; i < net.param_count; ++i) CHECK(net.params()[i] == 0);
}

#if defined(_OPENMP)
TEST_CASE_TEMPLATE("ConvTranspose2d on Cpu is bitwise identical with 1 and 2 threads", S, FORGERY_SCALARS) {
  // The first layer's GEMMs take the tiled path (m n k = 16 * 10 * 128 * 16 >= 2^18); the
  // parallel paths of im2col and col2im are compared with Reference in test_im2col.cpp.
  using Spec =
      fg::Sequential<fg::Input<16, 4, 4>, fg::ConvTranspose2d<8, 4, 2, 1>, fg::LeakyReLU<>, fg::ConvTranspose2d<2, 3>>;
  constexpr index_t batch = 10, nin = Spec::input_shape::size, nout = Spec::output_shape::size;
  const auto x = fg::test::normal_buffer<S>(nin * batch, 91);
  const auto tx = fg::test::normal_buffer<S>(nin * batch, 92);
  const auto dy = fg::test::normal_buffer<S>(nout * batch, 93);
  const auto dty = fg::test::normal_buffer<S>(nout * batch, 94);
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
