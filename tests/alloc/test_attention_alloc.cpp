// After the first call at a batch size, every pass of a critic with SelfAttention (forward,
// backward, the tangent passes, spectral normalisation's after_step) allocates no heap
// memory: every global operator new is counted.
#include <doctest/doctest.h>

#include "forgery/forgery.hpp"
#include "forgery/layers/self_attention.hpp"

#include "alloc_counter.hpp"

using forgery::test::allocations;

namespace {

template <class B, bool Spectral>
void check_no_allocation() {
  using S = typename B::scalar;
  using D = fg::Sequential<fg::Input<3, 8, 8>, fg::Conv2d<16, 3, 1, 1>, fg::LeakyReLU<>,
                           fg::SelfAttention<8, 2, Spectral>, fg::Flatten, fg::Dense<1>>;
  constexpr fg::index_t nin = D::input_shape::size, n = 16;
  fg::Network<D, B> d;
  d.initialize(1);
  fg::HostBuffer<S> x(nin * n), t(nin * n), dy(n), zeros(n);
  fg::RandomStream rng{1, 0, 0};
  B::fill_normal(x.size(), x.data(), rng, S(0), S(1));
  B::fill_normal(t.size(), t.data(), rng, S(0), S(1));
  B::fill(dy.size(), dy.data(), S(1));
  B::fill(zeros.size(), zeros.data(), S(0));
  auto step = [&] {
    d.zero_grad();
    d.forward({x.data(), nin, n});
    d.backward({dy.data(), 1, n}, fg::Grad::input);
    d.forward_tangent({t.data(), nin, n});
    d.backward_dual({zeros.data(), 1, n}, {dy.data(), 1, n}, fg::Grad::params);
    d.forward_dual({x.data(), nin, n}, {t.data(), nin, n});
    d.backward_dual({dy.data(), 1, n}, {dy.data(), 1, n});
    d.forward({x.data(), nin, n / 2}); // a smaller batch reuses the buffers
    d.backward({dy.data(), 1, n / 2});
    d.after_step();
  };
  step(); // warm-up: buffers, per-thread GEMM workspaces, the OpenMP pool
  step();
  const long before = allocations.load();
  for (int i = 0; i < 3; ++i) step();
  CHECK(allocations.load() - before == 0);
}

TEST_CASE("a critic with SelfAttention allocates nothing after the first call") {
  const long sanity = allocations.load();
  int* volatile probe = new int(3); // the counter itself works (volatile: not elided)
  delete probe;
  REQUIRE(allocations.load() == sanity + 1);
  check_no_allocation<fg::backend::Cpu<float>, false>();
  check_no_allocation<fg::backend::Cpu<float>, true>();
  check_no_allocation<fg::backend::Cpu<double>, false>();
  check_no_allocation<fg::backend::Reference<float>, true>();
}

} // namespace
