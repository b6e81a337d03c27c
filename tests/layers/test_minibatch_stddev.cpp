// MinibatchStdDev: values against a direct computation, groups (min(GroupSize, N), statistics
// groups split separately, the error for a batch that does not divide), gradient checks of
// every pass (first order, tangent, backward_dual), forward_tangent against forward_dual, Cpu
// vs Reference, and a WGAN-GP Trainer (ConditionalBatchNorm in G, MinibatchStdDev in D)
// whose updates follow the exact gradients of its reported losses.
#include "../support.hpp"

#include <forgery/layers/conditional_batch_norm.hpp>
#include <forgery/layers/minibatch_stddev.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "forgery/data/toy.hpp"
#include "forgery/loss/loss.hpp"
#include "forgery/optim/optim.hpp"
#include "forgery/penalty/penalty.hpp"
#include "forgery/train/trainer.hpp"

namespace {
using fg::index_t;

// ProGAN's statistic, directly: per group of g consecutive samples of d values each, the
// mean over the values of sqrt(biased variance over the group + 1e-8).
std::vector<double> group_stddevs(const double* x, index_t d, index_t n, index_t g) {
  std::vector<double> out;
  for (index_t first = 0; first < n; first += g) {
    double total = 0;
    for (index_t v = 0; v < d; ++v) {
      double mean = 0;
      for (index_t j = first; j < first + g; ++j) mean += x[j * d + v];
      mean /= double(g);
      double var = 0;
      for (index_t j = first; j < first + g; ++j) var += (x[j * d + v] - mean) * (x[j * d + v] - mean);
      total += std::sqrt(var / double(g) + 1e-8);
    }
    out.push_back(total / double(d));
  }
  return out;
}

// y_j = [x_j ; s(group of j) on every appended position], for a batch of n in groups of g.
template <class B>
void check_values(index_t c, index_t h, index_t w, index_t n, index_t g, const double* x, const double* y) {
  const index_t d = c * h * w, extra = h * w, out = d + extra;
  const auto s = group_stddevs(x, d, n, g);
  for (index_t j = 0; j < n; ++j) {
    for (index_t v = 0; v < d; ++v) CHECK(y[j * out + v] == x[j * d + v]);
    for (index_t p = 0; p < extra; ++p)
      CHECK(y[j * out + d + p] == doctest::Approx(s[static_cast<std::size_t>(j / g)]).epsilon(1e-13));
  }
}

TEST_CASE_TEMPLATE("MinibatchStdDev appends each group's mean standard deviation as a channel", B,
                   FORGERY_DOUBLE_BACKENDS) {
  using Image = fg::Sequential<fg::Input<2, 2, 3>, fg::MinibatchStdDev<>>;
  static_assert(std::is_same_v<Image::output_shape, fg::Shape<3, 2, 3>>);
  using Flat = fg::Sequential<fg::Input<5>, fg::MinibatchStdDev<3>>;
  static_assert(std::is_same_v<Flat::output_shape, fg::Shape<6>>);
  static_assert(fg::Network<Image, B>::param_count == 0);
  static_assert(fg::Network<Image, B>::uses_batch_statistics);
  static_assert(fg::Network<Image, B>::supports_dual);
  static_assert(fg::TangentLayer<std::tuple_element_t<0, typename fg::Network<Image, B>::layers_type>>);

  fg::Network<Image, B> image;
  for (const index_t n : {index_t{8}, index_t{4}, index_t{3}, index_t{1}}) {
    INFO("batch " << n);
    const auto x = fg::test::normal_buffer<double>(12 * n, 7 + n, 1);
    const auto y = image.forward({x.data(), 12, n});
    check_values<B>(2, 2, 3, n, std::min<index_t>(4, n), x.data(), y.data());
  }
  fg::Network<Flat, B> flat;
  const auto x = fg::test::normal_buffer<double>(5 * 6, 3, 1);
  const auto y = flat.forward({x.data(), 5, 6});
  check_values<B>(5, 1, 1, 6, 3, x.data(), y.data());
  // Eval mode changes nothing; identical samples give sqrt(1e-8).
  flat.eval();
  const auto ye = flat.forward({x.data(), 5, 6});
  check_values<B>(5, 1, 1, 6, 3, x.data(), ye.data());
  const std::vector<double> same(5 * 3, 0.25);
  CHECK(flat.forward({same.data(), 5, 3})(5, 2) == doctest::Approx(1e-4).epsilon(1e-12));
}

TEST_CASE("MinibatchStdDev refuses a batch that does not divide into its groups, naming both") {
  using Spec = fg::Sequential<fg::Input<3>, fg::MinibatchStdDev<4>>;
  fg::Network<Spec, fg::backend::Cpu<float>> net;
  const auto x = fg::test::normal_buffer<float>(3 * 12, 1, 1);
  const std::string six = fg::test::error_of([&] { net.forward({x.data(), 3, 6}); });
  CHECK(six.find("fg::MinibatchStdDev<4>") != std::string::npos);
  CHECK(six.find("group size 4") != std::string::npos);
  CHECK(six.find("a batch of 6") != std::string::npos);
  CHECK_NOTHROW(net.forward({x.data(), 3, 12}));
  // With two statistics groups, each half is grouped: 12 = 2 x 6, and 6 does not divide.
  net.set_statistics_groups(2);
  const std::string halves = fg::test::error_of([&] { net.forward({x.data(), 3, 12}); });
  CHECK(halves.find("a batch of 6") != std::string::npos);
  CHECK(halves.find("2 statistics groups") != std::string::npos);
  net.set_statistics_groups(5);
  const std::string groups = fg::test::error_of([&] { net.forward({x.data(), 3, 12}); });
  CHECK(groups.find("statistics_groups") != std::string::npos);
}

TEST_CASE_TEMPLATE("MinibatchStdDev gradients and tangent pass match finite differences", B, FORGERY_DOUBLE_BACKENDS) {
  // Two groups of 2 in an image critic; groups of 3 after a hidden layer; one group smaller
  // than GroupSize.
  using ImageCritic =
      fg::Sequential<fg::Input<2, 2, 2>, fg::MinibatchStdDev<2>, fg::Flatten, fg::Dense<3>, fg::Tanh, fg::Dense<2>>;
  using FlatCritic = fg::Sequential<fg::Input<5>, fg::Dense<4>, fg::Tanh, fg::MinibatchStdDev<3>, fg::Dense<2>>;
  fg::test::require_gradients<ImageCritic, B>(3, 4);
  fg::test::require_gradients<FlatCritic, B>(4, 6);
  fg::test::require_gradients<FlatCritic, B>(5, 2);
  // The layer alone (its output is the network's): every output entry weighs in.
  fg::test::require_gradients<fg::Sequential<fg::Input<2, 3, 2>, fg::MinibatchStdDev<>>, B>(6, 8);
}

TEST_CASE_TEMPLATE("MinibatchStdDev's forward_tangent on cached activations equals forward_dual bitwise", B,
                   fg::backend::Cpu<float>, fg::backend::Cpu<double>, fg::backend::Reference<double>) {
  using S = typename B::scalar;
  using Spec = fg::Sequential<fg::Input<3, 2, 2>, fg::MinibatchStdDev<>, fg::Flatten, fg::Dense<1>>;
  constexpr index_t nin = 12, n = 8;
  fg::Network<Spec, B> cached, dual;
  cached.initialize(4);
  dual.initialize(4);
  const auto x = fg::test::normal_buffer<S>(nin * n, 2, 1);
  const auto tx = fg::test::normal_buffer<S>(nin * n, 2, 2);
  const auto ones = fg::test::normal_buffer<S>(n, 2, 3);
  cached.forward({x.data(), nin, n});
  cached.backward({ones.data(), 1, n}, fg::Grad::input);
  const auto [y1, ty1] = cached.forward_tangent({tx.data(), nin, n});
  const auto [y2, ty2] = dual.forward_dual({x.data(), nin, n}, {tx.data(), nin, n});
  CHECK(std::memcmp(y1.data(), y2.data(), sizeof(S) * n) == 0);
  CHECK(std::memcmp(ty1.data(), ty2.data(), sizeof(S) * n) == 0);
  cached.zero_grad();
  dual.zero_grad();
  const auto [gx1, gt1] = cached.backward_dual({ones.data(), 1, n}, {ones.data(), 1, n});
  const auto [gx2, gt2] = dual.backward_dual({ones.data(), 1, n}, {ones.data(), 1, n});
  CHECK(std::memcmp(gx1.data(), gx2.data(), sizeof(S) * gx1.size()) == 0);
  CHECK(std::memcmp(gt1.data(), gt2.data(), sizeof(S) * gt1.size()) == 0);
  CHECK(std::memcmp(cached.grads(), dual.grads(), sizeof(S) * fg::Network<Spec, B>::param_count) == 0);
}

TEST_CASE_TEMPLATE("MinibatchStdDev on Cpu matches the Reference backend", S, FORGERY_SCALARS) {
  fg::test::compare_with_reference<
      fg::Sequential<fg::Input<2, 3, 3>, fg::MinibatchStdDev<>, fg::Flatten, fg::Dense<3>, fg::Tanh, fg::Dense<1>>, S>(
      8);
  fg::test::compare_with_reference<fg::Sequential<fg::Input<7>, fg::Dense<5>, fg::MinibatchStdDev<3>, fg::Dense<2>>, S>(
      6);
  // Enough values for the multi-threaded loops.
  fg::test::compare_with_reference<fg::Sequential<fg::Input<16, 16, 16>, fg::MinibatchStdDev<>>, S>(12);
}

// One pass over [a | b] with two statistics groups against passes over a, then b, bit for bit
// (forward, backward, the tangent pass and its backward), with halves of n samples.
template <class S>
void check_statistics_groups(index_t n) {
  using Net = fg::Network<fg::Sequential<fg::Input<2, 2, 2>, fg::MinibatchStdDev<4>>, fg::backend::Cpu<S>>;
  constexpr index_t size = 8, out = 12;
  const auto x = fg::test::normal_buffer<S>(size * 2 * n, 3, 1);
  const auto t = fg::test::normal_buffer<S>(size * 2 * n, 3, 2);
  const auto dy = fg::test::normal_buffer<S>(out * 2 * n, 3, 3);
  const auto dty = fg::test::normal_buffer<S>(out * 2 * n, 3, 4);
  auto append = [](std::vector<S>& to, fg::ConstBatchView<S> v) { to.insert(to.end(), v.data(), v.data() + v.size()); };
  enum { forward, backward, y, ty, gx, gtx, parts };
  std::vector<S> grouped[parts], separate[parts];

  Net one;
  one.set_statistics_groups(2);
  append(grouped[forward], one.forward({x.data(), size, 2 * n}));
  append(grouped[backward], one.backward({dy.data(), out, 2 * n}));
  {
    const auto [yv, tyv] = one.forward_dual({x.data(), size, 2 * n}, {t.data(), size, 2 * n});
    append(grouped[y], yv);
    append(grouped[ty], tyv);
    const auto [gxv, gtxv] = one.backward_dual({dy.data(), out, 2 * n}, {dty.data(), out, 2 * n});
    append(grouped[gx], gxv);
    append(grouped[gtx], gtxv);
  }
  Net two;
  for (index_t half = 0; half < 2; ++half) {
    const index_t at = half * size * n, up = half * out * n;
    append(separate[forward], two.forward({x.data() + at, size, n}));
    append(separate[backward], two.backward({dy.data() + up, out, n}));
    const auto [yv, tyv] = two.forward_dual({x.data() + at, size, n}, {t.data() + at, size, n});
    append(separate[y], yv);
    append(separate[ty], tyv);
    const auto [gxv, gtxv] = two.backward_dual({dy.data() + up, out, n}, {dty.data() + up, out, n});
    append(separate[gx], gxv);
    append(separate[gtx], gtxv);
  }
  for (int part = 0; part < parts; ++part) {
    INFO("part " << part);
    CHECK(grouped[part] == separate[part]);
  }
}

TEST_CASE_TEMPLATE("MinibatchStdDev statistics groups: one pass over [a | b] is two passes, bit for bit", S,
                   FORGERY_SCALARS) {
  check_statistics_groups<S>(8); // groups of 4 inside each half
  check_statistics_groups<S>(2); // min(4, 2): groups of 2, not one group of 4 across the halves
  check_statistics_groups<S>(3);
}

// A conditional WGAN-GP whose generator has ConditionalBatchNorm and whose critic has
// MinibatchStdDev: with SGD, each update moved the parameters by -lr times the gradient,
// which must match central differences of the loss (and penalty) the Trainer reported.
constexpr index_t K = 3;
using CbnG = fg::Sequential<fg::Input<3>, fg::Dense<5, false>, fg::ConditionalBatchNorm<K>, fg::Tanh, fg::Dense<2>>;
using MbsdD = fg::Sequential<fg::Input<2>, fg::Dense<6>, fg::Tanh, fg::MinibatchStdDev<4>, fg::Dense<4>, fg::Tanh,
                             fg::Projection<K>>;
using GpTrainer = fg::Trainer<CbnG, MbsdD, fg::Objective<fg::loss::Wasserstein, fg::penalty::GradientPenalty>,
                              fg::optim::SGD, fg::backend::Reference<double>>;

template <class T, class NetOf, class Update, class Value>
void check_update(const T& start, NetOf net_of, Update update, Value value, double lr, const char* what) {
  const double h = 1e-6;
  T t = start;
  auto& net = net_of(t);
  const index_t n = std::remove_reference_t<decltype(net)>::param_count;
  const std::vector<double> before(net.params(), net.params() + n);
  update(t);
  double worst = 0, norm = 0;
  for (index_t i = 0; i < n; ++i) {
    auto at = [&](double delta) {
      T c = start;
      net_of(c).params()[i] += delta;
      update(c);
      return value(c);
    };
    const double used = (before[static_cast<std::size_t>(i)] - net.params()[i]) / lr;
    const double numeric = (at(h) - at(-h)) / (2 * h);
    worst = std::max(worst, std::abs(used - numeric) / std::max({std::abs(numeric), std::abs(used), 1e-3}));
    norm += used * used;
  }
  INFO(what << " gradient max relative error " << worst);
  CHECK(worst < 1e-5);
  CHECK(norm > 0);
}

TEST_CASE("a WGAN-GP with ConditionalBatchNorm in G and MinibatchStdDev in D updates along exact gradients") {
  static_assert(GpTrainer::conditional && GpTrainer::classes == K);
  static_assert(GpTrainer::split_critic_batches); // MinibatchStdDev declares batch statistics
  const double lr = 1e-3;
  GpTrainer::Config cfg;
  cfg.batch = 2; // two groups of 2 in the critic's pass of 4, not one group of 4
  cfg.seed = 17;
  cfg.g_optimizer.lr = lr;
  cfg.d_optimizer.lr = lr;
  GpTrainer base(cfg);
  fg::data::Ring ring(K);
  base.step(ring);
  check_update(
      base, [](GpTrainer & t) -> auto& { return t.discriminator(); }, [&](GpTrainer& t) { t.train_critic(ring); },
      [](GpTrainer& t) {
        double v = t.last_stats().d_loss;
        for (double p : t.last_stats().part_values) v += p;
        return v;
      },
      lr, "critic");
  GpTrainer after = base;
  after.train_critic(ring);
  check_update(
      after, [](GpTrainer & t) -> auto& { return t.generator(); }, [](GpTrainer& t) { t.train_generator(); },
      [](GpTrainer& t) { return t.last_stats().g_loss; }, lr, "generator");
}

// Cpu with host_memory = false: the device path's copy (one value per index) on host memory.
struct DeviceLikeCpu : fg::backend::Cpu<double> {
  static constexpr bool host_memory = false;
};

TEST_CASE("MinibatchStdDev's device path gives the host path's bits") {
  using Spec = fg::Sequential<fg::Input<3, 2, 2>, fg::MinibatchStdDev<>>;
  constexpr index_t nin = 12, nout = 16, n = 8;
  fg::Network<Spec, fg::backend::Cpu<double>> host;
  fg::Network<Spec, DeviceLikeCpu> device;
  const auto x = fg::test::normal_buffer<double>(nin * n, 8, 1);
  const auto t = fg::test::normal_buffer<double>(nin * n, 8, 2);
  const auto dy = fg::test::normal_buffer<double>(nout * n, 8, 3);
  const auto [yh, tyh] = host.forward_dual({x.data(), nin, n}, {t.data(), nin, n});
  const auto [yd, tyd] = device.forward_dual({x.data(), nin, n}, {t.data(), nin, n});
  CHECK(std::memcmp(yh.data(), yd.data(), sizeof(double) * yh.size()) == 0);
  CHECK(std::memcmp(tyh.data(), tyd.data(), sizeof(double) * tyh.size()) == 0);
  const auto [gh, gth] = host.backward_dual({dy.data(), nout, n}, {dy.data(), nout, n});
  const auto [gd, gtd] = device.backward_dual({dy.data(), nout, n}, {dy.data(), nout, n});
  CHECK(std::memcmp(gh.data(), gd.data(), sizeof(double) * gh.size()) == 0);
  CHECK(std::memcmp(gth.data(), gtd.data(), sizeof(double) * gth.size()) == 0);
}

} // namespace
