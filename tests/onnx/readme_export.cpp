#include <forgery/forgery.hpp>
#include <forgery/io/onnx.hpp>

using G = fg::Sequential<fg::Input<64>, fg::Dense<256>, fg::LeakyReLU<>, fg::Dense<784>, fg::Tanh>;

// After training: the generator as generator.onnx, input "input" (N, 64), output "output"
// (N, 784), opset 17; load it in onnxruntime, TensorRT or onnxruntime-web.
void save_for_inference(const fg::Network<G, fg::backend::Cpu<float>>& generator) {
  fg::io::export_onnx(generator, "generator.onnx");
}
