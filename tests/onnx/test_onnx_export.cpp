// The ONNX graph forgery writes: model header, names and shapes, each layer's nodes and
// initializers against the network's own parameters and state, options and errors. Running
// the models in onnxruntime is the onnx.runtime test (export_models.cpp, onnx_compare.py).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <forgery/io/onnx.hpp>

#include "../support.hpp"
#include "models.hpp"

namespace {

namespace models = forgery::test::onnx_models;
using forgery::test::Scratch;
using B = fg::backend::Cpu<float>;

const onnx::TensorProto& initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const onnx::TensorProto& t : m.graph().initializer())
    if (t.name() == name) return t;
  FAIL("no initializer " << name);
  return m.graph().initializer(0);
}

template <class S = float>
std::vector<S> values(const onnx::TensorProto& t) {
  std::vector<S> v(t.raw_data().size() / sizeof(S));
  std::memcpy(v.data(), t.raw_data().data(), v.size() * sizeof(S));
  return v;
}

std::vector<std::int64_t> dims(const onnx::TensorProto& t) { return {t.dims().begin(), t.dims().end()}; }

const onnx::NodeProto& node(const onnx::ModelProto& m, const std::string& name) {
  for (const onnx::NodeProto& n : m.graph().node())
    if (n.name() == name) return n;
  FAIL("no node " << name);
  return m.graph().node(0);
}

const onnx::AttributeProto& attribute(const onnx::NodeProto& n, const std::string& name) {
  for (const onnx::AttributeProto& a : n.attribute())
    if (a.name() == name) return a;
  FAIL("node " << n.name() << " has no attribute " << name);
  return n.attribute(0);
}

std::vector<std::int64_t> ints(const onnx::AttributeProto& a) { return {a.ints().begin(), a.ints().end()}; }

std::vector<std::string> op_types(const onnx::ModelProto& m) {
  std::vector<std::string> ops;
  for (const onnx::NodeProto& n : m.graph().node()) ops.push_back(n.op_type());
  return ops;
}

// "N" or the value of each dimension of a graph input or output.
std::vector<std::string> shape(const onnx::ValueInfoProto& v) {
  std::vector<std::string> s;
  for (const auto& d : v.type().tensor_type().shape().dim())
    s.push_back(d.has_dim_param() ? d.dim_param() : std::to_string(d.dim_value()));
  return s;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

} // namespace

TEST_CASE("onnx: the MLP generator is a Gemm chain with the model header, names and shapes") {
  fg::Network<models::MlpGenerator, B> g;
  models::prepare(g, 1);
  const onnx::ModelProto m = fg::io::to_onnx(g);

  CHECK(m.ir_version() == onnx::IR_VERSION);
  CHECK(m.producer_name() == "forgery");
  CHECK(m.producer_version() == "0.1.0");
  REQUIRE(m.opset_import_size() == 1);
  CHECK(m.opset_import(0).domain() == "");
  CHECK(m.opset_import(0).version() == 17);
  CHECK(fg::io::onnx_opset == 17);

  REQUIRE(m.graph().input_size() == 1);
  REQUIRE(m.graph().output_size() == 1);
  CHECK(m.graph().input(0).name() == "input");
  CHECK(shape(m.graph().input(0)) == std::vector<std::string>{"N", "64"});
  CHECK(m.graph().input(0).type().tensor_type().elem_type() == onnx::TensorProto::FLOAT);
  CHECK(m.graph().output(0).name() == "output");
  CHECK(shape(m.graph().output(0)) == std::vector<std::string>{"N", "784"});

  CHECK(op_types(m) == std::vector<std::string>{"Gemm", "LeakyRelu", "Gemm", "LeakyRelu", "Gemm", "Tanh"});
  CHECK(m.graph().node(0).input(0) == "input");
  CHECK(m.graph().node(5).output(0) == "output");
  CHECK(attribute(node(m, "l1.LeakyReLU/LeakyRelu"), "alpha").f() == 0.2f);

  // Dense's column-major Out x In weight is the Gemm's B = W^T (In x Out) as it stands.
  const onnx::TensorProto& w = initializer(m, "l2.Dense/weight_t");
  CHECK(dims(w) == std::vector<std::int64_t>{256, 512});
  const std::vector<float> wv = values(w);
  CHECK(std::memcmp(wv.data(), g.params() + g.param_offsets[2], wv.size() * sizeof(float)) == 0);
  const std::vector<float> bv = values(initializer(m, "l2.Dense/bias"));
  REQUIRE(bv.size() == 512);
  CHECK(std::memcmp(bv.data(), g.params() + g.param_offsets[2] + 256 * 512, bv.size() * sizeof(float)) == 0);
}

TEST_CASE("onnx: convolution weights are transposed to ONNX's (out, in, kh, kw) and (in, out, kh, kw)") {
  fg::Network<models::DcganCritic, B> d;
  models::prepare(d, 2);
  const onnx::ModelProto md = fg::io::to_onnx(d);
  CHECK(op_types(md) == std::vector<std::string>{"Conv", "LeakyRelu", "Conv", "LeakyRelu", "Reshape", "Gemm"});
  const onnx::NodeProto& conv = node(md, "l2.Conv2d/Conv");
  CHECK(ints(attribute(conv, "kernel_shape")) == std::vector<std::int64_t>{4, 4});
  CHECK(ints(attribute(conv, "strides")) == std::vector<std::int64_t>{2, 2});
  CHECK(ints(attribute(conv, "pads")) == std::vector<std::int64_t>{1, 1, 1, 1});
  const onnx::TensorProto& cw = initializer(md, "l2.Conv2d/weight");
  REQUIRE(dims(cw) == std::vector<std::int64_t>{64, 32, 4, 4});
  const std::vector<float> cv = values(cw);
  const float* p = d.params() + d.param_offsets[2];
  int mismatches = 0;
  for (int o = 0; o < 64; ++o)
    for (int c = 0; c < 32; ++c)
      for (int k = 0; k < 16; ++k) mismatches += cv[std::size_t((o * 32 + c) * 16 + k)] != p[(c * 16 + k) * 64 + o];
  CHECK(mismatches == 0);
  CHECK(values(initializer(md, "l5.Dense/bias"))[0] == (d.params() + d.param_offsets[5])[64 * 7 * 7]);

  fg::Network<models::DcganGenerator, B> g;
  models::prepare(g, 3);
  const onnx::ModelProto mg = fg::io::to_onnx(g);
  CHECK(op_types(mg) == std::vector<std::string>{"Gemm", "Reshape", "BatchNormalization", "Relu", "ConvTranspose",
                                                 "BatchNormalization", "Relu", "ConvTranspose", "Tanh"});
  // The batch dimension is copied (0), the sample reshaped.
  CHECK(values<std::int64_t>(initializer(mg, "l1.Reshape/shape")) == std::vector<std::int64_t>{0, 64, 7, 7});
  const onnx::NodeProto& convt = node(mg, "l4.ConvTranspose2d/ConvTranspose");
  CHECK(ints(attribute(convt, "pads")) == std::vector<std::int64_t>{1, 1, 1, 1});
  CHECK(convt.input_size() == 2); // ConvTranspose2d<32, 4, 2, 1, false>: no bias
  const onnx::TensorProto& tw = initializer(mg, "l4.ConvTranspose2d/weight");
  REQUIRE(dims(tw) == std::vector<std::int64_t>{64, 32, 4, 4});
  const std::vector<float> tv = values(tw);
  const float* q = g.params() + g.param_offsets[4];
  mismatches = 0;
  for (int c = 0; c < 64; ++c)
    for (int o = 0; o < 32; ++o)
      for (int k = 0; k < 16; ++k) mismatches += tv[std::size_t((c * 32 + o) * 16 + k)] != q[(o * 16 + k) * 64 + c];
  CHECK(mismatches == 0);
}

TEST_CASE("onnx: BatchNorm is inference-mode BatchNormalization with the running statistics") {
  fg::Network<models::LayerZoo, B> net;
  models::prepare(net, 4);
  const onnx::ModelProto m = fg::io::to_onnx(net);
  const onnx::NodeProto& bn = node(m, "l5.BatchNorm/BatchNormalization");
  CHECK(attribute(bn, "epsilon").f() == 1e-3f);
  // ONNX's momentum weighs the old estimate: 1 - forgery's (PyTorch's) 0.3.
  CHECK(attribute(bn, "momentum").f() == 0.7f);
  const float* running = net.layer<5>().state();
  const std::vector<float> mean = values(initializer(m, "l5.BatchNorm/running_mean"));
  const std::vector<float> var = values(initializer(m, "l5.BatchNorm/running_var"));
  REQUIRE(mean.size() == 5);
  REQUIRE(var.size() == 5);
  for (std::size_t c = 0; c < 5; ++c) {
    CHECK(mean[c] == running[c]);
    CHECK(var[c] == running[5 + c]);
    CHECK(mean[c] != 0.0f); // prepare's train-mode passes moved the statistics
    CHECK(var[c] != 1.0f);
  }
  const std::vector<float> gamma = values(initializer(m, "l5.BatchNorm/scale"));
  CHECK(std::memcmp(gamma.data(), net.params() + net.param_offsets[5], 5 * sizeof(float)) == 0);
  // Dropout writes no node: the LeakyReLU after it reads BatchNorm's output.
  CHECK(node(m, "l7.LeakyReLU/LeakyRelu").input(0) == bn.output(0));
  CHECK(attribute(node(m, "l7.LeakyReLU/LeakyRelu"), "alpha").f() == 0.1f);
}

TEST_CASE("onnx: LayerNorm spreads gamma and beta over each channel's positions") {
  fg::Network<models::LayerZoo, B> net;
  models::prepare(net, 5);
  const onnx::ModelProto m = fg::io::to_onnx(net);
  const onnx::NodeProto& ln = node(m, "l2.LayerNorm/LayerNormalization");
  CHECK(attribute(ln, "axis").i() == 1);
  CHECK(attribute(ln, "epsilon").f() == 1e-5f);
  const onnx::TensorProto& scale = initializer(m, "l2.LayerNorm/scale");
  REQUIRE(dims(scale) == std::vector<std::int64_t>{4, 5, 5});
  const std::vector<float> s = values(scale), b = values(initializer(m, "l2.LayerNorm/bias"));
  const float* p = net.params() + net.param_offsets[2];
  for (std::size_t f = 0; f < 100; ++f) {
    CHECK(s[f] == p[f / 25]);
    CHECK(b[f] == p[4 + f / 25]);
  }
  CHECK(attribute(node(m, "l13.LayerNorm/LayerNormalization"), "epsilon").f() == 1e-4f);
  CHECK(dims(initializer(m, "l13.LayerNorm/scale")) == std::vector<std::int64_t>{12});
}

TEST_CASE("onnx: SpectralNorm exports the normalised weight that forward runs with") {
  using SN = fg::Sequential<fg::Input<6>, fg::SpectralNorm<fg::Dense<4>>>;
  using Plain = fg::Sequential<fg::Input<6>, fg::Dense<4>>;
  fg::Network<SN, B> sn;
  models::prepare(sn, 6);
  const onnx::ModelProto m = fg::io::to_onnx(sn);
  CHECK(op_types(m) == std::vector<std::string>{"Gemm"});
  const std::vector<float> w = values(initializer(m, "l0.SpectralNorm/weight_t"));
  const std::vector<float> b = values(initializer(m, "l0.SpectralNorm/bias"));
  REQUIRE(w.size() == 24);
  REQUIRE(b.size() == 4);
  CHECK(std::memcmp(w.data(), sn.params(), w.size() * sizeof(float)) != 0); // divided by sigma != 1

  // A plain Dense holding the exported values computes the same bits as the SpectralNorm.
  fg::Network<Plain, B> plain;
  std::memcpy(plain.params(), w.data(), w.size() * sizeof(float));
  std::memcpy(plain.params() + 24, b.data(), b.size() * sizeof(float));
  const auto x = models::inputs<fg::Network<SN, B>>(3, 6, false);
  const auto y_sn = sn.forward({x.data(), 6, 3});
  const auto y_plain = plain.forward({x.data(), 6, 3});
  CHECK(std::memcmp(y_sn.data(), y_plain.data(), 12 * sizeof(float)) == 0);
}

TEST_CASE("onnx: a user's layer exports through its own onnx_node specialisation") {
  fg::Network<models::LayerZoo, B> net;
  models::prepare(net, 10);
  const onnx::ModelProto m = fg::io::to_onnx(net);
  const onnx::NodeProto& mul = node(m, "l0.Double/Mul");
  CHECK(mul.input(0) == "input");
  const onnx::TensorProto& two = initializer(m, "l0.Double/two");
  CHECK(two.dims_size() == 0);
  CHECK(values(two) == std::vector<float>{2.0f});
  CHECK(node(m, "l1.SpectralNorm/Conv").input(0) == mul.output(0));
}

TEST_CASE("onnx: a network whose layers write no node gets an Identity output") {
  fg::Network<fg::Sequential<fg::Input<3>, fg::Dropout<>, fg::Identity>, B> net;
  net.initialize(1);
  const onnx::ModelProto m = fg::io::to_onnx(net);
  REQUIRE(m.graph().node_size() == 1);
  CHECK(m.graph().node(0).op_type() == "Identity");
  CHECK(m.graph().node(0).input(0) == "input");
  CHECK(m.graph().node(0).output(0) == "output");
  CHECK(m.graph().initializer_size() == 0);
}

TEST_CASE("onnx: options name the input, the output and the batch dimension; unusable ones are refused") {
  fg::Network<models::MlpCritic, B> d;
  models::prepare(d, 7);
  fg::io::OnnxOptions o;
  o.input_name = "image";
  o.output_name = "logit";
  o.batch_dim = "batch";
  o.graph_name = "critic";
  o.doc = "a critic";
  const onnx::ModelProto m = fg::io::to_onnx(d, o);
  CHECK(m.graph().name() == "critic");
  CHECK(m.doc_string() == "a critic");
  CHECK(m.graph().node(0).input(0) == "image");
  CHECK(shape(m.graph().input(0)) == std::vector<std::string>{"batch", "784"});
  CHECK(m.graph().output(0).name() == "logit");
  CHECK(m.graph().node(m.graph().node_size() - 1).output(0) == "logit");

  for (auto field :
       {&fg::io::OnnxOptions::input_name, &fg::io::OnnxOptions::output_name, &fg::io::OnnxOptions::batch_dim}) {
    fg::io::OnnxOptions bad;
    bad.*field = "";
    CHECK_THROWS_AS(fg::io::to_onnx(d, bad), fg::config_error);
  }
  fg::io::OnnxOptions same;
  same.output_name = same.input_name;
  const std::string msg = forgery::test::error_of([&] { (void)fg::io::to_onnx(d, same); });
  CHECK(msg.find("OnnxOptions.output_name") != std::string::npos);
}

TEST_CASE("onnx: export_onnx writes the checked model atomically; failures name the file and keep the old one") {
  Scratch scratch;
  fg::Network<models::DcganCritic, B> d;
  models::prepare(d, 8);
  const std::filesystem::path path = scratch.dir / "critic.onnx";
  fg::io::export_onnx(d, path);
  const std::string bytes = read_file(path);
  CHECK(bytes == fg::io::to_onnx(d).SerializeAsString());
  onnx::ModelProto back;
  REQUIRE(back.ParseFromString(bytes));
  CHECK_NOTHROW(onnx::checker::check_model(path.string()));
  // Nothing but the model is left in the directory (no temporary file).
  CHECK(std::distance(std::filesystem::directory_iterator(scratch.dir), std::filesystem::directory_iterator()) == 1);

  const std::string missing =
      forgery::test::io_error_of([&] { fg::io::export_onnx(d, scratch.dir / "no" / "such" / "dir" / "critic.onnx"); });
  CHECK(missing.find("no/such/dir") != std::string::npos);

  // A non-finite parameter is refused before anything is written.
  d.params()[d.param_offsets[5] + 3] = std::numeric_limits<float>::quiet_NaN();
  const std::string nan = forgery::test::error_of([&] { fg::io::export_onnx(d, path); });
  CHECK(nan.find("l5.Dense/weight_t") != std::string::npos);
  CHECK(nan.find("non-finite") != std::string::npos);
  CHECK(read_file(path) == bytes);
}

TEST_CASE("onnx: a double network exports DOUBLE tensors") {
  fg::Network<models::LayerZoo, fg::backend::Cpu<double>> net;
  models::prepare(net, 9);
  const onnx::ModelProto m = fg::io::to_onnx(net);
  CHECK(m.graph().input(0).type().tensor_type().elem_type() == onnx::TensorProto::DOUBLE);
  CHECK(m.graph().output(0).type().tensor_type().elem_type() == onnx::TensorProto::DOUBLE);
  const onnx::TensorProto& w = initializer(m, "l4.ConvTranspose2d/weight");
  CHECK(w.data_type() == onnx::TensorProto::DOUBLE);
  CHECK(w.raw_data().size() == 4 * 5 * 3 * 3 * sizeof(double));
  CHECK(dims(initializer(m, "l4.ConvTranspose2d/bias")) == std::vector<std::int64_t>{5});
}
