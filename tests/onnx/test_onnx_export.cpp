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

TEST_CASE("onnx: a nested Sequential writes its children under its name, as the flat network does") {
  using Nested = fg::Sequential<fg::Input<2, 6, 6>, fg::Conv2d<4, 3, 1, 1>,
                                fg::Sequential<fg::ReLU, fg::Conv2d<3, 3, 1, 1>, fg::Sequential<fg::Tanh, fg::Flatten>>,
                                fg::Dense<5>>;
  using Flat = fg::Sequential<fg::Input<2, 6, 6>, fg::Conv2d<4, 3, 1, 1>, fg::ReLU, fg::Conv2d<3, 3, 1, 1>, fg::Tanh,
                              fg::Flatten, fg::Dense<5>>;
  fg::Network<Nested, B> nested;
  models::prepare(nested, 20);
  const onnx::ModelProto m = fg::io::to_onnx(nested);
  CHECK(op_types(m) == std::vector<std::string>{"Conv", "Relu", "Conv", "Tanh", "Reshape", "Gemm"});
  CHECK(node(m, "l1.Sequential/l0.ReLU/Relu").input(0) == "l0.Conv2d/Conv");
  CHECK(node(m, "l1.Sequential/l1.Conv2d/Conv").input(0) == "l1.Sequential/l0.ReLU/Relu");
  CHECK(node(m, "l1.Sequential/l2.Sequential/l0.Tanh/Tanh").input(0) == "l1.Sequential/l1.Conv2d/Conv");
  CHECK(node(m, "l1.Sequential/l2.Sequential/l1.Reshape/Reshape").input(0) ==
        "l1.Sequential/l2.Sequential/l0.Tanh/Tanh");
  CHECK(node(m, "l2.Dense/Gemm").input(0) == "l1.Sequential/l2.Sequential/l1.Reshape/Reshape");
  CHECK(m.graph().node(5).output(0) == "output");

  // The block's child reads its slice inside the block's slice.
  using Block = std::remove_cvref_t<decltype(nested.layer<1>())>;
  const float* p = nested.params() + nested.param_offsets[1] + Block::param_offsets[1];
  const std::vector<float> w = values(initializer(m, "l1.Sequential/l1.Conv2d/weight"));
  REQUIRE(w.size() == 3 * 4 * 9);
  int mismatches = 0;
  for (int o = 0; o < 3; ++o)
    for (int c = 0; c < 4 * 9; ++c) mismatches += w[std::size_t(o * 36 + c)] != p[c * 3 + o];
  CHECK(mismatches == 0);

  // The flat network with the same parameters (the same layout, depth first) writes the same
  // node types in order and the same initializer values.
  fg::Network<Flat, B> flat;
  static_assert(fg::Network<Flat, B>::param_count == fg::Network<Nested, B>::param_count);
  std::memcpy(flat.params(), nested.params(), sizeof(float) * std::size_t(flat.param_count));
  const onnx::ModelProto mf = fg::io::to_onnx(flat);
  CHECK(op_types(mf) == op_types(m));
  REQUIRE(mf.graph().initializer_size() == m.graph().initializer_size());
  for (int i = 0; i < m.graph().initializer_size(); ++i) {
    CHECK(dims(mf.graph().initializer(i)) == dims(m.graph().initializer(i)));
    CHECK(mf.graph().initializer(i).raw_data() == m.graph().initializer(i).raw_data());
  }
  CHECK(node(mf, "l2.Conv2d/Conv").input(0) == "l1.ReLU/Relu"); // flat names as before
}

TEST_CASE("onnx: a Residual adds its main branch to the input or to its shortcut") {
  // Identity shortcut: Add(main, the block's input).
  using Id = fg::Sequential<fg::Input<3, 4, 4>, fg::Residual<fg::Sequential<fg::Conv2d<3, 3, 1, 1>, fg::ReLU>>>;
  fg::Network<Id, B> id;
  models::prepare(id, 21);
  const onnx::ModelProto mi = fg::io::to_onnx(id);
  CHECK(op_types(mi) == std::vector<std::string>{"Conv", "Relu", "Add"});
  CHECK(node(mi, "l0.Residual/main/l0.Conv2d/Conv").input(0) == "input");
  const onnx::NodeProto& add = mi.graph().node(2);
  CHECK(add.name() == "l0.Residual/Add");
  REQUIRE(add.input_size() == 2);
  CHECK(add.input(0) == "l0.Residual/main/l1.ReLU/Relu");
  CHECK(add.input(1) == "input");
  CHECK(add.output(0) == "output");

  // Learned shortcuts, of a single layer beside a Sequential and beside a single layer.
  using Learned = fg::Sequential<fg::Input<3, 4, 4>,
                                 fg::Residual<fg::Sequential<fg::Conv2d<5, 3, 1, 1>, fg::ReLU>, fg::Conv2d<5, 1, 1, 0>>,
                                 fg::Residual<fg::Conv2d<5, 3, 1, 1>, fg::Sequential<fg::Identity>>, fg::Flatten>;
  fg::Network<Learned, B> net;
  models::prepare(net, 22);
  const onnx::ModelProto m = fg::io::to_onnx(net);
  CHECK(op_types(m) == std::vector<std::string>{"Conv", "Relu", "Conv", "Add", "Conv", "Add", "Reshape"});
  const onnx::NodeProto& shortcut = node(m, "l0.Residual/shortcut.Conv2d/Conv");
  CHECK(shortcut.input(0) == "input");
  const onnx::NodeProto& sum = node(m, "l0.Residual/Add");
  CHECK(sum.input(0) == "l0.Residual/main/l1.ReLU/Relu");
  CHECK(sum.input(1) == shortcut.output(0));
  // The shortcut's weight is the slice after the main branch's.
  using Block = std::remove_cvref_t<decltype(net.layer<0>())>;
  const float* p = net.params() + net.param_offsets[0] + Block::param_offsets[1];
  const std::vector<float> w = values(initializer(m, "l0.Residual/shortcut.Conv2d/weight"));
  REQUIRE(w.size() == 15);
  for (int o = 0; o < 5; ++o)
    for (int c = 0; c < 3; ++c) CHECK(w[std::size_t(o * 3 + c)] == p[c * 5 + o]);
  CHECK(values(initializer(m, "l0.Residual/shortcut.Conv2d/bias"))[0] == p[15]);
  // A shortcut that writes no node (Sequential<Identity>) adds the block's input.
  const onnx::NodeProto& second = node(m, "l1.Residual/Add");
  CHECK(node(m, "l1.Residual/main.Conv2d/Conv").input(0) == sum.output(0));
  CHECK(second.input(0) == "l1.Residual/main.Conv2d/Conv");
  CHECK(second.input(1) == sum.output(0));
  CHECK(node(m, "l2.Reshape/Reshape").input(0) == second.output(0));
}

TEST_CASE("onnx: Upsample is a nearest Resize reading floor(y / F), AvgPool2d an AveragePool") {
  using Net = fg::Sequential<fg::Input<2, 4, 4>, fg::Upsample<3>, fg::AvgPool2d<2>>;
  fg::Network<Net, fg::backend::Cpu<double>> net;
  net.initialize(1);
  const onnx::ModelProto m = fg::io::to_onnx(net);
  CHECK(op_types(m) == std::vector<std::string>{"Resize", "AveragePool"});
  const onnx::NodeProto& resize = node(m, "l0.Upsample/Resize");
  REQUIRE(resize.input_size() == 3);
  CHECK(resize.input(0) == "input");
  CHECK(resize.input(1).empty()); // no roi
  CHECK(attribute(resize, "mode").s() == "nearest");
  CHECK(attribute(resize, "coordinate_transformation_mode").s() == "asymmetric");
  CHECK(attribute(resize, "nearest_mode").s() == "floor");
  // Resize's scales are FLOAT whatever the network's type.
  const onnx::TensorProto& scales = initializer(m, resize.input(2));
  CHECK(scales.data_type() == onnx::TensorProto::FLOAT);
  CHECK(values(scales) == std::vector<float>{1.0f, 1.0f, 3.0f, 3.0f});
  const onnx::NodeProto& pool = node(m, "l1.AvgPool2d/AveragePool");
  CHECK(pool.input(0) == resize.output(0));
  CHECK(ints(attribute(pool, "kernel_shape")) == std::vector<std::int64_t>{2, 2});
  CHECK(ints(attribute(pool, "strides")) == std::vector<std::int64_t>{2, 2});
  CHECK(shape(m.graph().output(0)) == std::vector<std::string>{"N", "2", "6", "6"});
}

TEST_CASE("onnx: SelfAttention exports the projections forward runs with, spectral ones divided by sigma") {
  fg::Network<models::ResnetCritic, B> net;
  models::prepare(net, 23);
  constexpr std::size_t at = models::resnet_critic_attention;
  models::set_attention_gamma<at>(net, 0.5f);
  const auto x = models::inputs<fg::Network<models::ResnetCritic, B>>(2, 23, true);
  net.forward({x.data(), net.input_size, 2}); // sets each projection's sigma
  const onnx::ModelProto m = fg::io::to_onnx(net);

  std::vector<std::string> ops;
  for (const onnx::NodeProto& n : m.graph().node())
    if (n.name().rfind("l1.SelfAttention/", 0) == 0) ops.push_back(n.op_type());
  CHECK(ops == std::vector<std::string>{"Reshape", "Transpose", "MatMul", "MatMul", "MatMul", "Transpose", "MatMul",
                                        "Softmax", "MatMul", "MatMul", "Transpose", "Reshape", "Mul", "Add"});
  CHECK(attribute(node(m, "l1.SelfAttention/Softmax"), "axis").i() == -1);
  const onnx::NodeProto& add = node(m, "l1.SelfAttention/Add");
  CHECK(add.input(0) == node(m, "l1.SelfAttention/Reshape").input(0)); // the residual reads the layer's input
  CHECK(values(initializer(m, "l1.SelfAttention/gamma")) == std::vector<float>{0.5f});

  // C = 16: queries and keys of 2 channels, values of 8. Each W^T is in x out row-major,
  // the stored in x out column-major matrix times 1 / sigma.
  const auto& layer = net.layer<at>();
  using L = std::remove_cvref_t<decltype(layer)>;
  const float* p = net.params() + net.param_offsets[at];
  const char* names[4] = {"l1.SelfAttention/query_weight_t", "l1.SelfAttention/key_weight_t",
                          "l1.SelfAttention/value_weight_t", "l1.SelfAttention/output_weight_t"};
  const std::vector<std::vector<std::int64_t>> expected_dims{{16, 2}, {16, 2}, {16, 8}, {8, 16}};
  for (int b = 0; b < 4; ++b) {
    const auto& pr = L::projections[b];
    const onnx::TensorProto& t = initializer(m, names[b]);
    CHECK(dims(t) == expected_dims[std::size_t(b)]);
    const std::vector<float> w = values(t);
    const float inv_sigma = 1.0f / layer.sigma(b);
    CHECK(layer.sigma(b) != 1.0f);
    int mismatches = 0;
    for (fg::index_t i = 0; i < pr.in; ++i)
      for (fg::index_t o = 0; o < pr.out; ++o)
        mismatches += w[std::size_t(i * pr.out + o)] != p[pr.offset + o * pr.in + i] * inv_sigma;
    CHECK(mismatches == 0);
  }
}
