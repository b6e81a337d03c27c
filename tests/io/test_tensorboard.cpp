// TensorBoard event files: CRC-32C against its published check values, the protobuf
// encoder against bytes the protobuf library writes for the same messages, and event files
// from real training runs read back record by record (framing, both CRCs, every event).
// tests/tools/tensorboard_read.py reads such a file with TensorBoard's own reader (CTest
// tools.tensorboard).
#include "../support.hpp"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "forgery/io/tensorboard.hpp"
#include "forgery/train/presets.hpp"
#include "forgery/train/tensorboard.hpp"

namespace {

namespace fs = std::filesystem;
namespace pb = fg::io::detail::protobuf;

std::string bytes_of_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

std::string hex_of(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    out.push_back(digits[(static_cast<unsigned char>(c) >> 4) & 0xF]);
    out.push_back(digits[static_cast<unsigned char>(c) & 0xF]);
  }
  return out;
}

std::string varint(std::uint64_t v) {
  std::string s;
  pb::put_varint(s, v);
  return hex_of(s);
}

// --- A reader for what the test checks: TFRecord frames and protobuf fields ---------------

std::uint64_t little_endian(std::string_view b) {
  std::uint64_t v = 0;
  for (std::size_t i = b.size(); i-- > 0;) v = (v << 8) | static_cast<unsigned char>(b[i]);
  return v;
}

/// The payloads of an event file; fails the test at a bad length or CRC.
std::vector<std::string> read_records(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  std::size_t at = 0;
  while (at < file.size()) {
    REQUIRE(file.size() - at >= 12);
    const std::string_view header(file.data() + at, 8);
    REQUIRE(little_endian(std::string_view(file.data() + at + 8, 4)) == fg::io::masked_crc32c(header));
    const std::uint64_t n = little_endian(header);
    REQUIRE(file.size() - at - 12 >= n + 4);
    const std::string_view payload(file.data() + at + 12, n);
    REQUIRE(little_endian(std::string_view(file.data() + at + 12 + n, 4)) == fg::io::masked_crc32c(payload));
    records.emplace_back(payload);
    at += 16 + n;
  }
  return records;
}

/// A message's fields: number -> raw values (varints as numbers in `ints`, fixed values and
/// length-delimited bytes in `bytes`), in order.
struct Message {
  std::multimap<std::uint32_t, std::uint64_t> ints;
  std::multimap<std::uint32_t, std::string> bytes;
  [[nodiscard]] std::string one_bytes(std::uint32_t field) const {
    REQUIRE(bytes.count(field) == 1);
    return bytes.find(field)->second;
  }
  [[nodiscard]] std::uint64_t one_int(std::uint32_t field) const {
    REQUIRE(ints.count(field) == 1);
    return ints.find(field)->second;
  }
};

std::uint64_t read_varint(std::string_view s, std::size_t& at) {
  std::uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    REQUIRE(at < s.size());
    const auto b = static_cast<unsigned char>(s[at++]);
    v |= std::uint64_t{b & 0x7Fu} << shift;
    if ((b & 0x80) == 0) return v;
  }
}

Message parse(std::string_view s) {
  Message m;
  std::size_t at = 0;
  while (at < s.size()) {
    const std::uint64_t key = read_varint(s, at);
    const auto field = static_cast<std::uint32_t>(key >> 3);
    std::size_t n = 0;
    switch (key & 7) {
    case 0:
      m.ints.emplace(field, read_varint(s, at));
      continue;
    case 1:
      n = 8;
      break;
    case 5:
      n = 4;
      break;
    case 2:
      n = read_varint(s, at);
      break;
    default:
      FAIL("unexpected wire type " << (key & 7));
    }
    REQUIRE(s.size() - at >= n);
    m.bytes.emplace(field, std::string(s.substr(at, n)));
    at += n;
  }
  return m;
}

std::uint32_t big_endian32(const std::string& b, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

double as_double(const std::string& b) { return std::bit_cast<double>(little_endian(b)); }
float as_float(const std::string& b) { return std::bit_cast<float>(static_cast<std::uint32_t>(little_endian(b))); }

/// What an event file holds, decoded.
struct Events {
  std::string file_version;
  std::vector<long long> session_starts;
  std::map<std::string, std::map<long long, float>> scalars; // tag -> step -> value
  std::map<long long, Message> images;                       // step -> Summary.Image
  std::vector<long long> steps;                              // of the summaries, in order
};

Events read_events(const fs::path& path) {
  Events e;
  const auto records = read_records(path);
  REQUIRE(!records.empty());
  for (std::size_t i = 0; i < records.size(); ++i) {
    const Message event = parse(records[i]);
    CHECK(as_double(event.one_bytes(1)) > 1.6e9); // wall time: seconds since 1970, after 2020
    const long long step = event.ints.count(2) != 0 ? static_cast<long long>(event.one_int(2)) : 0;
    if (i == 0) {
      e.file_version = event.one_bytes(3);
      continue;
    }
    if (event.bytes.count(7) != 0) {
      CHECK(parse(event.one_bytes(7)).one_int(1) == 1); // SessionLog.START
      e.session_starts.push_back(step);
      continue;
    }
    e.steps.push_back(step);
    const Message summary = parse(event.one_bytes(5));
    for (const auto& [field, value_bytes] : summary.bytes) {
      REQUIRE(field == 1);
      const Message value = parse(value_bytes);
      const std::string tag = value.one_bytes(1);
      if (value.bytes.count(2) != 0) {
        CHECK(e.scalars[tag].count(step) == 0);
        e.scalars[tag][step] = as_float(value.one_bytes(2));
      } else {
        CHECK(tag == "samples");
        e.images[step] = parse(value.one_bytes(4));
      }
    }
  }
  return e;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().starts_with("events.out.tfevents.")) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

// --- Tiny GANs ------------------------------------------------------------------------

using ToyG = fg::Sequential<fg::Input<2>, fg::Dense<8>, fg::Tanh, fg::Dense<2>>;
using ToyD = fg::Sequential<fg::Input<2>, fg::Dense<8>, fg::Tanh, fg::Dense<1>>;
using Toy = fg::WganGpTrainer<ToyG, ToyD>;

// Generators of 4 x 4 grey images: one that says so in its output shape, one flat.
using ImageG = fg::Sequential<fg::Input<4>, fg::Dense<16>, fg::Tanh, fg::Reshape<1, 4, 4>>;
using FlatG = fg::Sequential<fg::Input<4>, fg::Dense<16>, fg::Tanh>;
using ImageD = fg::Sequential<fg::Input<16>, fg::Dense<8>, fg::LeakyReLU<>, fg::Dense<1>>;
using ImageGan = fg::Trainer<ImageG, ImageD, fg::loss::NonSaturating>;
using FlatGan = fg::Trainer<FlatG, ImageD, fg::loss::NonSaturating>;

/// Values in [-1, 1] for the image GANs: every sample a copy of one 4 x 4 pattern.
struct Pattern {
  template <class S>
  void sample(fg::RandomStream&, fg::BatchView<S> out) const {
    for (fg::index_t j = 0; j < out.batch(); ++j)
      for (fg::index_t i = 0; i < 16; ++i) out.sample(j)[i] = S((i % 5) / 2.0 - 1.0);
  }
};

template <class T>
typename T::Config small_config() {
  typename T::Config c;
  c.batch = 8;
  c.seed = 7;
  return c;
}

} // namespace

TEST_CASE("crc32c gives the published check values") {
  CHECK(fg::io::crc32c("123456789") == 0xE3069283u);
  CHECK(fg::io::crc32c("") == 0u);
  // RFC 3720 (iSCSI), B.4: 32 bytes of zeros, of ones, incrementing, decrementing.
  std::string zeros(32, '\0'), ones(32, '\xff'), up(32, '\0'), down(32, '\0');
  for (int i = 0; i < 32; ++i) {
    up[static_cast<std::size_t>(i)] = static_cast<char>(i);
    down[static_cast<std::size_t>(i)] = static_cast<char>(31 - i);
  }
  CHECK(fg::io::crc32c(zeros) == 0x8A9136AAu);
  CHECK(fg::io::crc32c(ones) == 0x62A8AB43u);
  CHECK(fg::io::crc32c(up) == 0x46DD794Eu);
  CHECK(fg::io::crc32c(down) == 0x113FDB5Cu);
  // ... and an iSCSI read command PDU.
  CHECK(fg::io::crc32c(bytes_of_hex("01c000000000000000000000000000001400000000000400000000140000001828"
                                    "000000000000000200000000000000")) == 0xD9963A56u);
  // A CRC continues over a split.
  CHECK(fg::io::crc32c("56789", fg::io::crc32c("1234")) == 0xE3069283u);
  // TFRecord's mask: rotate right by 15, add 0xa282ead8.
  CHECK(fg::io::masked_crc32c("") == 0xA282EAD8u);
  CHECK(fg::io::masked_crc32c("123456789") == 0xC78AB0E5u);
}

TEST_CASE("the protobuf encoder writes varints and fields as the wire format defines them") {
  CHECK(varint(0) == "00");
  CHECK(varint(1) == "01");
  CHECK(varint(127) == "7f");
  CHECK(varint(128) == "8001");
  CHECK(varint(300) == "ac02");
  CHECK(varint(16384) == "808001");
  CHECK(varint(0xFFFFFFFFu) == "ffffffff0f");
  CHECK(varint(~std::uint64_t{0}) == "ffffffffffffffffff01");

  std::string s;
  pb::put_int(s, 2, -1); // a negative int64: ten bytes of two's complement
  CHECK(hex_of(s) == "10ffffffffffffffffff01");
  s.clear();
  pb::put_double(s, 1, 1.5);
  CHECK(hex_of(s) == "09000000000000f83f");
  s.clear();
  pb::put_float(s, 2, 0.25f);
  CHECK(hex_of(s) == "150000803e");
  s.clear();
  pb::put_bytes(s, 1, "x");
  CHECK(hex_of(s) == "0a0178");
  s.clear();
  pb::put_bytes(s, 16, ""); // a field number past 15 takes a two-byte key
  CHECK(hex_of(s) == "820100");
}

TEST_CASE("events are the bytes the protobuf library writes for the same messages") {
  // The expected bytes are what tensorboard.compat.proto's event_pb2 (the protobuf library)
  // serialises for the same Event messages.
  using namespace fg::io::detail;
  CHECK(hex_of(event(1.5, 0, event_file_version, "brain.Event:2")) ==
        "09000000000000f83f1a0d627261696e2e4576656e743a32");
  CHECK(hex_of(event(1700000000.25, 300, event_summary,
                     fg::io::Summary().scalar("loss/d", 0.25).scalar("x", 0).bytes())) ==
        "0900001040fc54d94110ac022a190a0d0a066c6f73732f64150000803e0a080a01781500000000");
  CHECK(hex_of(event(2.0, -1, event_session_log, bytes_of_hex("0801"))) ==
        "09000000000000004010ffffffffffffffffff013a020801");
  const fg::io::EncodedPng png{std::string("\x89PNG", 4), 3, 2, 1};
  CHECK(hex_of(event(0.5, 7, event_summary, fg::io::Summary().image("samples", png).bytes())) ==
        "09000000000000e03f10072a190a170a0773616d706c6573220c080210031801220489504e47");
  // And a whole TFRecord around the first, as TensorBoard's writer frames it.
  CHECK(hex_of(fg::io::tfrecord(event(1.5, 0, event_file_version, "brain.Event:2"))) ==
        "1800000000000000a37f4b2209000000000000f83f1a0d627261696e2e4576656e743a322a28646c");
}

TEST_CASE("EventWriter: each record is in the file as soon as it is written") {
  fg::test::Scratch s;
  fg::io::EventWriter w(s.dir / "logs" / "run");
  const std::string name = w.path().filename().string();
  CHECK(name.starts_with("events.out.tfevents."));
  CHECK(w.path().parent_path() == s.dir / "logs" / "run");
  w.write_scalar(3, "a", 1.25);
  // No close and no flush: a killed process leaves this much behind.
  const Events e = read_events(w.path());
  CHECK(e.file_version == "brain.Event:2");
  CHECK(e.scalars.at("a").at(3) == 1.25f);
  w.write(4, fg::io::Summary()); // an empty summary writes nothing
  CHECK(read_records(w.path()).size() == 2);
  w.close();
  CHECK_THROWS_AS(w.write_scalar(5, "a", 1), fg::io_error);

  // Two writers in one directory never share a file, and their names sort by creation.
  fg::io::EventWriter first(s.dir), second(s.dir);
  CHECK(first.path() != second.path());
  CHECK(first.path().filename().string() < second.path().filename().string());
}

TEST_CASE("EventWriter and the callback name a log directory they cannot use") {
  fg::test::Scratch s;
  std::ofstream(s.dir / "file") << "x";
  const fs::path bad = s.dir / "file" / "logs";
  CHECK(fg::test::io_error_of([&] { fg::io::EventWriter w(bad); }).find(bad.string()) != std::string::npos);
  CHECK(fg::test::io_error_of([&] { fg::callbacks::TensorBoard tb(bad); }).find(bad.string()) != std::string::npos);
}

TEST_CASE("TensorBoard logs losses, gradient norms and penalties of a training run") {
  fg::test::Scratch s;
  Toy t([] {
    auto c = fg::wgan_gp_config<Toy>();
    c.batch = 8;
    return c;
  }());
  fg::data::Ring ring;
  fg::callbacks::TensorBoard tb(s.dir, {.every = 2});
  t.fit(ring, 5, tb);
  const auto files = event_files(s.dir);
  REQUIRE(files.size() == 1);
  CHECK(tb.file() == files[0]);
  const Events e = read_events(files[0]);
  CHECK(e.file_version == "brain.Event:2");
  CHECK(e.session_starts == std::vector<long long>{1});
  CHECK(e.steps == std::vector<long long>{2, 4, 5}); // every 2, and the last step
  std::set<std::string> tags;
  for (const auto& [tag, values] : e.scalars) tags.insert(tag);
  CHECK(tags == std::set<std::string>{"loss/d", "loss/g", "grad_norm/d", "grad_norm/g", "part/GradientPenalty"});
  const auto& last = t.last_stats();
  CHECK(e.scalars.at("loss/d").at(5) == static_cast<float>(last.d_loss));
  CHECK(e.scalars.at("loss/g").at(5) == static_cast<float>(last.g_loss));
  CHECK(e.scalars.at("grad_norm/d").at(5) == static_cast<float>(last.d_grad_norm));
  CHECK(e.scalars.at("grad_norm/g").at(5) == static_cast<float>(last.g_grad_norm));
  CHECK(e.scalars.at("part/GradientPenalty").at(5) == static_cast<float>(last.part_values[0]));
  CHECK(e.images.empty());

  // Training on logs to a new file, whose session start is the next step.
  t.fit(ring, 2, tb);
  const auto more = event_files(s.dir);
  REQUIRE(more.size() == 2);
  CHECK(more[0] == files[0]);
  const Events e2 = read_events(more[1]);
  CHECK(e2.session_starts == std::vector<long long>{6});
  CHECK(e2.steps == std::vector<long long>{6, 7});
  // User scalars go to the open file only.
  CHECK_THROWS_AS(tb.log_scalar(7, "metric/fid", 1.0), fg::io_error);
}

TEST_CASE("TensorBoard logs a sample grid from fixed noise, without changing the training") {
  fg::test::Scratch s;
  Pattern data;
  ImageGan logged(small_config<ImageGan>()), plain(small_config<ImageGan>());
  // 5 samples in 3 columns: a 2-row grid of 4 x 4 images scaled 2x with 1 pixel padding.
  fg::callbacks::TensorBoard tb(
      s.dir,
      {.every = 1, .image_every = 2, .images = 5, .columns = 3, .grid = {.padding = 1, .pad_value = 0, .scale = 2}});
  logged.fit(data, 4, tb);
  plain.fit(data, 4);
  // Generating the grid in the middle of the run leaves its bits alone.
  const auto& a = logged.generator().param_buffer();
  const auto& b = plain.generator().param_buffer();
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<std::size_t>(a.size())) == 0);

  const Events e = read_events(event_files(s.dir).at(0));
  CHECK(e.steps == std::vector<long long>{1, 2, 2, 3, 4, 4});
  REQUIRE(e.images.size() == 2);
  for (const auto& [step, image] : e.images) {
    CHECK((step == 2 || step == 4));
    CHECK(image.one_int(1) == 2 * (8 + 1) + 1); // height
    CHECK(image.one_int(2) == 3 * (8 + 1) + 1); // width
    CHECK(image.one_int(3) == 1);               // grey
    const std::string png = image.one_bytes(4);
    REQUIRE(png.size() > 24);
    CHECK(png.substr(0, 8) == "\x89PNG\r\n\x1a\n");
    CHECK(big_endian32(png, 16) == 28); // IHDR: width, then height
    CHECK(big_endian32(png, 20) == 19);
  }
  // The grid is the one encode_png_grid makes from the same noise.
  std::vector<float> samples(16 * 5);
  fg::RandomStream rng{fg::callbacks::TensorBoardOptions{}.image_seed, 0, 0};
  logged.generate(rng, fg::BatchView<float>(samples.data(), 16, 5));
  const auto expected =
      fg::io::encode_png_grid(fg::ConstBatchView<float>(samples.data(), 16, 5), 1, 4, 4, 3, {1, 0, 2});
  CHECK(e.images.at(4).one_bytes(4) == expected.bytes);
}

TEST_CASE("TensorBoard needs an image shape for a flat generator output") {
  fg::test::Scratch s;
  Pattern data;
  FlatGan t(small_config<FlatGan>());
  const std::string unset =
      fg::test::error_of([&] { t.fit(data, 1, fg::callbacks::TensorBoard(s.dir, {.image_every = 1})); });
  CHECK(unset.find("TensorBoardOptions.image_shape") != std::string::npos);
  CHECK(unset.find("16 features") != std::string::npos);
  CHECK_THROWS_AS(t.fit(data, 1, fg::callbacks::TensorBoard(s.dir, {.image_every = 1, .image_shape = {1, 4, 5}})),
                  fg::config_error);
  CHECK_THROWS_AS(t.fit(data, 1, fg::callbacks::TensorBoard(s.dir, {.image_every = 1, .image_shape = {2, 2, 4}})),
                  fg::config_error);
  t.fit(data, 2, fg::callbacks::TensorBoard(s.dir, {.image_every = 1, .images = 4, .image_shape = {1, 4, 4}}));
  const auto files = event_files(s.dir);
  REQUIRE(files.size() == 1); // the refused fits wrote no file
  const Events e = read_events(files[0]);
  REQUIRE(e.images.size() == 2);
  CHECK(e.images.at(2).one_int(2) == 2 * (4 + 2) + 2); // 2 columns of 4 pixels, padding 2

  CHECK_THROWS_AS(fg::callbacks::TensorBoard(s.dir, {.every = 0}), fg::config_error);
  CHECK_THROWS_AS(fg::callbacks::TensorBoard(s.dir, {.image_every = -1}), fg::config_error);
  CHECK_THROWS_AS(fg::callbacks::TensorBoard(s.dir, {.images = 0}), fg::config_error);
}

TEST_CASE("a run resumed from a checkpoint continues the steps in a new file") {
  fg::test::Scratch s;
  fg::data::Ring ring;
  auto cfg = fg::wgan_gp_config<Toy>();
  cfg.batch = 8;
  Toy first(cfg);
  fg::callbacks::TensorBoard tb(s.dir / "logs");
  first.fit(ring, 3, tb);
  first.save_checkpoint(s.dir / "step3.ckpt");
  first.fit(ring, 2, tb); // steps 4 and 5, then the run "stops"

  Toy resumed(cfg);
  resumed.load_checkpoint(s.dir / "step3.ckpt");
  fg::callbacks::TensorBoard tb2(s.dir / "logs");
  REQUIRE(resumed.steps_done() == 3);
  resumed.fit(ring, 3, tb2);
  const auto files = event_files(s.dir / "logs");
  REQUIRE(files.size() == 3);
  const Events last = read_events(files[2]);
  // TensorBoard drops what earlier files hold from step 4 on, and takes steps 4 to 6 from here.
  CHECK(last.session_starts == std::vector<long long>{4});
  CHECK(last.steps == std::vector<long long>{4, 5, 6});
  // Resuming is bitwise, so the steps both runs logged have the same values.
  const Events second = read_events(files[1]);
  CHECK(second.scalars.at("loss/d") ==
        std::map<long long, float>{{4, last.scalars.at("loss/d").at(4)}, {5, last.scalars.at("loss/d").at(5)}});
}

TEST_CASE("a step that comes again (a rollback) starts a new session at that step") {
  fg::test::Scratch s;
  fg::data::Ring ring;
  auto cfg = fg::wgan_gp_config<Toy>();
  cfg.batch = 8;
  Toy t(cfg);
  fg::callbacks::TensorBoard tb(s.dir);
  t.fit(ring, 3, tb);
  // What fit() hands the callback when Checkpoints rolls back from step 3 to step 1.
  tb.on_begin(t, 5);
  for (const long long step : {4, 5, 2, 3}) {
    fg::StepStats stats = t.last_stats();
    stats.step = step;
    tb.on_step(t, stats);
  }
  tb.on_end(t, t.last_stats());
  const Events e = read_events(event_files(s.dir).at(1));
  CHECK(e.session_starts == std::vector<long long>{4, 2});
  CHECK(e.steps == std::vector<long long>{4, 5, 2, 3});
}
