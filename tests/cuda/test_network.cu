// Networks on backend::Cuda against the same networks on backend::Cpu: the same seed gives
// the same initial weights (Philox on both), and with identical parameters and layer state
// forward, backward and the tangent pass agree within tolerance, for dense, convolutional,
// normalised, dropout and class-conditional specs, in float and double.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "cuda_support.hpp"

namespace fg = forgery;

namespace {

using fg::ConstBatchView;
using fg::DeviceBuffer;
using fg::HostBuffer;
using fg::index_t;
using namespace fg::test;

/// Every layer's persistent state (BatchNorm's running statistics, SpectralNorm's u and v)
/// as (pointer, count) pairs, in layer order.
template <class Net>
std::vector<std::pair<typename Net::scalar*, index_t>> states(Net& net) {
  std::vector<std::pair<typename Net::scalar*, index_t>> out;
  net.for_each_state([&](std::size_t, typename Net::scalar* s, index_t n) { out.emplace_back(s, n); });
  return out;
}

template <class Net>
double max_state_diff(Net& gpu, fg::Network<typename Net::spec, fg::backend::Cpu<typename Net::scalar>>& cpu) {
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

/// A device view's values on the host.
template <class S>
HostBuffer<S> host(ConstBatchView<S> v) {
  return download(v.data(), v.size());
}

/// Runs Spec on Cuda<S> and Cpu<S> from the same seed, then with the Cpu parameters and
/// state copied to the device, and compares outputs, input and parameter gradients and the
/// tangent pass. Conditional specs get labels j mod classes (device labels for Cuda); specs
/// that draw (Dropout) get two copies of one random stream.
template <class Spec, class S>
void compare_with_cpu(index_t batch = 6, std::uint64_t seed = 11) {
  using Cpu = fg::Network<Spec, fg::backend::Cpu<S>>;
  using Gpu = fg::Network<Spec, fg::backend::Cuda<S>>;
  Cpu cpu;
  Gpu gpu;
  cpu.initialize(seed);
  gpu.initialize(seed);
  constexpr index_t np = Cpu::param_count;
  // Same Philox draws: uniform initialisation is bitwise, normal within a few ulp, and the
  // state derived from the weights (SpectralNorm's power iteration) within tolerance.
  CHECK(max_rel_diff(download(gpu.params(), np).data(), cpu.params(), np) <= normal_tolerance<S>());
  CHECK(max_state_diff(gpu, cpu) <= cuda_tolerance<S>());

  // From here on identical parameters and state, so the passes alone are compared.
  fg::backend::Cuda<S>::to_device(np, cpu.params(), gpu.params());
  {
    const auto g = states(gpu), c = states(cpu);
    for (std::size_t i = 0; i < g.size(); ++i) fg::backend::Cuda<S>::to_device(c[i].second, c[i].first, g[i].first);
  }

  HostBuffer<std::int32_t> labels(batch);
  DeviceBuffer<std::int32_t> device_labels;
  if constexpr (Cpu::label_classes > 0) {
    for (index_t j = 0; j < batch; ++j) labels[j] = static_cast<std::int32_t>(j % Cpu::label_classes);
    device_labels = upload(labels);
    cpu.set_labels(labels.data(), batch);
    gpu.set_labels(device_labels.data(), batch);
  }
  fg::RandomStream rng_cpu{seed, 9, 0}, rng_gpu = rng_cpu;
  cpu.set_random_stream(&rng_cpu);
  gpu.set_random_stream(&rng_gpu);

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
  CHECK(rng_cpu == rng_gpu);
  CHECK(max_state_diff(gpu, cpu) < tol); // BatchNorm's running statistics after a train pass

  cpu.zero_grad();
  gpu.zero_grad();
  const auto gc = cpu.backward(dyc);
  const auto gg = gpu.backward(dyg);
  CHECK(max_rel_diff(host(gg).data(), gc.data(), gc.size()) < tol);
  CHECK(max_rel_diff(download(gpu.grads(), np).data(), cpu.grads(), np) < tol);

  // Parameter gradients only, accumulated on top of the last ones.
  cpu.backward(dyc, fg::Grad::params);
  gpu.backward(dyg, fg::Grad::params);
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
  }

  // Eval mode (BatchNorm's running statistics, Dropout off) and after_step (SpectralNorm's
  // power iteration) on both.
  cpu.after_step();
  gpu.after_step();
  CHECK(max_state_diff(gpu, cpu) < tol);
  cpu.eval();
  gpu.eval();
  const auto ec = cpu.forward(xc);
  const auto eg = gpu.forward(xg);
  CHECK(max_rel_diff(host(eg).data(), ec.data(), ec.size()) < tol);
}

using Mlp = fg::Sequential<fg::Input<6>, fg::Dense<16>, fg::ReLU, fg::Dense<16>, fg::LeakyReLU<>, fg::Dense<8>,
                           fg::Tanh, fg::Dense<8>, fg::Sigmoid, fg::Dense<3, false>, fg::Identity>;
using ConvCritic = fg::Sequential<fg::Input<2, 8, 8>, fg::Conv2d<4, 3, 1, 1>, fg::LayerNorm<>, fg::LeakyReLU<>,
                                  fg::SpectralNorm<fg::Conv2d<6, 4, 2, 1>>, fg::Dropout<0.25>, fg::Flatten,
                                  fg::SpectralNorm<fg::Dense<5>, 2>, fg::Tanh, fg::Dense<1>>;
using ConvGenerator = fg::Sequential<fg::Input<8>, fg::Dense<32>, fg::Reshape<2, 4, 4>, fg::BatchNorm<>, fg::ReLU,
                                     fg::ConvTranspose2d<4, 4, 2, 1>, fg::BatchNorm<>, fg::LeakyReLU<>,
                                     fg::ConvTranspose2d<3, 3, 1, 1>, fg::Tanh>;
using FlatBatchNorm = fg::Sequential<fg::Input<5>, fg::Dense<7>, fg::BatchNorm<0.2>, fg::ReLU, fg::Dense<2>>;
using ConditionalMlp = fg::Sequential<fg::Input<4>, fg::ConcatEmbedding<3, 2>, fg::Dense<8>, fg::ReLU,
                                      fg::ConcatOneHot<3>, fg::Dense<5>, fg::LeakyReLU<>, fg::Projection<3>>;
using ConditionalConv = fg::Sequential<fg::Input<2, 4, 4>, fg::ConcatOneHot<3>, fg::Conv2d<4, 3, 1, 1>,
                                       fg::ConcatEmbedding<3, 2>, fg::Conv2d<2, 2, 2, 0>, fg::Flatten, fg::Dense<2>>;

TEST_CASE_TEMPLATE("dense layers and activations on Cuda match Cpu", S, float, double) { compare_with_cpu<Mlp, S>(); }

TEST_CASE_TEMPLATE("a convolutional critic (LayerNorm, SpectralNorm, Dropout) on Cuda matches Cpu", S, float, double) {
  compare_with_cpu<ConvCritic, S>();
}

TEST_CASE_TEMPLATE("a transposed-convolution generator with BatchNorm on Cuda matches Cpu", S, float, double) {
  compare_with_cpu<ConvGenerator, S>();
  compare_with_cpu<FlatBatchNorm, S>(9, 4);
}

TEST_CASE_TEMPLATE("label conditioning (one-hot, embedding, projection) on Cuda matches Cpu", S, float, double) {
  compare_with_cpu<ConditionalMlp, S>();
  compare_with_cpu<ConditionalConv, S>(5, 3);
}

TEST_CASE("tiny and large batches (one block, many blocks) on Cuda match Cpu") {
  compare_with_cpu<Mlp, float>(3, 5);
  compare_with_cpu<Mlp, float>(300, 5);
}

} // namespace
