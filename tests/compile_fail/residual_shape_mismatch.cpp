// A Residual whose main branch changes the channels while the shortcut is the identity must
// not compile; the message names the fix (a 1x1 convolution in the shortcut).
// expect: residual_shapes_must_match
#include "forgery/backend/cpu.hpp"
#include "forgery/layers/activation.hpp"
#include "forgery/layers/conv2d.hpp"
#include "forgery/nn/residual.hpp"
#include "forgery/nn/sequential.hpp"

namespace fg = forgery;

#ifdef FORGERY_COMPILE_FAIL_CONTROL
using Block = fg::Residual<fg::Sequential<fg::ReLU, fg::Conv2d<8, 3, 1, 1>>, fg::Conv2d<8, 1, 1, 0>>;
#else
using Block = fg::Residual<fg::Sequential<fg::ReLU, fg::Conv2d<8, 3, 1, 1>>>;
#endif
using Net = fg::Sequential<fg::Input<4, 6, 6>, Block>;

int main() {
  fg::Network<Net, fg::backend::Cpu<float>> net;
  net.initialize(1);
}
