// Exporting a network with a layer that has no ONNX form must not compile, and the error
// must say how to give it one. The layer is forgery::example::Double (core/concepts.hpp), a
// conforming layer spec with no onnx_node; the instantiation trace names it, as
// onnx_form_check<forgery::example::Double::bind<...>::layer<...>>.
// expect: Specialise forgery::io::onnx_node<L>
#include <forgery/forgery.hpp>
#include <forgery/io/onnx.hpp>

#ifdef FORGERY_COMPILE_FAIL_CONTROL
using Extra = fg::ReLU;
#else
using Extra = fg::example::Double;
#endif

int main() {
  fg::Network<fg::Sequential<fg::Input<3>, fg::Dense<4>, Extra, fg::Dense<1>>, fg::backend::Cpu<float>> net;
  net.initialize(1);
  return fg::io::to_onnx(net).graph().node_size() == 3 ? 0 : 1;
}
