// A layer without an ONNX form deep inside blocks (a Sequential in a Residual) must be
// reported as a flat network's is: export_onnx checks a block through its children, so the
// diagnostic is the one that says how to give the layer a form, naming it in the trace.
// expect: Specialise forgery::io::onnx_node<L>
#include <forgery/forgery.hpp>
#include <forgery/io/onnx.hpp>

#ifdef FORGERY_COMPILE_FAIL_CONTROL
using Extra = fg::ReLU;
#else
using Extra = fg::example::Double;
#endif

int main() {
  using Block = fg::Residual<fg::Sequential<fg::Dense<4>, fg::Sequential<fg::Tanh, Extra>>>;
  fg::Network<fg::Sequential<fg::Input<4>, Block, fg::Dense<1>>, fg::backend::Cpu<float>> net;
  net.initialize(1);
  return fg::io::to_onnx(net).graph().node_size() == 4 ? 0 : 1;
}
