// SelfAttention on an input with fewer channels than KeyDiv must not compile: its queries
// and keys would have C / KeyDiv = 0 channels, and the error must say what to change.
// expect: the input has fewer than KeyDiv channels
#include <forgery/backend/cpu.hpp>
#include <forgery/layers/conv2d.hpp>
#include <forgery/layers/self_attention.hpp>
#include <forgery/nn/sequential.hpp>

namespace fg = forgery;

#ifdef FORGERY_COMPILE_FAIL_CONTROL
using Net = fg::Sequential<fg::Input<1, 8, 8>, fg::Conv2d<8, 3, 1, 1>, fg::SelfAttention<8, 2>>;
#else
using Net = fg::Sequential<fg::Input<1, 8, 8>, fg::Conv2d<4, 3, 1, 1>, fg::SelfAttention<8, 2>>;
#endif

int main() {
  fg::Network<Net, fg::backend::Cpu<float>> net;
  net.initialize(1);
}
