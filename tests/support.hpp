// Helpers shared by the test files: backend lists for TEST_CASE_TEMPLATE, probe data,
// and comparisons of a fast backend against the Reference oracle.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <tuple>

#include <unistd.h>

#include "forgery/forgery.hpp"
#include "forgery/testing/gradient_check.hpp"

namespace forgery::test {

// Type lists for TEST_CASE_TEMPLATE.
#define FORGERY_DOUBLE_BACKENDS fg::backend::Reference<double>, fg::backend::Cpu<double>
#define FORGERY_ALL_BACKENDS                                                                                           \
  fg::backend::Reference<float>, fg::backend::Cpu<float>, fg::backend::Reference<double>, fg::backend::Cpu<double>
#define FORGERY_SCALARS float, double

/// A directory of its own under the system's temporary directory (process id and a serial
/// number in its name), removed with everything in it at the end of the scope.
struct Scratch {
  std::filesystem::path dir;
  Scratch() {
    static int serial = 0;
    dir = std::filesystem::temp_directory_path() /
          ("forgery_test_" + std::to_string(::getpid()) + "_" + std::to_string(++serial));
    std::filesystem::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

/// The message of the forgery::error `f` throws; empty when it throws none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const error& e) {
    return e.what();
  }
  return "";
}

/// The message of the io_error `f` throws; fails the test for no exception or another type.
template <class F>
std::string io_error_of(F&& f) {
  try {
    f();
  } catch (const io_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL_CHECK("expected an io_error, got: " << e.what());
    return {};
  }
  FAIL_CHECK("expected an io_error, nothing was thrown");
  return {};
}

/// A host buffer of n values drawn from N(0, 1) on stream `stream` of `seed`.
template <class S>
HostBuffer<S> normal_buffer(index_t n, std::uint64_t seed, std::uint64_t stream = 0) {
  HostBuffer<S> b(n);
  RandomStream rng{seed, stream, 0};
  backend::Reference<S>::fill_normal(n, b.data(), rng, S(0), S(1));
  return b;
}

/// Largest |a - b| / max(1, |b|) over two arrays.
template <class S>
double max_rel_diff(const S* a, const S* b, index_t n) {
  double worst = 0;
  for (index_t i = 0; i < n; ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])) /
                     std::max(1.0, std::abs(static_cast<double>(b[i])));
    if (!(d <= worst)) worst = d;
  }
  return worst;
}

/// Tolerance for comparing a fast backend with the Reference oracle.
template <class S>
constexpr double backend_tolerance() {
  return sizeof(S) == 4 ? 2e-5 : 1e-12;
}

/// Runs the same spec on Cpu<S> and Reference<S> with identical weights and probe data,
/// and checks forward, backward and the tangent pass agree.
template <class Spec, class S>
void compare_with_reference(index_t batch = 5, std::uint64_t seed = 11) {
  Network<Spec, backend::Cpu<S>> fast;
  Network<Spec, backend::Reference<S>> ref;
  fast.initialize(seed);
  ref.initialize(seed);
  REQUIRE(std::equal(fast.params(), fast.params() + fast.param_count, ref.params()));
  constexpr index_t nin = Spec::input_shape::size, nout = Spec::output_shape::size;
  const auto x = normal_buffer<S>(nin * batch, seed, 1);
  const auto dy = normal_buffer<S>(nout * batch, seed, 2);
  const ConstBatchView<S> xv(x.data(), nin, batch), dyv(dy.data(), nout, batch);
  const double tol = backend_tolerance<S>();

  const auto yf = fast.forward(xv);
  const auto yr = ref.forward(xv);
  CHECK(max_rel_diff(yf.data(), yr.data(), yf.size()) < tol);
  fast.zero_grad();
  ref.zero_grad();
  const auto df = fast.backward(dyv);
  const auto dr = ref.backward(dyv);
  CHECK(max_rel_diff(df.data(), dr.data(), df.size()) < tol);
  CHECK(max_rel_diff(fast.grads(), ref.grads(), fast.param_count) < tol);

  if constexpr (decltype(fast)::supports_dual) {
    const auto t = normal_buffer<S>(nin * batch, seed, 3);
    const auto q = normal_buffer<S>(nout * batch, seed, 4);
    const ConstBatchView<S> tv(t.data(), nin, batch), qv(q.data(), nout, batch);
    const auto [y1, ty1] = fast.forward_dual(xv, tv);
    const auto [y2, ty2] = ref.forward_dual(xv, tv);
    CHECK(max_rel_diff(ty1.data(), ty2.data(), ty1.size()) < tol);
    fast.zero_grad();
    ref.zero_grad();
    const auto [gx1, gt1] = fast.backward_dual(dyv, qv);
    const auto [gx2, gt2] = ref.backward_dual(dyv, qv);
    CHECK(max_rel_diff(gx1.data(), gx2.data(), gx1.size()) < tol);
    CHECK(max_rel_diff(gt1.data(), gt2.data(), gt1.size()) < tol);
    CHECK(max_rel_diff(fast.grads(), ref.grads(), fast.param_count) < tol);
  }
}

/// Gradient check (double) of a spec on backend B: every first- and second-order gradient
/// against central differences, max relative error below 1e-6. `step` is the difference
/// step; deep second-order chains are checked with a larger one (1e-5, near the optimum
/// cbrt(eps) for central differences), where 1e-6 leaves round-off of the objective at the
/// tolerance and the verdict would depend on how the compiler rounds.
template <class Spec, class B>
void require_gradients(std::uint64_t seed = 5, index_t batch = 3, double step = 1e-6) {
  Network<Spec, B> net;
  net.initialize(seed);
  testing::GradientCheckOptions opts;
  opts.batch = batch;
  opts.step = step;
  const auto report = testing::check_gradients(net, opts);
  INFO(report.summary());
  CHECK(report.passed());
  CHECK(report.dual_checked == Network<Spec, B>::supports_dual);
}

} // namespace forgery::test
