// ConditionalBatchNorm and MinibatchStdDev on backend::Cuda against the same networks on
// backend::Cpu: with identical parameters, running statistics and labels (device labels for
// Cuda), forward, the running statistics, backward, the tangent pass (MinibatchStdDev) and
// eval mode agree within tolerance, in float and double, with one and two statistics groups.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "cuda_support.hpp"
#include "forgery/layers/conditional_batch_norm.hpp"
#include "forgery/layers/minibatch_stddev.hpp"

namespace fg = forgery;

namespace {

using fg::ConstBatchView;
using fg::DeviceBuffer;
using fg::HostBuffer;
using fg::index_t;
using namespace fg::test;

/// Every layer's persistent state as (pointer, count) pairs, in layer order.
template <class Net>
std::vector<std::pair<typename Net::scalar*, index_t>> states(Net& net) {
  std::vector<std::pair<typename Net::scalar*, index_t>> out;
  net.for_each_state([&](std::size_t, typename Net::scalar* s, index_t n) { out.emplace_back(s, n); });
  return out;
}

template <class Gpu, class Cpu>
double max_state_diff(Gpu& gpu, Cpu& cpu) {
  const auto g = states(gpu), c = states(cpu);
  REQUIRE(g.size() == c.size());
  double worst = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    REQUIRE(g[i].second == c[i].second);
    const auto h = download(g[i].first, g[i].second);
    worst = std::max(worst, max_rel_diff(h.data(), c[i].first, c[i].second));
  }
  return worst;
}

template <class S>
HostBuffer<S> host(ConstBatchView<S> v) {
  return download(v.data(), v.size());
}

/// Spec on Cuda<S> and Cpu<S> with the Cpu parameters (perturbed away from the initial
/// gains of 1 and biases of 0) and state copied to the device; labels (3 j + 1) mod classes.
template <class Spec, class S>
void compare_with_cpu(index_t batch, index_t groups = 1, std::uint64_t seed = 11) {
  using Cpu = fg::Network<Spec, fg::backend::Cpu<S>>;
  using Gpu = fg::Network<Spec, fg::backend::Cuda<S>>;
  Cpu cpu;
  Gpu gpu;
  cpu.initialize(seed);
  gpu.initialize(seed);
  constexpr index_t np = Cpu::param_count;
  const auto shift = normal_buffer<S>(np, seed, 5);
  for (index_t i = 0; i < np; ++i) cpu.params()[i] += shift[i] / 4;
  fg::backend::Cuda<S>::to_device(np, cpu.params(), gpu.params());
  {
    const auto g = states(gpu), c = states(cpu);
    for (std::size_t i = 0; i < g.size(); ++i) fg::backend::Cuda<S>::to_device(c[i].second, c[i].first, g[i].first);
  }
  HostBuffer<std::int32_t> labels(batch);
  DeviceBuffer<std::int32_t> device_labels;
  if constexpr (Cpu::label_classes > 0) {
    for (index_t j = 0; j < batch; ++j) labels[j] = static_cast<std::int32_t>((3 * j + 1) % Cpu::label_classes);
    device_labels = upload(labels);
    cpu.set_labels(labels.data(), batch);
    gpu.set_labels(device_labels.data(), batch);
  }
  cpu.set_statistics_groups(groups);
  gpu.set_statistics_groups(groups);

  constexpr index_t nin = Spec::input_shape::size, nout = Spec::output_shape::size;
  const auto x = normal_buffer<S>(nin * batch, seed, 1);
  const auto dy = normal_buffer<S>(nout * batch, seed, 2);
  const auto dx_ = upload(x), ddy = upload(dy);
  const ConstBatchView<S> xc(x.data(), nin, batch), dyc(dy.data(), nout, batch);
  const ConstBatchView<S> xg(dx_.data(), nin, batch), dyg(ddy.data(), nout, batch);
  const double tol = cuda_tolerance<S>();

  const auto yc = cpu.forward(xc);
  const auto yg = gpu.forward(xg);
  CHECK(max_rel_diff(host(yg).data(), yc.data(), yc.size()) < tol);
  CHECK(max_state_diff(gpu, cpu) < tol);
  cpu.zero_grad();
  gpu.zero_grad();
  const auto gc = cpu.backward(dyc);
  const auto gg = gpu.backward(dyg);
  CHECK(max_rel_diff(host(gg).data(), gc.data(), gc.size()) < tol);
  CHECK(max_rel_diff(download(gpu.grads(), np).data(), cpu.grads(), np) < tol);

  if constexpr (Cpu::supports_dual) {
    const auto t = normal_buffer<S>(nin * batch, seed, 3);
    const auto q = normal_buffer<S>(nout * batch, seed, 4);
    const auto dt = upload(t), dq = upload(q);
    const ConstBatchView<S> tc(t.data(), nin, batch), qc(q.data(), nout, batch);
    const ConstBatchView<S> tg(dt.data(), nin, batch), qg(dq.data(), nout, batch);
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
    // forward_tangent on the cached activations.
    cpu.forward(xc);
    gpu.forward(xg);
    const auto [y3, ty3] = cpu.forward_tangent(tc);
    const auto [y4, ty4] = gpu.forward_tangent(tg);
    CHECK(max_rel_diff(host(ty4).data(), ty3.data(), ty3.size()) < tol);
  }

  cpu.eval();
  gpu.eval();
  const auto ec = cpu.forward(xc);
  const auto eg = gpu.forward(xg);
  CHECK(max_rel_diff(host(eg).data(), ec.data(), ec.size()) < tol);
  cpu.zero_grad();
  gpu.zero_grad();
  const auto hc = cpu.backward(dyc);
  const auto hg = gpu.backward(dyg);
  CHECK(max_rel_diff(host(hg).data(), hc.data(), hc.size()) < tol);
  CHECK(max_rel_diff(download(gpu.grads(), np).data(), cpu.grads(), np) < tol);
}

using CbnGenerator =
    fg::Sequential<fg::Input<6>, fg::Dense<32, false>, fg::Reshape<2, 4, 4>, fg::ConditionalBatchNorm<5>, fg::ReLU,
                   fg::ConvTranspose2d<3, 4, 2, 1>, fg::ConditionalBatchNorm<5, 0.2>, fg::Tanh>;
using CbnFlat = fg::Sequential<fg::Input<5>, fg::Dense<300>, fg::ConditionalBatchNorm<3>, fg::ReLU, fg::Dense<2>>;
using MbsdCritic = fg::Sequential<fg::Input<3, 8, 8>, fg::Conv2d<4, 4, 2, 1>, fg::LeakyReLU<>, fg::MinibatchStdDev<>,
                                  fg::Conv2d<6, 3, 1, 1>, fg::Flatten, fg::Dense<1>>;
using MbsdFlat = fg::Sequential<fg::Input<7>, fg::Dense<9>, fg::Tanh, fg::MinibatchStdDev<3>, fg::Dense<1>>;

TEST_CASE_TEMPLATE("ConditionalBatchNorm on Cuda matches Cpu", S, float, double) {
  compare_with_cpu<CbnGenerator, S>(8);
  compare_with_cpu<CbnGenerator, S>(10, 2);
  compare_with_cpu<CbnFlat, S>(7);
}

TEST_CASE_TEMPLATE("MinibatchStdDev on Cuda matches Cpu", S, float, double) {
  compare_with_cpu<MbsdCritic, S>(8);
  compare_with_cpu<MbsdCritic, S>(4, 2); // groups of 2 in each half
  compare_with_cpu<MbsdFlat, S>(9);
  compare_with_cpu<MbsdCritic, S>(256);
}

} // namespace
