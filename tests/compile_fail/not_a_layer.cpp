// A type that is not a layer spec inside a Sequential must not compile.
// expect: is not a layer spec
#include <forgery/forgery.hpp>

struct NotALayer {};

#ifdef FORGERY_COMPILE_FAIL_CONTROL
using Net = fg::Sequential<fg::Input<8>, fg::Dense<4>, fg::ReLU>;
#else
using Net = fg::Sequential<fg::Input<8>, fg::Dense<4>, NotALayer>;
#endif

int main() {
  fg::Network<Net, fg::backend::Cpu<float>> net;
  net.initialize(1);
}
