// AvgPool2d on an image whose height or width is not a multiple of its size must not compile.
// expect: H and W must be multiples of Size
#include <forgery/backend/cpu.hpp>
#include <forgery/layers/conv2d.hpp>
#include <forgery/layers/resample.hpp>
#include <forgery/nn/sequential.hpp>

namespace fg = forgery;

#ifdef FORGERY_COMPILE_FAIL_CONTROL
using Net = fg::Sequential<fg::Input<1, 8, 8>, fg::Conv2d<4, 3, 1, 1>, fg::AvgPool2d<2>>; // 8 x 8
#else
using Net = fg::Sequential<fg::Input<1, 8, 8>, fg::Conv2d<4, 4, 1, 1>, fg::AvgPool2d<2>>; // 7 x 7
#endif

int main() {
  fg::Network<Net, fg::backend::Cpu<float>> net;
  net.initialize(1);
}
