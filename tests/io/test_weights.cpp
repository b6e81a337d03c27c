// Weights as .npy: a save/load round trip restores every bit; numpy-side readers see a 1-D
// array; another size, another dtype, a truncated, foreign or oversized file is an io_error
// naming the file, expected and found, and leaves the network unchanged.
#include "../support.hpp"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <fcntl.h>
#include <unistd.h>

#include <xtensor/xnpy.hpp>

#include "forgery/io/weights.hpp"

namespace {

namespace fs = std::filesystem;

using fg::test::Scratch;

template <class S>
using Net = fg::Network<fg::Sequential<fg::Input<3>, fg::Dense<4>, fg::Tanh, fg::Dense<2>>, fg::backend::Cpu<S>>;
template <class S>
using Wider = fg::Network<fg::Sequential<fg::Input<3>, fg::Dense<5>, fg::Tanh, fg::Dense<2>>, fg::backend::Cpu<S>>;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

template <class N>
bool same_bits(const N& a, const N& b) {
  return std::memcmp(a.params(), b.params(), sizeof(typename N::scalar) * N::param_count) == 0;
}

template <class N, class F>
std::string io_error_of(const N& net, F&& f) {
  const N before = net;
  try {
    f();
  } catch (const fg::io_error& e) {
    CHECK(same_bits(net, before)); // a failed load changes nothing
    return e.what();
  }
  FAIL_CHECK("expected an io_error");
  return {};
}

TEST_CASE_TEMPLATE("save_weights_npy and load_weights_npy round-trip every bit", S, FORGERY_SCALARS) {
  Scratch s;
  Net<S> a, b;
  a.initialize(1);
  a.params()[0] = S(1) / S(3); // a value with every mantissa bit in use
  b.initialize(2);
  REQUIRE_FALSE(same_bits(a, b));
  const auto path = s.dir / "g.npy";
  fg::io::save_weights_npy(path, a);
  fg::io::load_weights_npy(path, b);
  CHECK(same_bits(a, b));
  // numpy (here xtensor) sees a 1-D array of param_count values.
  const auto arr = xt::load_npy<S>(path.string());
  REQUIRE(arr.dimension() == 1);
  CHECK(arr.shape()[0] == static_cast<std::size_t>(Net<S>::param_count));
  CHECK(arr(5) == a.params()[5]);
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(s.dir)) ++entries;
  CHECK(entries == 1);

  // One file per layer with parameters: Dense (0) and Dense (2), not Tanh (1).
  const auto layers = fg::io::save_layer_weights_npy(s.dir, a, "g_layer");
  REQUIRE(layers.size() == 2);
  CHECK(layers[1] == s.dir / "g_layer2.npy");
  const auto last = xt::load_npy<S>(layers[1].string());
  REQUIRE(last.shape()[0] == static_cast<std::size_t>(Net<S>::param_offsets[3] - Net<S>::param_offsets[2]));
  CHECK(last(0) == a.params()[Net<S>::param_offsets[2]]);
}

TEST_CASE("load_weights_npy rejects files that do not fit the network") {
  Scratch s;
  Net<float> net;
  net.initialize(3);
  const std::string count = std::to_string(Net<float>::param_count);

  Wider<float> wider;
  wider.initialize(4);
  fg::io::save_weights_npy(s.dir / "wider.npy", wider);
  std::string msg = io_error_of(net, [&] { fg::io::load_weights_npy(s.dir / "wider.npy", net); });
  CHECK(has(msg, (s.dir / "wider.npy").string()));
  CHECK(has(msg, "shape (" + std::to_string(Wider<float>::param_count) + ",), expected (" + count + ",)"));

  Net<double> twin;
  twin.initialize(3);
  fg::io::save_weights_npy(s.dir / "double.npy", twin);
  msg = io_error_of(net, [&] { fg::io::load_weights_npy(s.dir / "double.npy", net); });
  CHECK(has(msg, (s.dir / "double.npy").string()));
  CHECK(has(msg, "dtype '<f8', expected '<f4'"));

  // The right header with some values missing, then a foreign file, then no file.
  fg::io::save_weights_npy(s.dir / "ok.npy", net);
  const auto size = fs::file_size(s.dir / "ok.npy");
  fs::resize_file(s.dir / "ok.npy", size - 8);
  msg = io_error_of(net, [&] { fg::io::load_weights_npy(s.dir / "ok.npy", net); });
  CHECK(has(msg, "truncated: the header promises " + std::to_string(4 * Net<float>::param_count) + " data bytes"));
  std::ofstream(s.dir / "text.npy") << "step,d_loss\n1,0.5\n";
  msg = io_error_of(net, [&] { fg::io::load_weights_npy(s.dir / "text.npy", net); });
  CHECK(has(msg, (s.dir / "text.npy").string()));
  CHECK(has(msg, "not a .npy file"));
  msg = io_error_of(net, [&] { fg::io::load_weights_npy(s.dir / "none.npy", net); });
  CHECK(has(msg, (s.dir / "none.npy").string()));
}

TEST_CASE("load_weights_npy refuses a file larger than any valid one before reading it") {
  Scratch s;
  Net<float> net;
  net.initialize(5);
  const auto path = s.dir / "huge.npy";
  fg::io::save_weights_npy(path, net);
  // A valid header, then 64 GiB of holes: sparse, so it costs no disk, and reading it into
  // memory would fail or take minutes.
  const std::uint64_t huge = std::uint64_t{1} << 36;
  {
    const int fd = ::open(path.c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    const int rc = ::ftruncate(fd, static_cast<off_t>(huge));
    ::close(fd);
    REQUIRE(rc == 0);
  }
  const std::uint64_t largest = 12 + 65535 + 4 * std::uint64_t{Net<float>::param_count};
  std::string msg = io_error_of(net, [&] { fg::io::load_weights_npy(path, net); });
  CHECK(has(msg, path.string()));
  CHECK(has(msg, "the file is " + std::to_string(huge) + " bytes, expected at most " + std::to_string(largest)));

  // One byte above the largest valid size is refused the same way; the size of a valid file
  // with the longest header is not (it fails on its content instead).
  fs::resize_file(path, largest + 1);
  msg = io_error_of(net, [&] { fg::io::load_weights_npy(path, net); });
  CHECK(has(msg, "the file is " + std::to_string(largest + 1) + " bytes"));
  fs::resize_file(path, largest);
  msg = io_error_of(net, [&] { fg::io::load_weights_npy(path, net); });
  CHECK_FALSE(has(msg, "the file is"));
  CHECK(has(msg, "trailing bytes"));
}

} // namespace
