// SelfAttention on backend::Cuda against backend::Cpu: with identical parameters (gamma
// non-zero, so the attention branch is visible) and state, forward, backward and the tangent
// pass agree within tolerance, alone, in a small critic, with spectral normalisation, and
// after a power-iteration step.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "cuda_support.hpp"
#include "forgery/layers/self_attention.hpp"

namespace fg = forgery;

namespace {

using fg::ConstBatchView;
using fg::HostBuffer;
using fg::index_t;
using namespace fg::test;

template <class Net>
std::vector<std::pair<typename Net::scalar*, index_t>> states(Net& net) {
  std::vector<std::pair<typename Net::scalar*, index_t>> out;
  net.for_each_state([&](std::size_t, typename Net::scalar* s, index_t n) { out.emplace_back(s, n); });
  return out;
}

template <class S>
HostBuffer<S> host(ConstBatchView<S> v) {
  return download(v.data(), v.size());
}

/// Spec on Cuda<S> and Cpu<S> with the Cpu's parameters (all drawn from N(0, 0.15^2), then
/// gamma of layer I set to 0.7) and state copied to the device.
template <class Spec, class S, std::size_t I>
void compare_with_cpu(index_t batch, std::uint64_t seed) {
  using Cpu = fg::Network<Spec, fg::backend::Cpu<S>>;
  using Gpu = fg::Network<Spec, fg::backend::Cuda<S>>;
  using L = std::tuple_element_t<I, typename Cpu::layers_type>;
  Cpu cpu;
  Gpu gpu;
  cpu.initialize(seed);
  gpu.initialize(seed);
  constexpr index_t np = Cpu::param_count;
  fg::RandomStream rng{seed, 11, 0};
  fg::backend::Cpu<S>::fill_normal(np, cpu.params(), rng, S(0), S(0.15));
  cpu.template layer_params<I>()[L::gamma_offset] = S(0.7);
  for (int i = 0; i < 20; ++i) cpu.after_step(); // spectral: u, v of the drawn weights
  fg::backend::Cuda<S>::to_device(np, cpu.params(), gpu.params());
  {
    const auto g = states(gpu), c = states(cpu);
    REQUIRE(g.size() == c.size());
    for (std::size_t i = 0; i < g.size(); ++i) fg::backend::Cuda<S>::to_device(c[i].second, c[i].first, g[i].first);
  }

  constexpr index_t nin = Spec::input_shape::size, nout = Spec::output_shape::size;
  const auto x = normal_buffer<S>(nin * batch, seed, 1);
  const auto dy = normal_buffer<S>(nout * batch, seed, 2);
  const auto t = normal_buffer<S>(nin * batch, seed, 3);
  const auto q = normal_buffer<S>(nout * batch, seed, 4);
  const auto dx_ = upload(x), ddy = upload(dy), dt = upload(t), dq = upload(q);
  const ConstBatchView<S> xc(x.data(), nin, batch), dyc(dy.data(), nout, batch);
  const ConstBatchView<S> xg(dx_.data(), nin, batch), dyg(ddy.data(), nout, batch);
  const ConstBatchView<S> tc(t.data(), nin, batch), qc(q.data(), nout, batch);
  const ConstBatchView<S> tg(dt.data(), nin, batch), qg(dq.data(), nout, batch);
  const double tol = cuda_tolerance<S>();

  const auto yc = cpu.forward(xc);
  const auto yg = gpu.forward(xg);
  CHECK(max_rel_diff(host(yg).data(), yc.data(), yc.size()) < tol);
  cpu.zero_grad();
  gpu.zero_grad();
  const auto gc = cpu.backward(dyc);
  const auto gg = gpu.backward(dyg);
  CHECK(max_rel_diff(host(gg).data(), gc.data(), gc.size()) < tol);
  CHECK(max_rel_diff(download(gpu.grads(), np).data(), cpu.grads(), np) < tol);

  // The penalties' order: forward_tangent reuses the forward, then parameter gradients only.
  const auto [yt1, tyt1] = cpu.forward_tangent(tc);
  const auto [yt2, tyt2] = gpu.forward_tangent(tg);
  CHECK(max_rel_diff(host(tyt2).data(), tyt1.data(), tyt1.size()) < tol);
  cpu.backward_dual(dyc, qc, fg::Grad::params);
  gpu.backward_dual(dyg, qg, fg::Grad::params);
  CHECK(max_rel_diff(download(gpu.grads(), np).data(), cpu.grads(), np) < tol);

  const auto [y1, ty1] = cpu.forward_dual(xc, tc);
  const auto [y2, ty2] = gpu.forward_dual(xg, tg);
  CHECK(max_rel_diff(host(y2).data(), y1.data(), y1.size()) < tol);
  CHECK(max_rel_diff(host(ty2).data(), ty1.data(), ty1.size()) < tol);
  cpu.zero_grad();
  gpu.zero_grad();
  const auto [gx1, gt1] = cpu.backward_dual(dyc, qc);
  const auto [gx2, gt2] = gpu.backward_dual(dyg, qg);
  CHECK(max_rel_diff(host(gx2).data(), gx1.data(), gx1.size()) < tol);
  CHECK(max_rel_diff(host(gt2).data(), gt1.data(), gt1.size()) < tol);
  CHECK(max_rel_diff(download(gpu.grads(), np).data(), cpu.grads(), np) < tol);

  cpu.after_step();
  gpu.after_step();
  const auto g = states(gpu), c = states(cpu);
  for (std::size_t i = 0; i < g.size(); ++i)
    CHECK(max_rel_diff(download(g[i].first, g[i].second).data(), c[i].first, c[i].second) < tol);
}

using Alone = fg::Sequential<fg::Input<16, 4, 4>, fg::SelfAttention<>>;
using Wide = fg::Sequential<fg::Input<32, 8, 8>, fg::SelfAttention<>>;
using Critic = fg::Sequential<fg::Input<3, 8, 8>, fg::Conv2d<16, 3, 1, 1>, fg::LeakyReLU<>,
                              fg::SelfAttention<8, 2, true>, fg::Flatten, fg::Dense<1>>;

TEST_CASE_TEMPLATE("SelfAttention on Cuda matches Cpu", S, float, double) {
  compare_with_cpu<Alone, S, 0>(5, 1);
  compare_with_cpu<Wide, S, 0>(6, 2);
  compare_with_cpu<Critic, S, 2>(4, 3);
}

} // namespace
