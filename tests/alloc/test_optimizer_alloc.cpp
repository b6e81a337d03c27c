// An optimizer step allocates no heap memory, from the first step on: every
// global operator new is counted.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>

#include "forgery/forgery.hpp"
#include "forgery/optim/optim.hpp"

#include "alloc_counter.hpp"

using forgery::test::allocations;

namespace {

template <class B>
void check_no_allocation() {
  using S = typename B::scalar;
  using namespace fg::optim;
  constexpr fg::index_t n = 1 << 15; // above Cpu's parallel threshold
  fg::HostBuffer<S> p(n), g(n);
  for (fg::index_t i = 0; i < n; ++i) g[i] = static_cast<S>(std::cos(static_cast<double>(i)));
  SGD::State<B> sgd(SGD::Config{.lr = 0.1, .momentum = 0.9, .nesterov = true}, n);
  Adam::State<B> adam(Adam::Config{.weight_decay = 0.01}, n);
  AdamW::State<B> adamw(AdamW::Config{}, n);
  RMSprop::State<B> rms(RMSprop::Config{.momentum = 0.5, .centered = true}, n);
  const long before = allocations.load();
  for (int t = 0; t < 3; ++t) { // the first step included: the States allocated everything
    sgd.step(p.data(), g.data());
    adam.step(p.data(), g.data());
    adamw.step(p.data(), g.data());
    rms.step(p.data(), g.data());
  }
  CHECK(allocations.load() - before == 0);
}

TEST_CASE("optimizer steps allocate nothing") {
  const long sanity = allocations.load();
  int* volatile probe = new int(3); // the counter itself works (volatile: not elided)
  delete probe;
  REQUIRE(allocations.load() == sanity + 1);
  check_no_allocation<fg::backend::Cpu<float>>();
  check_no_allocation<fg::backend::Cpu<double>>();
  check_no_allocation<fg::backend::Reference<double>>();
}

} // namespace
