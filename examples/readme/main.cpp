#include <cstdio>
#include <forgery/forgery.hpp>
int main() {
  using D = fg::Sequential<fg::Input<784>, fg::Dense<256>, fg::LeakyReLU<>, fg::Dense<1>>;
  fg::Network<D, fg::backend::Cpu<float>> d;
  d.initialize(42);
  fg::HostBuffer<float> x(784 * 64);
  fg::RandomStream rng{1, 0, 0};
  fg::backend::Cpu<float>::fill_normal(x.size(), x.data(), rng, 0.f, 1.f);
  auto y = d.forward({x.data(), 784, 64});
  std::printf("%f\n", static_cast<double>(y(0, 0)));
}
