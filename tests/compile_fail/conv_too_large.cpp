// A convolution whose kernel is larger than the padded input must not compile.
// expect: the kernel is larger than the padded input
#include <forgery/forgery.hpp>
#include <forgery/layers/conv2d.hpp>

#ifdef FORGERY_COMPILE_FAIL_CONTROL
using Net = fg::Sequential<fg::Input<1, 4, 6>, fg::Conv2d<8, 6, 1, 1>>;
#else
using Net = fg::Sequential<fg::Input<1, 4, 6>, fg::Conv2d<8, 7, 1, 1>>;
#endif

int main() {
  fg::Network<Net, fg::backend::Cpu<float>> net;
  net.initialize(1);
}
