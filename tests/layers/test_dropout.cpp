// Dropout: eval is the identity; train keeps about 1 - P of the values, scaled so that the
// mean is kept, with a mask from Philox that is the same for any thread count; gradient
// checks with the tangent pass (the checker rewinds the stream before each pass).
#include "../support.hpp"

#include <forgery/layers/dropout.hpp>

#include <omp.h>

#include <string>
#include <vector>

namespace {
using fg::index_t;

TEST_CASE_TEMPLATE("Dropout gradients and tangent pass match finite differences (train mode)", B,
                   FORGERY_DOUBLE_BACKENDS) {
  using Spec = fg::Sequential<fg::Input<6>, fg::Dense<8>, fg::Tanh, fg::Dropout<0.3>, fg::Dense<3>>;
  fg::Network<Spec, B> net;
  net.initialize(3);
  fg::testing::GradientCheckOptions opts;
  opts.batch = 4;
  const auto report = fg::testing::check_gradients(net, opts);
  INFO(report.summary());
  CHECK(report.passed());
  CHECK(report.dual_checked);
  // The check ran with a mask that dropped something: the masked network differs from eval.
  const auto x = fg::test::normal_buffer<double>(6 * 4, 1, 1);
  fg::RandomStream rng{4321, 1, 0};
  net.set_random_stream(&rng);
  const auto yt = net.forward({x.data(), 6, 4});
  std::vector<double> train(yt.data(), yt.data() + yt.size());
  net.eval();
  const auto ye = net.forward({x.data(), 6, 4});
  CHECK(fg::test::max_rel_diff(train.data(), ye.data(), ye.size()) > 1e-3);
  fg::test::require_gradients<Spec, B>(5, 3); // in train mode, through the support wrapper
}

using DropSpec = fg::Sequential<fg::Input<1000>, fg::Dropout<0.3>>;

TEST_CASE_TEMPLATE("Dropout in eval mode is the identity", B, FORGERY_ALL_BACKENDS) {
  using S = typename B::scalar;
  fg::Network<DropSpec, B> net;
  net.initialize(1);
  net.eval();
  const auto x = fg::test::normal_buffer<S>(1000 * 3, 2, 1);
  const auto y = net.forward({x.data(), 1000, 3}); // no random stream needed
  CHECK(std::equal(x.begin(), x.end(), y.data()));
  const auto dy = fg::test::normal_buffer<S>(1000 * 3, 2, 2);
  const auto dx = net.backward({dy.data(), 1000, 3});
  CHECK(std::equal(dy.begin(), dy.end(), dx.data()));
}

TEST_CASE_TEMPLATE("Dropout in train mode keeps about 1 - P of the values, scaled by 1 / (1 - P)", B,
                   FORGERY_ALL_BACKENDS) {
  using S = typename B::scalar;
  constexpr index_t F = 1000, N = 100, n = F * N;
  fg::Network<DropSpec, B> net;
  net.initialize(1);
  fg::RandomStream rng{7, 3, 0};
  net.set_random_stream(&rng);
  std::vector<S> x(n);
  for (index_t i = 0; i < n; ++i) x[i] = S(1) + S(i % 7); // positive, so a kept value is never 0
  const auto y = net.forward({x.data(), F, N});
  index_t kept = 0, wrong_scale = 0;
  double mean_ratio = 0;
  const double scale = 1 / (1 - 0.3);
  for (index_t i = 0; i < n; ++i) {
    const double v = y.data()[i];
    if (v != 0) {
      ++kept;
      if (std::abs(v - x[i] * scale) > 1e-6 * x[i] * scale) ++wrong_scale;
    }
    mean_ratio += v / x[i];
  }
  CHECK(wrong_scale == 0);
  // Binomial(n, 0.7): standard deviation of the kept fraction is 0.0014.
  CHECK(double(kept) / n == doctest::Approx(0.7).epsilon(0.01));
  // E[y] = x: the mean of y / x is 1 (standard deviation 0.002).
  CHECK(mean_ratio / n == doctest::Approx(1.0).epsilon(0.01));
  CHECK(rng.counter > 0); // the stream advanced

  // Backward applies the same mask.
  std::vector<S> dy(n, S(1));
  std::vector<S> mask(y.data(), y.data() + n);
  const auto dx = net.backward({dy.data(), F, N});
  index_t mismatched = 0;
  for (index_t i = 0; i < n; ++i) mismatched += (dx.data()[i] == 0) != (mask[i] == 0);
  CHECK(mismatched == 0);

  // A second pass draws a fresh mask.
  const auto y2 = net.forward({x.data(), F, N});
  CHECK_FALSE(std::equal(mask.begin(), mask.end(), y2.data()));
}

TEST_CASE_TEMPLATE("Dropout's mask is the same for 1 and 2 threads and on both backends", S, FORGERY_SCALARS) {
  constexpr index_t F = 1000, N = 100, n = F * N; // above the parallel threshold
  const auto x = fg::test::normal_buffer<S>(n, 3, 1);
  auto run = [&](int threads, auto backend) {
    using B = decltype(backend);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    fg::Network<DropSpec, B> net;
    net.initialize(1);
    fg::RandomStream rng{11, 5, 0};
    net.set_random_stream(&rng);
    const auto y = net.forward({x.data(), F, N});
    std::vector<S> out(y.data(), y.data() + n);
    omp_set_num_threads(saved);
    return out;
  };
  const auto one = run(1, fg::backend::Cpu<S>{});
  const auto two = run(2, fg::backend::Cpu<S>{});
  const auto ref = run(1, fg::backend::Reference<S>{});
  CHECK(one == two);
  CHECK(one == ref);
}

TEST_CASE_TEMPLATE("Dropout's tangent pass uses the value's mask; Cpu matches Reference", S, FORGERY_SCALARS) {
  using Spec = fg::Sequential<fg::Input<5>, fg::Dense<4>, fg::Dropout<0.5>, fg::Dense<2>>;
  fg::Network<Spec, fg::backend::Cpu<S>> fast;
  fg::Network<Spec, fg::backend::Reference<S>> ref;
  fast.initialize(2);
  ref.initialize(2);
  fg::RandomStream rf{1, 2, 0}, rr{1, 2, 0};
  fast.set_random_stream(&rf);
  ref.set_random_stream(&rr);
  const index_t n = 6;
  const auto x = fg::test::normal_buffer<S>(5 * n, 4, 1), t = fg::test::normal_buffer<S>(5 * n, 4, 2);
  const auto dy = fg::test::normal_buffer<S>(2 * n, 4, 3), q = fg::test::normal_buffer<S>(2 * n, 4, 4);
  const double tol = fg::test::backend_tolerance<S>();

  const auto yf = fast.forward({x.data(), 5, n});
  const auto yr = ref.forward({x.data(), 5, n});
  CHECK(fg::test::max_rel_diff(yf.data(), yr.data(), yf.size()) < tol);
  fast.zero_grad();
  ref.zero_grad();
  const auto df = fast.backward({dy.data(), 2, n});
  const auto dr = ref.backward({dy.data(), 2, n});
  CHECK(fg::test::max_rel_diff(df.data(), dr.data(), df.size()) < tol);
  CHECK(fg::test::max_rel_diff(fast.grads(), ref.grads(), fast.param_count) < tol);

  // The tangent of a network that is linear in x is the output at t minus the bias part:
  // with the same mask, ty = y(t) - y(0).
  const fg::RandomStream start = rf;
  const auto [y1, ty1] = fast.forward_dual({x.data(), 5, n}, {t.data(), 5, n});
  std::vector<S> ty(ty1.data(), ty1.data() + ty1.size());
  rf = start;
  const auto yt = fast.forward({t.data(), 5, n});
  std::vector<S> at_t(yt.data(), yt.data() + yt.size());
  rf = start;
  const std::vector<S> zeros(5 * n, S(0));
  const auto y0 = fast.forward({zeros.data(), 5, n});
  for (index_t i = 0; i < 2 * n; ++i)
    CHECK(ty[i] == doctest::Approx(at_t[i] - y0.data()[i]).epsilon(sizeof(S) == 4 ? 1e-4 : 1e-12));

  rf = start;
  rr = start;
  const auto [a1, ta1] = fast.forward_dual({x.data(), 5, n}, {t.data(), 5, n});
  const auto [a2, ta2] = ref.forward_dual({x.data(), 5, n}, {t.data(), 5, n});
  CHECK(fg::test::max_rel_diff(ta1.data(), ta2.data(), ta1.size()) < tol);
  fast.zero_grad();
  ref.zero_grad();
  const auto [gx1, gt1] = fast.backward_dual({dy.data(), 2, n}, {q.data(), 2, n});
  const auto [gx2, gt2] = ref.backward_dual({dy.data(), 2, n}, {q.data(), 2, n});
  CHECK(fg::test::max_rel_diff(gx1.data(), gx2.data(), gx1.size()) < tol);
  CHECK(fg::test::max_rel_diff(gt1.data(), gt2.data(), gt1.size()) < tol);
  CHECK(fg::test::max_rel_diff(fast.grads(), ref.grads(), fast.param_count) < tol);
  (void)a1;
  (void)a2;
  (void)y1;
}

TEST_CASE("Dropout in train mode without a random stream throws, naming the fix") {
  using Spec = fg::Sequential<fg::Input<4>, fg::Dropout<>>;
  fg::Network<Spec, fg::backend::Cpu<float>> net;
  net.initialize(1);
  const std::vector<float> x(8, 1.0f);
  try {
    net.forward({x.data(), 4, 2});
    FAIL("expected fg::error");
  } catch (const fg::error& e) {
    CHECK(std::string(e.what()) == "fg::Dropout in train mode needs a random stream: call Network::set_random_stream");
  }
  // P = 0 never draws.
  fg::Network<fg::Sequential<fg::Input<4>, fg::Dropout<0.0>>, fg::backend::Cpu<float>> keep;
  const auto y = keep.forward({x.data(), 4, 2});
  CHECK(std::equal(x.begin(), x.end(), y.data()));
}

} // namespace
