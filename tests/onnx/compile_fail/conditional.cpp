// Exporting a network that conditions on class labels must not compile: its graph would need
// the labels as a second input, which the exporter does not write.
// expect: this network conditions on class labels
#include <forgery/forgery.hpp>
#include <forgery/io/onnx.hpp>
#include <forgery/layers/label_conditioning.hpp>

#ifdef FORGERY_COMPILE_FAIL_CONTROL
using G = fg::Sequential<fg::Input<8>, fg::Dense<4>, fg::Tanh>;
#else
using G = fg::Sequential<fg::Input<8>, fg::ConcatOneHot<10>, fg::Dense<4>, fg::Tanh>;
#endif

int main() {
  fg::Network<G, fg::backend::Cpu<float>> net;
  net.initialize(1);
  return fg::io::to_onnx(net).graph().node_size() == 2 ? 0 : 1;
}
