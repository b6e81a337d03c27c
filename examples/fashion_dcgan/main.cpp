// fashion_dcgan: Radford et al.'s DCGAN scaled to 28x28 Fashion-MNIST, at half the usual
// width (fashion_common/dcgan_specs.hpp): transposed convolutions with BatchNorm and ReLU in
// G, strided convolutions with LeakyReLU in D, N(0, 0.02) weights, Adam(2e-4, 0.5). Writes
// sample grids and a log; prints Frechet distance and KID against real images.
#include <cstdio>
#include <exception>

#include "../fashion_common/dcgan_specs.hpp"
#include "../fashion_common/fashion.hpp"

namespace {
using T = fg::DcganTrainer<fashion::dcgan::G, fashion::dcgan::D, fg::backend::Cpu<float>, fashion::Hook>;
} // namespace

int main(int argc, char** argv) try {
  const auto o =
      fashion::parse(argc, argv, "fashion_dcgan", "Trains a DCGAN on Fashion-MNIST.", 2000, 64, T::max_batch);
  auto hook = fashion::make_hook(o, argc, argv);
  auto cfg = fg::dcgan_config<T>();
  fashion::apply_options(cfg, o, hook);
  T trainer(cfg, std::move(hook));
  return fashion::run(trainer, o, "fashion_dcgan");
} catch (const std::exception& e) {
  return fashion::fail("fashion_dcgan", e);
}
