// Dense directly after a 3-D input must not compile: Dense needs a flat input.
// expect: insert fg::Flatten
#include <forgery/forgery.hpp>

#ifdef FORGERY_COMPILE_FAIL_CONTROL
using Net = fg::Sequential<fg::Input<1, 28, 28>, fg::Flatten, fg::Dense<10>>;
#else
using Net = fg::Sequential<fg::Input<1, 28, 28>, fg::Dense<10>>;
#endif

int main() {
  fg::Network<Net, fg::backend::Cpu<float>> net;
  net.initialize(1);
}
