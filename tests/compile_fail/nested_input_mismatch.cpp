// A nested Sequential whose Input<...> is not the shape arriving there must not compile;
// the message names both shapes' roles and the fix.
// expect: nested_input_must_match
#include "forgery/backend/cpu.hpp"
#include "forgery/layers/dense.hpp"
#include "forgery/nn/sequential.hpp"

namespace fg = forgery;

#ifdef FORGERY_COMPILE_FAIL_CONTROL
using Block = fg::Sequential<fg::Input<16>, fg::Dense<4>>;
#else
using Block = fg::Sequential<fg::Input<15>, fg::Dense<4>>;
#endif
using Net = fg::Sequential<fg::Input<8>, fg::Dense<16>, Block>;

int main() {
  fg::Network<Net, fg::backend::Cpu<float>> net;
  net.initialize(1);
}
