// Reshape to a shape with a different number of values must not compile.
// expect: must hold as many values
#include <forgery/forgery.hpp>

#ifdef FORGERY_COMPILE_FAIL_CONTROL
using Net = fg::Sequential<fg::Input<12>, fg::Reshape<3, 4>>;
#else
using Net = fg::Sequential<fg::Input<12>, fg::Reshape<2, 5>>;
#endif

int main() {
  fg::Network<Net, fg::backend::Cpu<float>> net;
  net.initialize(1);
}
