// Checkpoints: the container format's checks, bitwise resume of the whole training state,
// all-or-nothing loading with errors that name the file, record, types or settings, the
// Checkpoints callback (every N, keep K, signals, end), the NaN/Inf guard with stop and
// rollback, and a diverged state never reaching a checkpoint file.
#include "../support.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "forgery/forgery.hpp"

#include "resume_model.hpp"

namespace {
using fg::index_t;
using forgery::test::ResumeTrainer;
using forgery::test::Scratch;

std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <class T>
std::string state_of(const T& t) {
  return t.checkpoint().bytes();
}

using fg::test::error_of;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The bytes of `good` with record `victim` replaced by what change(writer, record) adds.
template <class Change>
std::string rebuild_with(const fg::io::CheckpointFile& good, const std::string& victim, Change change) {
  fg::io::CheckpointWriter w;
  for (const auto& r : good.records()) {
    if (r.name == victim) {
      change(w, r);
      continue;
    }
    switch (r.type) {
    case fg::io::RecordType::text:
      w.add_text(r.name, good.text(r.name));
      break;
    case fg::io::RecordType::f32: {
      const auto v = good.array<float>(r.name);
      w.add(r.name, v.data(), v.size());
      break;
    }
    case fg::io::RecordType::f64: {
      const auto v = good.array<double>(r.name);
      w.add(r.name, v.data(), v.size());
      break;
    }
    case fg::io::RecordType::i64: {
      const auto v = good.array<std::int64_t>(r.name);
      w.add(r.name, v.data(), v.size());
      break;
    }
    case fg::io::RecordType::u64: {
      const auto v = good.array<std::uint64_t>(r.name);
      w.add(r.name, v.data(), v.size());
      break;
    }
    }
  }
  return w.bytes();
}

// `good` with value `at` of the f32 record `victim` set to `value`.
std::string poisoned(const fg::io::CheckpointFile& good, const std::string& victim,
                     float value = std::numeric_limits<float>::quiet_NaN(), std::size_t at = 0) {
  return rebuild_with(good, victim, [&](fg::io::CheckpointWriter& w, const fg::io::RecordInfo& r) {
    auto v = good.array<float>(r.name);
    v.at(at) = value;
    w.add(r.name, v.data(), v.size());
  });
}

std::string read_log(std::FILE* log) {
  std::rewind(log);
  std::string text;
  for (int c; (c = std::fgetc(log)) != EOF;) text.push_back(static_cast<char>(c));
  return text;
}

long peak_rss_kib() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// ---- the container format --------------------------------------------------------------

TEST_CASE("the checkpoint container round-trips records and rejects damaged files") {
  fg::io::CheckpointWriter w;
  const float f[3] = {1.5f, -2.f, std::numeric_limits<float>::denorm_min()};
  const double d[2] = {0.1, -1e300};
  const std::uint64_t u[2] = {~std::uint64_t{0}, 7};
  w.add("a/f32", f, 3);
  w.add("a/f64", d, 2);
  w.add("a/u64", u, 2);
  w.add_i64("count", -5);
  w.add_text("text", "k=v\nx=1\n");
  w.add("empty", static_cast<const float*>(nullptr), 0);
  const std::string bytes = w.bytes();

  const fg::io::CheckpointFile file(bytes, "mem");
  CHECK(file.version() == fg::io::checkpoint_version);
  CHECK(file.records().size() == 6);
  CHECK(file.array<float>("a/f32") == std::vector<float>(f, f + 3));
  CHECK(file.array<double>("a/f64") == std::vector<double>(d, d + 2));
  CHECK(file.array<std::uint64_t>("a/u64") == std::vector<std::uint64_t>(u, u + 2));
  CHECK(file.i64("count") == -5);
  CHECK(file.text("text") == "k=v\nx=1\n");
  CHECK(file.array<float>("empty").empty());
  const auto fields = fg::io::parse_fields(file.text("text"), "mem", "text");
  REQUIRE(fields.size() == 2);
  CHECK(fields[1] == std::pair<std::string, std::string>("x", "1"));

  // Accessors name the record and what was expected.
  CHECK(error_of([&] { (void)file.array<double>("a/f32"); }).find("'a/f32' holds f32 values, expected f64") !=
        std::string::npos);
  CHECK(error_of([&] { (void)file.i64("missing"); }).find("'missing' is missing") != std::string::npos);
  float three[3];
  CHECK(error_of([&] { file.read_array("a/f32", three, 2); }).find("holds 3 values, expected 2") != std::string::npos);

  // Every damaged variant is an io_error naming the file.
  auto rejects = [&](std::string b, const char* why) {
    const std::string e = error_of([&] { fg::io::CheckpointFile bad(std::move(b), "damaged.fgck"); });
    INFO(why << ": " << e);
    CHECK(e.find("damaged.fgck") != std::string::npos);
    return e;
  };
  CHECK(rejects(bytes.substr(0, 20), "short").find("shorter than the 32-byte header") != std::string::npos);
  CHECK(rejects(bytes.substr(0, bytes.size() - 1), "truncated").find("truncated") != std::string::npos);
  CHECK(rejects(bytes + "x", "trailing").find("trailing bytes") != std::string::npos);
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x10;
  CHECK(rejects(flipped, "payload bit flip").find("CRC-32") != std::string::npos);
  std::string header = bytes;
  header[13] ^= 0x01;
  CHECK(rejects(header, "header bit flip").find("header") != std::string::npos);
  CHECK(rejects("PK\x03\x04" + bytes.substr(4), "foreign").find("not a forgery checkpoint") != std::string::npos);
}

// A header (with valid checksums) that claims far more data than the file holds: a typed
// error before any allocation of the claimed size.
TEST_CASE("a checkpoint claiming 10^12 values is an error, not an allocation") {
  fg::io::CheckpointWriter w;
  const float one = 1;
  w.add("params", &one, 1);
  std::string bytes = w.bytes();
  // The record's count field: after the 32-byte header, u16 name length, 6 name bytes,
  // dtype and reserved bytes.
  const std::size_t count_at = 32 + 2 + 6 + 2;
  fg::io::detail::store_le<std::uint64_t>(bytes.data() + count_at, 1'000'000'000'000ull);
  const std::uint32_t crc = fg::io::detail::crc32_of(bytes.data() + 32, bytes.size() - 32);
  fg::io::detail::store_le<std::uint32_t>(bytes.data() + 24, crc);
  fg::io::detail::store_le<std::uint32_t>(bytes.data() + 28, fg::io::detail::crc32_of(bytes.data(), 28));
  const std::string e = error_of([&] { fg::io::CheckpointFile f(bytes, "huge.fgck"); });
  CHECK(e.find("claims 1000000000000 f32 values, only 4 bytes remain") != std::string::npos);

  Scratch s;
  const auto big = s.dir / "big.fgck";
  { std::ofstream(big) << "x"; }
  std::filesystem::resize_file(big, 1 << 20); // sparse
  fg::io::CheckpointLimits limits;
  limits.max_bytes = 1 << 16;
  CHECK(error_of([&] { (void)fg::io::CheckpointFile::read(big, limits); }).find("above the limit") !=
        std::string::npos);
}

// ---- bitwise resume ----------------------------------------------------------------------

TEST_CASE("a resumed run continues bit for bit: every kind of state is in the checkpoint") {
  const auto data = forgery::test::resume_images();
  Scratch s;
  const auto path = s.dir / "mid.fgck";

  ResumeTrainer straight(forgery::test::resume_config());
  fg::data::ShuffledBatches<float> b1(data);
  straight.fit(b1, 7);

  {
    ResumeTrainer first(forgery::test::resume_config());
    fg::data::ShuffledBatches<float> b2(data);
    first.fit(b2, 3); // 6 critic batches of 8 from 20 images: stops mid-epoch
    first.save_checkpoint(path);
  }
  ResumeTrainer resumed(forgery::test::resume_config()); // fresh weights, fresh streams
  fg::data::ShuffledBatches<float> b3(data);             // a fresh data order object
  CHECK(state_of(resumed) != read_bytes(path));
  resumed.load_checkpoint(path);
  CHECK(resumed.steps_done() == 3);
  CHECK(state_of(resumed) == read_bytes(path)); // the load restores exactly what was saved
  resumed.fit(b3, 4);
  CHECK(resumed.steps_done() == 7);
  CHECK(state_of(resumed) == state_of(straight));

  // The samples of the EMA generator agree too (BatchNorm running statistics included).
  std::vector<float> x1(144 * 6), x2(144 * 6);
  const std::vector<std::int32_t> labels{0, 1, 2, 0, 1, 2};
  fg::RandomStream r1{9, 0, 0}, r2{9, 0, 0};
  straight.generate(r1, {x1.data(), 144, 6}, labels);
  resumed.generate(r2, {x2.data(), 144, 6}, labels);
  CHECK(std::memcmp(x1.data(), x2.data(), x1.size() * sizeof(float)) == 0);
}

TEST_CASE("a checkpoint names its records after the state they hold") {
  ResumeTrainer t(forgery::test::resume_config());
  const fg::io::CheckpointFile f(state_of(t), "mem");
  for (const char* r : {"signature/generator", "signature/discriminator", "signature/objective", "signature/optimizer",
                        "config", "trainer/step", "rng/noise", "rng/data", "rng/dropout_d", "generator/params",
                        "generator/ema", "generator/optimizer/exp_avg", "generator/optimizer/exp_avg_sq",
                        "generator/optimizer/config", "discriminator/optimizer/steps"})
    CHECK_MESSAGE(f.contains(r), r);
  // One state record per stateful layer: BatchNorm in G, SpectralNorm in D.
  auto states = [&](const std::string& prefix) {
    return std::count_if(f.records().begin(), f.records().end(),
                         [&](const auto& r) { return r.name.starts_with(prefix); });
  };
  CHECK(states("generator/state/") == 1);
  CHECK(states("discriminator/state/") == 1);
  CHECK(f.text("signature/generator").find("fg::BatchNorm") == std::string::npos); // the full namespace
  CHECK(f.text("signature/generator").find("forgery::BatchNorm") != std::string::npos);
  CHECK(f.text("generator/optimizer/config").find("lr=0.002") != std::string::npos);
}

// ---- loading is checked and all-or-nothing ------------------------------------------------

using SmallG = fg::Sequential<fg::Input<3>, fg::Dense<5>, fg::Tanh, fg::Dense<2>>;
using SmallD = fg::Sequential<fg::Input<2>, fg::Dense<6>, fg::Tanh, fg::Dense<1>>;
using WiderD = fg::Sequential<fg::Input<2>, fg::Dense<7>, fg::Tanh, fg::Dense<1>>;
using Small = fg::Trainer<SmallG, SmallD, fg::loss::NonSaturating>;

template <class T = Small>
typename T::Config small_config() {
  typename T::Config c;
  c.batch = 8;
  c.seed = 3;
  c.ema_decay = 0.9;
  return c;
}

TEST_CASE("loading into another architecture or configuration names both and changes nothing") {
  Scratch s;
  const auto path = s.dir / "small.fgck";
  fg::data::Ring ring;
  Small a(small_config());
  a.fit(ring, 3);
  a.save_checkpoint(path);

  // Another discriminator: the error names both types.
  using Wider = fg::Trainer<SmallG, WiderD, fg::loss::NonSaturating>;
  Wider other(small_config<Wider>());
  const std::string before = state_of(other);
  const std::string e = error_of([&] { other.load_checkpoint(path); });
  CHECK(e.find("small.fgck") != std::string::npos);
  CHECK(e.find("another discriminator") != std::string::npos);
  CHECK(e.find("forgery::Dense<6") != std::string::npos);
  CHECK(e.find("forgery::Dense<7") != std::string::npos);
  CHECK(state_of(other) == before);

  // Another loss, another optimizer, another scalar type.
  using HingeT = fg::Trainer<SmallG, SmallD, fg::loss::Hinge>;
  HingeT hinge(small_config<HingeT>());
  CHECK(error_of([&] { hinge.load_checkpoint(path); }).find("another objective") != std::string::npos);
  fg::Trainer<SmallG, SmallD, fg::loss::NonSaturating, fg::optim::RMSprop> rms;
  CHECK(error_of([&] { rms.load_checkpoint(path); }).find("another optimizer") != std::string::npos);
  fg::Trainer<SmallG, SmallD, fg::loss::NonSaturating, fg::optim::Adam, fg::backend::Cpu<double>> dbl;
  CHECK(error_of([&] { dbl.load_checkpoint(path); }).find("another scalar type") != std::string::npos);

  // A different batch size or seed would not resume the same run.
  auto cfg = small_config();
  cfg.batch = 16;
  Small b(cfg);
  const std::string b_before = state_of(b);
  const std::string eb = error_of([&] { b.load_checkpoint(path); });
  CHECK(eb.find("Trainer::Config.batch = 8, this trainer has 16") != std::string::npos);
  CHECK(state_of(b) == b_before);
  cfg = small_config();
  cfg.seed = 4;
  Small c(cfg);
  CHECK(error_of([&] { c.load_checkpoint(path); }).find("Config.seed = 3, this trainer has 4") != std::string::npos);
}

TEST_CASE("a checkpoint with one bad record is rejected whole") {
  Scratch s;
  fg::data::Ring ring;
  Small a(small_config());
  a.fit(ring, 2);
  const fg::io::CheckpointFile good(state_of(a), "good");

  // Rebuild the file with one record changed; the loader must refuse before changing anything.
  auto rebuild = [&](const std::string& victim, auto change) { return rebuild_with(good, victim, change); };
  auto expect_rejected = [&](const std::string& bytes, const std::string& message) {
    Small t(small_config());
    t.fit(ring, 1);
    const std::string before = state_of(t);
    const std::string e = error_of([&] { t.load_checkpoint(fg::io::CheckpointFile(bytes, "edited.fgck")); });
    INFO(e);
    CHECK(e.find("edited.fgck") != std::string::npos);
    CHECK(e.find(message) != std::string::npos);
    CHECK(state_of(t) == before);
  };
  // The discriminator's optimizer moments one value short (records are checked in order,
  // so the generator's would have been fine to copy).
  expect_rejected(rebuild("discriminator/optimizer/exp_avg_sq",
                          [&](auto& w, const auto& r) {
                            auto v = good.array<float>(r.name);
                            v.pop_back();
                            w.add(r.name, v.data(), v.size());
                          }),
                  "'discriminator/optimizer/exp_avg_sq' holds " +
                      std::to_string(Small::discriminator_type::param_count - 1) + " values, expected " +
                      std::to_string(Small::discriminator_type::param_count));
  expect_rejected(rebuild("generator/ema", [](auto&, const auto&) {}), "'generator/ema' is missing");
  expect_rejected(rebuild("discriminator/optimizer/config",
                          [](auto& w, const auto& r) {
                            w.add_text(r.name, "lr=-1\nbeta1=0.9\nbeta2=0.999\neps=1e-8\nweight_decay=0\n");
                          }),
                  "Adam.lr");
  expect_rejected(rebuild("rng/noise",
                          [](auto& w, const auto& r) {
                            const std::uint64_t v[3] = {99, 3, 0};
                            w.add(r.name, v, 3);
                          }),
                  "'rng/noise' is for seed 99");
  expect_rejected(rebuild("trainer/step", [](auto& w, const auto& r) { w.add_i64(r.name, -1); }),
                  "step counters are inconsistent");
}

// A file whose state is not finite would only diverge again, and a rollback would return to
// it again and again: it is refused like a damaged one.
TEST_CASE("a checkpoint holding a non-finite parameter, moment, EMA or layer state is refused on load") {
  const auto data = forgery::test::resume_images();
  ResumeTrainer a(forgery::test::resume_config());
  fg::data::ShuffledBatches<float> batches(data);
  a.fit(batches, 1);
  const fg::io::CheckpointFile good(state_of(a), "good");
  std::vector<std::string> victims{"generator/params", "discriminator/params", "generator/optimizer/exp_avg",
                                   "discriminator/optimizer/exp_avg_sq", "generator/ema"};
  for (const auto& r : good.records())
    if (r.name.find("/state/") != std::string::npos) victims.push_back(r.name);
  REQUIRE(victims.size() == 7); // BatchNorm in G, SpectralNorm in D
  for (const std::string& victim : victims) {
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
      ResumeTrainer t(forgery::test::resume_config());
      const std::string before = state_of(t);
      const std::string e =
          error_of([&] { t.load_checkpoint(fg::io::CheckpointFile(poisoned(good, victim, bad, 1), "nan.fgck")); });
      INFO(victim << ": " << e);
      CHECK(has(e, "nan.fgck: checkpoint record '" + victim + "' holds a non-finite value"));
      CHECK(has(e, "at index 1"));
      CHECK(state_of(t) == before);
    }
  }
}

// Resume and rollback skip what they cannot use; the error of a run with nothing usable is
// the newest entry's, naming what it is, never a silent fresh start.
TEST_CASE("resume skips FIFOs, directories, device links and huge files under checkpoint names") {
  Scratch s;
  fg::data::Ring ring;
  Small a(small_config());
  a.fit(ring, 3);
  a.save_checkpoint(fg::io::checkpoint_path(s.dir, 3));
  REQUIRE(::mkfifo(fg::io::checkpoint_path(s.dir, 400).c_str(), 0600) == 0);
  std::filesystem::create_directory(fg::io::checkpoint_path(s.dir, 300));
  std::filesystem::create_symlink("/dev/zero", fg::io::checkpoint_path(s.dir, 200));
  Small b(small_config());
  CHECK(b.resume(s.dir) == fg::io::checkpoint_path(s.dir, 3));
  CHECK(state_of(b) == state_of(a));

  // With only entries that are not files, resume refuses instead of starting afresh.
  Scratch only;
  REQUIRE(::mkfifo(fg::io::checkpoint_path(only.dir, 400).c_str(), 0600) == 0);
  std::filesystem::create_directory(fg::io::checkpoint_path(only.dir, 200));
  Small c(small_config());
  const std::string before = state_of(c);
  const std::string e = error_of([&] { (void)c.resume(only.dir); });
  CHECK(has(e, "step-000000000400.fgck: not a checkpoint file: it is a FIFO (named pipe)"));
  CHECK(state_of(c) == before);

  // A sparse 8 GiB file with a consistent header, larger than any checkpoint of this
  // trainer: refused from its size before it is read, naming its size and the limit.
  const auto huge = fg::io::checkpoint_path(s.dir, 500);
  const std::uint64_t size = std::uint64_t{8} << 30;
  std::string header = fg::io::CheckpointWriter().bytes();
  fg::io::detail::store_le<std::uint64_t>(header.data() + 16, size - fg::io::checkpoint_header_size);
  fg::io::detail::store_le<std::uint32_t>(header.data() + 28, fg::io::detail::crc32_of(header.data(), 28));
  write_bytes(huge, header);
  std::filesystem::resize_file(huge, size);
  const auto start = std::chrono::steady_clock::now();
  const long rss_before = peak_rss_kib();
  Small d(small_config());
  const std::string e_huge = error_of([&] { d.load_checkpoint(huge); });
  CHECK(has(e_huge, huge.string() + ": the checkpoint is 8589934592 bytes, above the limit of " +
                        std::to_string(d.checkpoint_limits().max_bytes)));
  CHECK(d.resume(s.dir) == fg::io::checkpoint_path(s.dir, 3));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const long grown_mib = (peak_rss_kib() - rss_before) / 1024;
  MESSAGE("resume past an 8 GiB sparse checkpoint: " << seconds << " s, peak memory grew by " << grown_mib << " MiB");
  CHECK(seconds < 2.0);
  CHECK(grown_mib < 64);
}

TEST_CASE("a trainer's checkpoint limits hold its own checkpoints, with little room to spare") {
  auto check = [](const auto& t) {
    const auto limits = t.checkpoint_limits();
    const auto file = fg::io::CheckpointFile(t.checkpoint().bytes(), "own");
    const std::uint64_t bytes = t.checkpoint().bytes().size();
    CHECK(bytes <= limits.max_bytes);
    CHECK(limits.max_bytes <= bytes + (1 << 16) + 256);
    CHECK(file.records().size() <= limits.max_records);
  };
  Small small(small_config());
  check(small);
  check(ResumeTrainer(forgery::test::resume_config()));
}

// ---- the NaN/Inf guard ------------------------------------------------------------------

// Sets one critic parameter to NaN after step `at` (once).
struct Poison {
  long long at;
  bool done = false;
  template <class T>
  void on_step(T& t, const fg::StepStats& s) {
    if (!done && s.step == at) {
      t.discriminator().params()[0] = std::numeric_limits<float>::quiet_NaN();
      done = true;
    }
  }
};

TEST_CASE("divergence names step, network and quantity, and a non-finite state is never saved") {
  Small t(small_config());
  fg::data::Ring ring;
  t.fit(ring, 2);
  t.generator().params()[0] = std::numeric_limits<float>::quiet_NaN();
  try {
    t.fit(ring, 1);
    FAIL("expected a numeric_error");
  } catch (const fg::numeric_error& e) {
    CHECK(e.step() == 3);
    CHECK(e.network() == "discriminator"); // the fakes reach the critic's loss first
    CHECK(e.quantity() == "loss");
  }
  // A state that is not finite is never written.
  Scratch s;
  const auto path = s.dir / "never.fgck";
  const std::string e = error_of([&] { t.save_checkpoint(path); });
  CHECK(e.find("step 2: generator parameters hold a non-finite value (nan at index 0)") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("on divergence, Checkpoints stops without saving the diverged state") {
  Scratch s;
  fg::callbacks::CheckpointOptions o;
  o.dir = s.dir;
  o.every = 2;
  o.keep = 10;
  o.log = nullptr;
  fg::callbacks::Checkpoints ck(o);
  Small t(small_config());
  fg::data::Ring ring;
  Poison poison{5};
  try {
    t.fit(ring, 10, ck, poison); // step 5 is saved? no: every 2; NaN set after step 5
    FAIL("expected a numeric_error");
  } catch (const fg::numeric_error& e) {
    CHECK(e.step() == 6);
  }
  const auto files = fg::io::list_checkpoints(s.dir);
  REQUIRE(files.size() == 2);
  CHECK(files.back().step == 4); // no checkpoint at the end: on_end is not reached
  Small check(small_config());
  check.load_checkpoint(files.back().path); // and the newest one is good
  CHECK(check.steps_done() == 4);

  // Poisoned before a save: the save refuses, and the divergence is reported instead.
  Scratch s2;
  o.dir = s2.dir;
  fg::callbacks::Checkpoints ck2(o);
  Small t2(small_config());
  Poison early{4};
  CHECK_THROWS_AS(t2.fit(ring, 10, early, ck2), fg::numeric_error); // early runs before ck2 at step 4
  const auto files2 = fg::io::list_checkpoints(s2.dir);
  REQUIRE(files2.size() == 1);
  CHECK(files2.back().step == 2);
}

TEST_CASE("on divergence, Checkpoints can roll back, lower the learning rates and go on") {
  Scratch s;
  fg::callbacks::CheckpointOptions o;
  o.dir = s.dir;
  o.every = 3;
  o.keep = 10;
  o.on_divergence = fg::OnDivergence::rollback;
  o.lr_factor = 0.25;
  o.log = nullptr;
  fg::callbacks::Checkpoints ck(o);
  auto cfg = small_config();
  cfg.g_optimizer.lr = 1e-3;
  cfg.d_optimizer.lr = 2e-3;
  Small t(cfg);
  fg::data::Ring ring;
  Poison poison{7};
  t.fit(ring, 12, poison, ck);
  CHECK(ck.rollbacks() == 1);
  CHECK(t.steps_done() == 12);
  CHECK(t.generator_optimizer().config().lr == doctest::Approx(0.25e-3));
  CHECK(t.discriminator_optimizer().config().lr == doctest::Approx(0.5e-3));
  // Steps 7.. were redone from the step-6 checkpoint with the lower rates, which the later
  // checkpoints carry.
  const fg::io::CheckpointFile last = fg::io::CheckpointFile::read(fg::io::checkpoint_path(s.dir, 12));
  CHECK(last.text("generator/optimizer/config").find("lr=0.00025") != std::string::npos);
  for (const auto& f : fg::io::list_checkpoints(s.dir)) {
    Small check(cfg);
    CHECK_NOTHROW(check.load_checkpoint(f.path));
  }

  // The rollback limit: a run that keeps diverging stops with the error.
  Scratch s2;
  o.dir = s2.dir;
  o.max_rollbacks = 2;
  fg::callbacks::Checkpoints ck2(o);
  Small t2(cfg);
  struct AlwaysPoison {
    void on_step(Small& tr, const fg::StepStats&) { tr.discriminator().params()[0] = std::nanf(""); }
  } always;
  CHECK_THROWS_AS(t2.fit(ring, 12, ck2, always), fg::numeric_error);
  CHECK(ck2.rollbacks() == 2);
}

// Rollback chooses its file as resume does (one path): past a damaged file and a file with
// a non-finite state, to the newest good one; with none usable, the divergence propagates.
TEST_CASE("rollback skips damaged and poisoned checkpoints, and keeps the divergence when none is usable") {
  Scratch s;
  fg::callbacks::CheckpointOptions o;
  o.dir = s.dir;
  o.every = 3;
  o.keep = 10;
  o.on_divergence = fg::OnDivergence::rollback;
  std::FILE* log = std::tmpfile();
  REQUIRE(log != nullptr);
  o.log = log;
  fg::callbacks::Checkpoints ck(o);
  fg::data::Ring ring;
  // After step 7: the step-6 file is damaged, the step-3 file holds a NaN moment, and the
  // critic diverges at step 8; the good state is the step-0 file.
  struct Sabotage {
    std::filesystem::path dir;
    bool done = false;
    void on_step(Small& t, const fg::StepStats& st) {
      if (done || st.step != 7) return;
      done = true;
      const auto six = fg::io::checkpoint_path(dir, 6), three = fg::io::checkpoint_path(dir, 3);
      std::string bytes = read_bytes(six);
      bytes[bytes.size() / 2] ^= 4;
      write_bytes(six, bytes);
      write_bytes(three, poisoned(fg::io::CheckpointFile::read(three), "discriminator/optimizer/exp_avg"));
      t.discriminator().params()[0] = std::numeric_limits<float>::quiet_NaN();
    }
  } sabotage{s.dir, false};
  Small t(small_config());
  t.fit(ring, 12, sabotage, ck);
  CHECK(ck.rollbacks() == 1);
  CHECK(t.steps_done() == 12);
  const std::string logged = read_log(log);
  INFO(logged);
  CHECK(has(logged, "step-000000000006.fgck: corrupt checkpoint: the payload's CRC-32 does not match"));
  CHECK(has(logged, "step-000000000003.fgck: checkpoint record 'discriminator/optimizer/exp_avg' holds a non-finite "
                    "value (nan at index 0)"));
  CHECK(has(logged, "rolled back to step 0"));
  std::fclose(log);

  // Nothing usable: the divergence, not a file's error, ends the run.
  Scratch s2;
  o.dir = s2.dir;
  std::FILE* log2 = std::tmpfile();
  REQUIRE(log2 != nullptr);
  o.log = log2;
  fg::callbacks::Checkpoints ck2(o);
  struct Ruin {
    std::filesystem::path dir;
    bool done = false;
    void on_step(Small& t, const fg::StepStats& st) {
      if (done || st.step != 4) return;
      done = true;
      for (const auto& f : fg::io::list_checkpoints(dir)) write_bytes(f.path, "damaged");
      t.discriminator().params()[0] = std::numeric_limits<float>::quiet_NaN();
    }
  } ruin{s2.dir, false};
  Small t2(small_config());
  try {
    t2.fit(ring, 12, ruin, ck2);
    FAIL("expected the divergence");
  } catch (const fg::numeric_error& e) {
    CHECK(e.step() == 5);
  }
  CHECK(ck2.rollbacks() == 0);
  const std::string logged2 = read_log(log2);
  INFO(logged2);
  CHECK(has(logged2, "step-000000000003.fgck: truncated checkpoint"));
  CHECK(has(logged2, "step-000000000000.fgck: truncated checkpoint"));
  CHECK(has(logged2, "step 5: discriminator loss is "));
  CHECK(has(logged2, "no usable checkpoint in"));
  std::fclose(log2);
}

// ---- the Checkpoints callback --------------------------------------------------------------

TEST_CASE("Checkpoints saves every N steps, keeps the newest K, saves at the end, and resumes") {
  Scratch s;
  fg::callbacks::CheckpointOptions o;
  o.dir = s.dir / "run";
  o.every = 5;
  o.keep = 2;
  o.log = nullptr;
  Small t(small_config());
  fg::data::Ring ring;
  {
    fg::callbacks::Checkpoints ck(o);
    t.fit(ring, 23, ck);
  }
  auto files = fg::io::list_checkpoints(o.dir);
  REQUIRE(files.size() == 2);
  CHECK(files[0].step == 20);
  CHECK(files[1].step == 23);
  CHECK(files[1].path.filename() == "step-000000000023.fgck");

  // A temporary left by a save that was killed is removed; an empty dir resumes nothing.
  write_bytes(o.dir / "step-000000000025.fgck.tmp.999999999", "partial");
  Small fresh(small_config());
  CHECK(fresh.resume(s.dir / "none").empty());
  CHECK(fresh.steps_done() == 0);
  CHECK(fresh.resume(o.dir) == files[1].path);
  CHECK(state_of(fresh) == state_of(t));
  {
    fg::callbacks::Checkpoints ck(o);
    fresh.fit_until(ring, 30, ck);
  }
  CHECK_FALSE(std::filesystem::exists(o.dir / "step-000000000025.fgck.tmp.999999999"));
  t.fit_until(ring, 30);
  CHECK(state_of(fresh) == state_of(t));

  // A damaged newest file is skipped for the next older one.
  files = fg::io::list_checkpoints(o.dir);
  std::string bytes = read_bytes(files.back().path);
  bytes[bytes.size() / 2] ^= 1;
  write_bytes(files.back().path, bytes);
  Small older(small_config());
  CHECK(older.resume(o.dir) == files[0].path);
  CHECK(older.steps_done() == files[0].step);
}

// A file under a later step's name that resume passed over (here: not a checkpoint at all)
// must not take the place of the run's own checkpoints when old ones are deleted.
TEST_CASE("Checkpoints keeps K of the run's own checkpoints beside an unusable later file") {
  Scratch s;
  const auto stray = fg::io::checkpoint_path(s.dir, 999);
  write_bytes(stray, std::string(100, 'x'));
  fg::callbacks::CheckpointOptions o;
  o.dir = s.dir;
  o.every = 5;
  o.keep = 2;
  o.log = nullptr;
  fg::data::Ring ring;
  Small first(small_config());
  first.fit(ring, 3);
  first.save_checkpoint(fg::io::checkpoint_path(s.dir, 3));
  Small t(small_config());
  CHECK(t.resume(s.dir) == fg::io::checkpoint_path(s.dir, 3)); // past the stray file
  fg::callbacks::Checkpoints ck(o);
  t.fit_until(ring, 15, ck);
  const auto files = fg::io::list_checkpoints(s.dir);
  REQUIRE(files.size() == 3);
  CHECK(files[0].step == 10);
  CHECK(files[1].step == 15);
  CHECK(files[2].path == stray);
}

TEST_CASE("SIGTERM or SIGINT during fit saves a checkpoint and stops after the step") {
  for (int signo : {SIGTERM, SIGINT}) {
    Scratch s;
    fg::callbacks::CheckpointOptions o;
    o.dir = s.dir;
    o.every = 100;
    o.log = nullptr;
    fg::callbacks::Checkpoints ck(o);
    struct sigaction before {};
    ::sigaction(signo, nullptr, &before);
    struct Raise {
      int signo;
      void on_step(Small&, const fg::StepStats& st) {
        if (st.step == 4) std::raise(signo);
      }
    } raise_at_4{signo};
    Small t(small_config());
    fg::data::Ring ring;
    t.fit(ring, 50, raise_at_4, ck);
    CHECK(ck.interrupted_by() == signo);
    CHECK(t.steps_done() == 4);
    const auto files = fg::io::list_checkpoints(s.dir);
    REQUIRE(files.size() == 1);
    CHECK(files[0].step == 4);
    // The previous handler is back once fit() returns.
    struct sigaction after {};
    ::sigaction(signo, nullptr, &after);
    const bool same_handler = after.sa_handler == before.sa_handler;
    CHECK(same_handler);
  }
}

TEST_CASE("Checkpoints options and fit_until are validated with the field named") {
  auto field_of = [](auto make) {
    try {
      make();
    } catch (const fg::config_error& e) {
      return e.field();
    }
    return std::string("none");
  };
  using O = fg::callbacks::CheckpointOptions;
  CHECK(field_of([] { fg::callbacks::Checkpoints c(O{}); }) == "CheckpointOptions.dir");
  CHECK(field_of([] {
          O o;
          o.dir = "x";
          o.every = -1;
          fg::callbacks::Checkpoints c(o);
        }) == "CheckpointOptions.every");
  CHECK(field_of([] {
          O o;
          o.dir = "x";
          o.keep = 0;
          fg::callbacks::Checkpoints c(o);
        }) == "CheckpointOptions.keep");
  CHECK(field_of([] {
          O o;
          o.dir = "x";
          o.lr_factor = 1.5;
          fg::callbacks::Checkpoints c(o);
        }) == "CheckpointOptions.lr_factor");
  Small t(small_config());
  fg::data::Ring ring;
  t.fit(ring, 2);
  CHECK(field_of([&] { t.fit_until(ring, 1); }) == "fit_until total");
}

TEST_CASE("LossLog drops rows past the step a resumed run starts from") {
  Scratch s;
  const auto log = s.dir / "log.csv";
  fg::data::Ring ring;
  Small t(small_config());
  {
    fg::callbacks::LossLog l(log);
    t.fit(ring, 5, l);
  }
  Small back(small_config());
  back.fit(ring, 3); // as if resumed from a step-3 checkpoint
  {
    fg::callbacks::LossLog l(log);
    back.fit(ring, 2, l);
  }
  std::ifstream in(log);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 6); // header + steps 1..5, each once
  for (int i = 1; i <= 5; ++i) CHECK(lines[static_cast<std::size_t>(i)].starts_with(std::to_string(i) + ","));
}

} // namespace
