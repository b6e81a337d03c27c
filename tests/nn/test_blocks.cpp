// Blocks: a Sequential nested in a Sequential, and Residual<Main, Shortcut>. A nested
// network computes bit for bit what its flat equivalent computes; every gradient, first
// order and through the tangent pass, matches finite differences in double; hooks (state,
// initialisation, the after-step refresh, labels, batch statistics) reach layers at any
// depth; and a Trainer of block networks resumes bit for bit.
#include "../support.hpp"

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <omp.h>

#include "forgery/forgery.hpp"

namespace {
using fg::index_t;

template <class S>
std::vector<S> normal(std::size_t n, std::uint64_t stream) {
  std::vector<S> v(n);
  fg::RandomStream rng{77, stream, 0};
  fg::backend::Reference<S>::fill_normal(static_cast<index_t>(n), v.data(), rng, S(0), S(1));
  return v;
}

template <class T>
bool same_bits(const T* a, const T* b, std::size_t n) {
  return std::memcmp(a, b, n * sizeof(T)) == 0;
}

// ---- nesting -------------------------------------------------------------------------------

using Flat =
    fg::Sequential<fg::Input<6>, fg::Dense<7>, fg::Tanh, fg::Dense<5>, fg::LeakyReLU<>, fg::LayerNorm<>, fg::Dense<2>>;
using Nested =
    fg::Sequential<fg::Input<6>, fg::Sequential<fg::Dense<7>, fg::Tanh>,
                   fg::Sequential<fg::Input<7>, fg::Sequential<fg::Dense<5>>, fg::LeakyReLU<>, fg::LayerNorm<>>,
                   fg::Dense<2>>;

TEST_CASE("a nested network's shapes, offsets and traits are computed at compile time") {
  using Net = fg::Network<Nested, fg::backend::Cpu<float>>;
  static_assert(Net::depth == 3);
  static_assert(Net::leaf_count == 6);
  static_assert(Net::param_count == fg::Network<Flat, fg::backend::Cpu<float>>::param_count);
  static_assert(Net::param_offsets[1] == 6 * 7 + 7 &&
                Net::param_offsets[2] == Net::param_offsets[1] + 7 * 5 + 5 + 2 * 5);
  static_assert(Net::widths[1] == 7 && Net::widths[2] == 5 && Net::widths[3] == 2);
  static_assert(Net::supports_dual && !Net::uses_batch_statistics && Net::label_classes == 0);
  static_assert(fg::TangentLayer<std::tuple_element_t<1, Net::layers_type>>);
  static_assert(fg::LayerSpec<fg::Sequential<fg::Dense<3>>> && fg::LayerSpec<fg::Residual<fg::Dense<3>>>);
  // A block with BatchNorm has no tangent pass, and says so through the concepts.
  using WithNorm = fg::Sequential<fg::Input<4>, fg::Sequential<fg::Dense<4>, fg::BatchNorm<>>, fg::Dense<1>>;
  static_assert(!fg::Network<WithNorm, fg::backend::Cpu<float>>::supports_dual);
  static_assert(fg::Network<WithNorm, fg::backend::Cpu<float>>::uses_batch_statistics);
  static_assert(!fg::DualLayer<std::tuple_element_t<0, fg::Network<WithNorm, fg::backend::Cpu<float>>::layers_type>>);
}

TEST_CASE_TEMPLATE("a nested network computes its flat equivalent's values bit for bit", B, fg::backend::Cpu<float>,
                   fg::backend::Cpu<double>, fg::backend::Reference<double>) {
  using S = typename B::scalar;
  fg::Network<Flat, B> flat;
  fg::Network<Nested, B> nested;
  flat.initialize(3);
  nested.initialize(3);
  // The layouts agree, so the flat network's weights serve both.
  std::memcpy(nested.params(), flat.params(), sizeof(S) * flat.param_count);
  const index_t n = 5;
  const auto x = normal<S>(6 * n, 1), t = normal<S>(6 * n, 2), dy = normal<S>(2 * n, 3), q = normal<S>(2 * n, 4);
  const fg::ConstBatchView<S> xv(x.data(), 6, n), tv(t.data(), 6, n), dyv(dy.data(), 2, n), qv(q.data(), 2, n);

  const auto y1 = flat.forward(xv);
  const auto y2 = nested.forward(xv);
  CHECK(same_bits(y1.data(), y2.data(), y1.size()));
  // The nested network's boundaries 0, 1, 2, 3 are the flat one's 0, 2, 5, 6.
  const std::size_t flat_boundary[] = {0, 2, 5, 6};
  for (std::size_t b = 0; b <= 3; ++b)
    CHECK(
        same_bits(flat.activation(flat_boundary[b]).data(), nested.activation(b).data(), nested.activation(b).size()));
  flat.zero_grad();
  nested.zero_grad();
  const auto d1 = flat.backward(dyv);
  const auto d2 = nested.backward(dyv);
  CHECK(same_bits(d1.data(), d2.data(), d1.size()));
  CHECK(same_bits(flat.grads(), nested.grads(), flat.param_count));

  const auto [fy, fty] = flat.forward_tangent(tv);
  const auto [ny, nty] = nested.forward_tangent(tv);
  CHECK(same_bits(fty.data(), nty.data(), fty.size()));
  const auto [fy2, fty2] = flat.forward_dual(xv, tv);
  const auto [ny2, nty2] = nested.forward_dual(xv, tv);
  CHECK(same_bits(fty2.data(), nty2.data(), fty2.size()));
  flat.zero_grad();
  nested.zero_grad();
  const auto [fgx, fgt] = flat.backward_dual(dyv, qv);
  const auto [ngx, ngt] = nested.backward_dual(dyv, qv);
  CHECK(same_bits(fgx.data(), ngx.data(), fgx.size()));
  CHECK(same_bits(fgt.data(), ngt.data(), fgt.size()));
  CHECK(same_bits(flat.grads(), nested.grads(), flat.param_count));
  // Parameter gradients only: the input gradients are skipped at every depth.
  nested.zero_grad();
  CHECK(nested.backward_dual(dyv, qv, fg::Grad::params).first.empty());
  CHECK(same_bits(flat.grads(), nested.grads(), flat.param_count));
}

// ---- Residual ------------------------------------------------------------------------------

using MainBranch = fg::Sequential<fg::Dense<4>, fg::Tanh>;
using ResidualNet = fg::Sequential<fg::Input<4>, fg::Residual<MainBranch, fg::Dense<4>>>;
using IdentityNet = fg::Sequential<fg::Input<4>, fg::Residual<MainBranch>>;
using MainNet = fg::Sequential<fg::Input<4>, fg::Dense<4>, fg::Tanh>;
using ShortNet = fg::Sequential<fg::Input<4>, fg::Dense<4>>;

TEST_CASE_TEMPLATE("Residual adds its branches: values and gradients are the branches' sums", S, float, double) {
  using B = fg::backend::Cpu<S>;
  fg::Network<ResidualNet, B> res;
  fg::Network<IdentityNet, B> id;
  fg::Network<MainNet, B> main;
  fg::Network<ShortNet, B> shortcut;
  static_assert(decltype(res)::param_count == 40 && decltype(id)::param_count == 20);
  static_assert(decltype(res)::leaf_count == 3 && decltype(id)::leaf_count == 2);
  res.initialize(8);
  id.initialize(8);
  // Parameters: the main branch's, then the shortcut's.
  std::memcpy(main.params(), res.params(), sizeof(S) * 20);
  std::memcpy(shortcut.params(), res.params() + 20, sizeof(S) * 20);
  std::memcpy(id.params(), res.params(), sizeof(S) * 20);
  const index_t n = 3;
  const auto x = normal<S>(4 * n, 5), dy = normal<S>(4 * n, 6);
  const fg::ConstBatchView<S> xv(x.data(), 4, n), dyv(dy.data(), 4, n);

  const auto y = res.forward(xv);
  const auto ym = main.forward(xv);
  const auto ys = shortcut.forward(xv);
  const auto yi = id.forward(xv);
  for (index_t i = 0; i < 4 * n; ++i) {
    CHECK(y.data()[i] == ym.data()[i] + ys.data()[i]);
    CHECK(yi.data()[i] == ym.data()[i] + x[static_cast<std::size_t>(i)]);
  }
  res.zero_grad();
  main.zero_grad();
  shortcut.zero_grad();
  id.zero_grad();
  const auto dx = res.backward(dyv);
  const auto dxm = main.backward(dyv);
  const auto dxs = shortcut.backward(dyv);
  const auto dxi = id.backward(dyv);
  for (index_t i = 0; i < 4 * n; ++i) {
    CHECK(dx.data()[i] == dxm.data()[i] + dxs.data()[i]);
    CHECK(dxi.data()[i] == dxm.data()[i] + dy[static_cast<std::size_t>(i)]);
  }
  CHECK(same_bits(res.grads(), main.grads(), 20));
  CHECK(same_bits(res.grads() + 20, shortcut.grads(), 20));
  CHECK(same_bits(id.grads(), main.grads(), 20));
}

// ResNet-style image blocks: the SN-GAN generator block (BatchNorm-free here, so that it
// has a tangent pass: LayerNorm), a critic block with a learned 1x1 shortcut, and blocks
// inside blocks.
using ConvResidual =
    fg::Sequential<fg::Input<2, 5, 5>,
                   fg::Residual<fg::Sequential<fg::LayerNorm<>, fg::LeakyReLU<>, fg::Conv2d<3, 3, 1, 1>, fg::Tanh,
                                               fg::Conv2d<3, 3, 1, 1>>,
                                fg::Conv2d<3, 1, 1, 0>>,
                   fg::Residual<fg::Sequential<fg::LeakyReLU<>, fg::Conv2d<3, 3, 1, 1>>>, fg::Flatten, fg::Dense<1>>;
using DeepNest =
    fg::Sequential<fg::Input<5>,
                   fg::Residual<fg::Sequential<fg::Dense<6>, fg::Tanh,
                                               fg::Residual<fg::Sequential<fg::Dense<6>, fg::Sigmoid>>, fg::Dense<5>>,
                                fg::Sequential<fg::Residual<fg::Dense<5>>, fg::Tanh>>,
                   fg::Sequential<fg::Sequential<fg::Dense<3>, fg::Tanh>>, fg::Dense<1>>;
using SpectralBlocks = fg::Sequential<fg::Input<1, 4, 4>,
                                      fg::Residual<fg::Sequential<fg::SpectralNorm<fg::Conv2d<2, 3, 1, 1>>, fg::Tanh>,
                                                   fg::SpectralNorm<fg::Conv2d<2, 1, 1, 0>>>,
                                      fg::Flatten, fg::SpectralNorm<fg::Dense<1>>>;

TEST_CASE_TEMPLATE("blocks pass the gradient check, first order and through the tangent pass", B,
                   FORGERY_DOUBLE_BACKENDS) {
  // Step 1e-5: with 1e-6 the finite differences of the second-order objective carry
  // round-off near 1e-6 relative on the deepest spec (ConvResidual's input: 7e-7 with FMA,
  // 1.3e-6 without), and the truncation error at 1e-5 is below 1e-7 on all six.
  constexpr double step = 1e-5;
  fg::test::require_gradients<Nested, B>(11, 3, step);
  fg::test::require_gradients<ResidualNet, B>(12, 3, step);
  fg::test::require_gradients<IdentityNet, B>(13, 3, step);
  fg::test::require_gradients<ConvResidual, B>(14, 2, step);
  fg::test::require_gradients<DeepNest, B>(15, 3, step);
  fg::test::require_gradients<SpectralBlocks, B>(16, 2, step);
}

TEST_CASE_TEMPLATE("Cpu agrees with Reference on block networks", S, float, double) {
  fg::test::compare_with_reference<ConvResidual, S>(4, 3);
  fg::test::compare_with_reference<DeepNest, S>(5, 4);
  fg::test::compare_with_reference<SpectralBlocks, S>(3, 5);
}

TEST_CASE("a block network gives the same bits on 1 and 2 threads") {
  using B = fg::backend::Cpu<float>;
  fg::Network<ConvResidual, B> net;
  net.initialize(9);
  const index_t n = 64;
  const auto x = normal<float>(50 * n, 7), t = normal<float>(50 * n, 8), dy = normal<float>(n, 9);
  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    net.zero_grad();
    const auto y = net.forward({x.data(), 50, n});
    std::vector<float> out(y.data(), y.data() + y.size());
    const auto dx = net.backward({dy.data(), 1, n});
    out.insert(out.end(), dx.data(), dx.data() + dx.size());
    const auto [yy, ty] = net.forward_tangent({t.data(), 50, n});
    out.insert(out.end(), ty.data(), ty.data() + ty.size());
    net.backward_dual({dy.data(), 1, n}, {dy.data(), 1, n}, fg::Grad::params);
    out.insert(out.end(), net.grads(), net.grads() + net.param_count);
    omp_set_num_threads(saved);
    return out;
  };
  const auto one = run(1), two = run(2);
  REQUIRE(one.size() == two.size());
  CHECK(same_bits(one.data(), two.data(), one.size()));
}

// ---- hooks at any depth ---------------------------------------------------------------------

using StatefulBlocks =
    fg::Sequential<fg::Input<3, 4, 4>,
                   fg::Residual<fg::Sequential<fg::BatchNorm<>, fg::ReLU, fg::SpectralNorm<fg::Conv2d<3, 3, 1, 1>>>,
                                fg::Sequential<fg::SpectralNorm<fg::Conv2d<3, 1, 1, 0>>>>,
                   fg::Sequential<fg::BatchNorm<>, fg::Flatten>, fg::Projection<4>>;

TEST_CASE("state, initialisation, the after-step refresh, labels and eval mode reach nested layers") {
  using Net = fg::Network<StatefulBlocks, fg::backend::Cpu<double>>;
  static_assert(Net::leaf_count == 7);
  static_assert(Net::label_classes == 4 && Net::uses_batch_statistics);
  Net net;
  net.initialize(21);
  // Stateful leaves in depth-first order: BatchNorm 0, SpectralNorm 2, SpectralNorm 3,
  // BatchNorm 4 (leaf numbers count every leaf, ReLU 1, Flatten 5, Projection 6 included).
  std::vector<std::size_t> leaves;
  std::vector<std::vector<double>> before;
  net.for_each_state([&](std::size_t leaf, double* s, index_t count) {
    leaves.push_back(leaf);
    before.emplace_back(s, s + count);
  });
  CHECK(leaves == std::vector<std::size_t>{0, 2, 3, 4});
  // BatchNorm's running statistics start at mean 0, variance 1 (init_state ran at depth 2).
  REQUIRE(before[0].size() == 6);
  CHECK(before[0][0] == 0.0);
  CHECK(before[0][3] == 1.0);
  // SpectralNorm's vectors were drawn (not left zero) from distinct streams.
  CHECK(before[1] != std::vector<double>(before[1].size(), 0.0));
  CHECK(before[1][0] != before[2][0]);

  const index_t n = 4;
  const auto x = normal<double>(48 * n, 3);
  const std::vector<std::int32_t> labels{0, 3, 1, 2};
  net.set_labels(labels.data(), n);
  net.train();
  const auto y_train = net.forward({x.data(), 48, n});
  std::vector<double> yt(y_train.data(), y_train.data() + n);
  net.after_step(); // the power iterations of both nested SpectralNorms
  std::vector<std::vector<double>> after;
  net.for_each_state([&](std::size_t, double* s, index_t count) { after.emplace_back(s, s + count); });
  CHECK(after[0] != before[0]); // the train-mode forward updated the running statistics
  CHECK(after[1] != before[1]);
  CHECK(after[2] != before[2]);
  CHECK(after[3] != before[3]);
  net.eval();
  const auto y_eval = net.forward({x.data(), 48, n});
  CHECK(!same_bits(yt.data(), y_eval.data(), yt.size()));
  // A label out of range is caught by the nested Projection.
  const std::vector<std::int32_t> bad{0, 4, 1, 2};
  net.set_labels(bad.data(), n);
  CHECK_THROWS_AS(net.forward({x.data(), 48, n}), fg::config_error);
}

TEST_CASE("each nested layer draws its initial weights from a stream of its own") {
  using Twice = fg::Sequential<fg::Input<4>, fg::Sequential<fg::Dense<4>>, fg::Sequential<fg::Dense<4>>,
                               fg::Residual<fg::Dense<4>, fg::Dense<4>>>;
  fg::Network<Twice, fg::backend::Cpu<float>> a, b;
  a.initialize(5);
  b.initialize(5);
  CHECK(same_bits(a.params(), b.params(), a.param_count));
  const float* p = a.params();
  CHECK(p[0] != p[20]);  // the two nested Denses
  CHECK(p[40] != p[60]); // the residual's two branches
  CHECK(p[0] != p[40]);
}

TEST_CASE("weights of a block network round-trip through .npy") {
  fg::test::Scratch s;
  fg::Network<DeepNest, fg::backend::Cpu<float>> a, b;
  a.initialize(1);
  b.initialize(2);
  fg::io::save_weights_npy(s.dir / "w.npy", a);
  fg::io::load_weights_npy(s.dir / "w.npy", b);
  CHECK(same_bits(a.params(), b.params(), a.param_count));
}

// ---- training and resuming ------------------------------------------------------------------

using BlockG = fg::Sequential<fg::Input<8>, fg::Dense<4 * 3 * 3, false>, fg::Reshape<4, 3, 3>,
                              fg::Residual<fg::Sequential<fg::BatchNorm<>, fg::ReLU, fg::Conv2d<4, 3, 1, 1>>>,
                              fg::Sequential<fg::BatchNorm<>, fg::ReLU, fg::ConvTranspose2d<4, 4, 2, 1>, fg::ReLU,
                                             fg::ConvTranspose2d<1, 4, 2, 1>>,
                              fg::Tanh>;
using BlockD =
    fg::Sequential<fg::Input<1, 12, 12>,
                   fg::Residual<fg::Sequential<fg::SpectralNorm<fg::Conv2d<4, 3, 1, 1>>, fg::LeakyReLU<>,
                                               fg::SpectralNorm<fg::Conv2d<4, 3, 1, 1>>>,
                                fg::SpectralNorm<fg::Conv2d<4, 1, 1, 0>>>,
                   fg::Sequential<fg::LeakyReLU<>, fg::Conv2d<8, 4, 2, 1>>, fg::LeakyReLU<>, fg::Flatten, fg::Dense<1>>;
using BlockTrainer = fg::Trainer<BlockG, BlockD, fg::loss::Hinge>;

fg::data::ImageDataset<float> tiny_images() {
  constexpr std::size_t count = 20, pixels = 144;
  xt::xtensor<float, 4> images = xt::zeros<float>({count, std::size_t(1), std::size_t(12), std::size_t(12)});
  for (std::size_t i = 0; i < count; ++i)
    for (std::size_t p = 0; p < pixels; ++p)
      images.data()[i * pixels + p] = static_cast<float>((i * 7 + p * (1 + i % 3)) % 11) / 5.f - 1.f;
  return fg::data::ImageDataset<float>(std::move(images));
}

BlockTrainer::Config block_config() {
  BlockTrainer::Config cfg;
  cfg.batch = 8;
  cfg.seed = 31;
  cfg.n_critic = 2;
  cfg.ema_decay = 0.9;
  cfg.g_optimizer.lr = 2e-3;
  cfg.d_optimizer.lr = 2e-3;
  return cfg;
}

TEST_CASE("a Trainer of block networks checkpoints every nested state and resumes bit for bit") {
  const auto data = tiny_images();
  fg::test::Scratch s;
  const auto path = s.dir / "mid.fgck";
  BlockTrainer straight(block_config());
  fg::data::ShuffledBatches<float> b1(data);
  straight.fit(b1, 6);
  {
    BlockTrainer first(block_config());
    fg::data::ShuffledBatches<float> b2(data);
    first.fit(b2, 2);
    first.save_checkpoint(path);
    const fg::io::CheckpointFile f(first.checkpoint().bytes(), "mem");
    for (const char* r : {"generator/state/2", "generator/state/5", "discriminator/state/0", "discriminator/state/2",
                          "discriminator/state/3"})
      CHECK_MESSAGE(f.contains(r), r);
  }
  BlockTrainer resumed(block_config());
  fg::data::ShuffledBatches<float> b3(data);
  resumed.load_checkpoint(path);
  resumed.fit(b3, 4);
  CHECK(resumed.steps_done() == 6);
  CHECK(resumed.checkpoint().bytes() == straight.checkpoint().bytes());
  // Training moved the weights, and they are finite.
  BlockTrainer fresh(block_config());
  CHECK(!same_bits(fresh.generator().params(), straight.generator().params(),
                   static_cast<std::size_t>(fg::Network<BlockG, fg::backend::Cpu<float>>::param_count)));
  for (index_t i = 0; i < fg::Network<BlockD, fg::backend::Cpu<float>>::param_count; ++i)
    REQUIRE(std::isfinite(straight.discriminator().params()[i]));
}

} // namespace
