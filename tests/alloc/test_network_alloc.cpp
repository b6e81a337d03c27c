// After the first call, forward + backward (and the tangent passes) of a Sequential
// allocate no heap memory: every global operator new is counted.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "forgery/forgery.hpp"

#include "alloc_counter.hpp"

using forgery::test::allocations;

namespace {

template <class B>
void check_no_allocation() {
  using S = typename B::scalar;
  using D = fg::Sequential<fg::Input<784>, fg::Dense<256>, fg::LeakyReLU<>, fg::Dense<128>, fg::Tanh, fg::Dense<1>>;
  fg::Network<D, B> d;
  d.initialize(1);
  fg::HostBuffer<S> x(784 * 64), t(784 * 64), dy(64), zeros(64);
  fg::RandomStream rng{1, 0, 0};
  B::fill_normal(x.size(), x.data(), rng, S(0), S(1));
  B::fill_normal(t.size(), t.data(), rng, S(0), S(1));
  B::fill(dy.size(), dy.data(), S(1));
  auto step = [&] {
    d.zero_grad();
    d.forward({x.data(), 784, 64});
    d.backward({dy.data(), 1, 64});
    d.forward_tangent({t.data(), 784, 64});
    d.forward_dual({x.data(), 784, 64}, {t.data(), 784, 64});
    d.backward_dual({zeros.data(), 1, 64}, {dy.data(), 1, 64});
    d.forward({x.data(), 784, 32}); // a smaller batch reuses the buffers
    d.backward({dy.data(), 1, 32}, fg::Grad::params);
  };
  step(); // warm-up: buffers, per-thread GEMM workspaces, the OpenMP pool
  step();
  const long before = allocations.load();
  for (int i = 0; i < 5; ++i) step();
  CHECK(allocations.load() - before == 0);
}

TEST_CASE("forward and backward allocate nothing after the first call") {
  const long sanity = allocations.load();
  int* volatile probe = new int(3); // the counter itself works (volatile: not elided)
  delete probe;
  REQUIRE(allocations.load() == sanity + 1);
  check_no_allocation<fg::backend::Cpu<float>>();
  check_no_allocation<fg::backend::Cpu<double>>();
  check_no_allocation<fg::backend::Reference<float>>();
}

} // namespace
