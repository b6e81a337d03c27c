// Checkpoint directories and files under hostile conditions: entries that are not
// checkpoints (dangling links, directories, FIFOs, links to devices) never stop a scan and
// are never opened or taken for a checkpoint; a huge file is refused from its size and
// header before anything is allocated; the newest-usable-checkpoint choice skips what it
// cannot use, naming each entry and why.
#include "../support.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "forgery/io/checkpoint.hpp"

namespace {

namespace fs = std::filesystem;
namespace io = forgery::io;
using fg::test::Scratch;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

using fg::test::error_of;

// A valid checkpoint whose "step" record holds `step`.
void write_checkpoint(const fs::path& path, long long step) {
  io::CheckpointWriter w;
  w.add_i64("step", step);
  const float values[2] = {1.f, 2.f};
  w.add("values", values, 2);
  w.save(path);
}

long peak_rss_kib() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// Loads a file whose "step" record matches its name's step.
struct StepLoader {
  long long loaded = -1;
  void operator()(const io::CheckpointFile& f) { loaded = f.i64("step"); }
};

TEST_CASE("an entry that is not a checkpoint never stops the checkpoint directory scan") {
  Scratch s;
  // Only a dangling link: whatever the directory order, it is the last entry the scan meets.
  fs::create_symlink(s.dir / "gone", s.dir / "stray");
  CHECK(io::list_checkpoints(s.dir).empty());
  CHECK_NOTHROW(io::prune_checkpoints(s.dir, 1));
  CHECK(io::remove_stale_temporaries(s.dir) == 0);

  // Good checkpoints among dangling links of every kind of name, a directory and a FIFO.
  for (long long step : {2, 4, 6}) write_checkpoint(io::checkpoint_path(s.dir, step), step);
  for (const char* name : {"a", "zzzz", "step-000000000009.fgck", "step-000000000001.fgck.tmp.999999999", ".hidden"})
    fs::create_symlink(s.dir / "nowhere", s.dir / name);
  fs::create_directory(s.dir / "step-000000000008.fgck");
  REQUIRE(::mkfifo((s.dir / "step-000000000007.fgck").c_str(), 0600) == 0);
  const auto files = io::list_checkpoints(s.dir);
  REQUIRE(files.size() == 3);
  CHECK(files[0].step == 2);
  CHECK(files[2].step == 6);
  for (const auto& f : files) CHECK(f.is_file());

  // Every entry named as a checkpoint is listed with what it is.
  const auto entries = io::list_checkpoint_entries(s.dir);
  REQUIRE(entries.size() == 6);
  CHECK(entries[3].step == 7);
  CHECK(entries[3].not_a_file == "a FIFO (named pipe)");
  CHECK(entries[4].not_a_file == "a directory");
  CHECK(has(entries[5].not_a_file, "a dangling symbolic link"));
  CHECK(has(entries[5].not_a_file, "nowhere"));

  // Saves in progress keep working: pruning and the clean-up of temporaries leave the
  // entries that are not checkpoints alone.
  CHECK(io::remove_stale_temporaries(s.dir) == 0);
  io::prune_checkpoints(s.dir, 1);
  CHECK(io::list_checkpoints(s.dir).size() == 1);
  CHECK(fs::is_directory(s.dir / "step-000000000008.fgck"));
  CHECK(fs::is_fifo(s.dir / "step-000000000007.fgck"));
  CHECK(fs::is_symlink(s.dir / "step-000000000009.fgck"));

  // Listing a directory that is not one is the error, naming it.
  CHECK(has(error_of([&] { (void)io::list_checkpoints(s.dir / "step-000000000006.fgck"); }),
            "cannot list the checkpoint directory"));
  CHECK(io::list_checkpoints(s.dir / "absent").empty());
}

TEST_CASE("pruning up to a step keeps that many of the run's checkpoints, whatever lies beyond") {
  Scratch s;
  for (long long step : {5, 10, 15, 20}) write_checkpoint(io::checkpoint_path(s.dir, step), step);
  { std::ofstream(io::checkpoint_path(s.dir, 900)) << "a stray file under a later step's name"; }
  io::prune_checkpoints(s.dir, 2, 20);
  const auto left = io::list_checkpoints(s.dir);
  REQUIRE(left.size() == 3);
  CHECK(left[0].step == 15);
  CHECK(left[1].step == 20);
  CHECK(left[2].step == 900); // not counted, not deleted
  io::prune_checkpoints(s.dir, 1);
  REQUIRE(io::list_checkpoints(s.dir).size() == 1);
  CHECK(io::list_checkpoints(s.dir)[0].step == 900);
}

TEST_CASE("only regular files are read as checkpoints; anything else is named, never opened") {
  Scratch s;
  const fs::path fifo = s.dir / "fifo.fgck", dir = s.dir / "dir.fgck", zero = s.dir / "zero.fgck";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0); // opened for reading, it would block forever
  fs::create_directory(dir);
  fs::create_symlink("/dev/zero", zero); // read whole, it never ends
  const std::string e_fifo = error_of([&] { (void)io::CheckpointFile::read(fifo); });
  CHECK(has(e_fifo, fifo.string()));
  CHECK(has(e_fifo, "not a checkpoint file: it is a FIFO"));
  CHECK(has(error_of([&] { (void)io::CheckpointFile::read(dir); }), "it is a directory"));
  CHECK(has(error_of([&] { (void)io::CheckpointFile::read(zero); }),
            "it is a symbolic link to a character device (/dev/zero)"));
  CHECK(has(error_of([&] { (void)io::CheckpointFile::read(s.dir / "absent.fgck"); }), "absent.fgck"));
}

TEST_CASE("the newest usable checkpoint is chosen past every entry that is not, each one named") {
  Scratch s;
  write_checkpoint(io::checkpoint_path(s.dir, 1), 1);
  write_checkpoint(io::checkpoint_path(s.dir, 2), 2);
  {
    std::ofstream damaged(io::checkpoint_path(s.dir, 3), std::ios::binary);
    damaged << "not a checkpoint at all, but long enough for a header";
  }
  REQUIRE(::mkfifo(io::checkpoint_path(s.dir, 4).c_str(), 0600) == 0);
  fs::create_directory(io::checkpoint_path(s.dir, 5));
  fs::create_symlink("/dev/urandom", io::checkpoint_path(s.dir, 6));
  fs::create_symlink(s.dir / "gone", io::checkpoint_path(s.dir, 7));
  write_checkpoint(io::checkpoint_path(s.dir, 8), 8);

  // The loader refuses step 8 (as a trainer refuses a file of another run).
  StepLoader loader;
  auto refuse_8 = [&](const io::CheckpointFile& f) {
    if (f.i64("step") == 8) throw fg::io_error(f.name(), "refused by the loader");
    loader(f);
  };
  std::FILE* log = std::tmpfile();
  REQUIRE(log != nullptr);
  const io::NewestCheckpoint found = io::load_newest_checkpoint(s.dir, refuse_8, {}, log);
  REQUIRE(found);
  CHECK(found.loaded.step == 2);
  CHECK(loader.loaded == 2);
  REQUIRE(found.skipped.size() == 6);
  CHECK(has(found.skipped[0], "step-000000000008.fgck: refused by the loader"));
  CHECK(has(found.skipped[1], "step-000000000007.fgck: not a checkpoint file: it is a dangling symbolic link"));
  CHECK(has(found.skipped[2], "step-000000000006.fgck: not a checkpoint file: it is a symbolic link to a character "
                              "device (/dev/urandom)"));
  CHECK(has(found.skipped[3], "step-000000000005.fgck: not a checkpoint file: it is a directory"));
  CHECK(has(found.skipped[4], "step-000000000004.fgck: not a checkpoint file: it is a FIFO"));
  CHECK(has(found.skipped[5], "step-000000000003.fgck: not a forgery checkpoint"));
  std::rewind(log);
  std::string logged;
  for (int c; (c = std::fgetc(log)) != EOF;) logged.push_back(static_cast<char>(c));
  std::fclose(log);
  CHECK(has(logged, "step-000000000004.fgck: not a checkpoint file: it is a FIFO (named pipe) (only regular files "
                    "are checkpoints); trying the next older checkpoint"));

  // With nothing usable, nothing is loaded and the newest entry's error is kept.
  Scratch bad;
  REQUIRE(::mkfifo(io::checkpoint_path(bad.dir, 9).c_str(), 0600) == 0);
  fs::create_directory(io::checkpoint_path(bad.dir, 3));
  StepLoader none;
  const io::NewestCheckpoint nothing = io::load_newest_checkpoint(bad.dir, none);
  CHECK_FALSE(nothing);
  CHECK(none.loaded == -1);
  REQUIRE(nothing.newest_error);
  CHECK(has(error_of([&] { std::rethrow_exception(nothing.newest_error); }), "step-000000000009.fgck"));
  // An empty or absent directory has nothing to report.
  CHECK_FALSE(io::load_newest_checkpoint(bad.dir / "absent", none).newest_error);
}

// A sparse 8 GiB file (no disk used) under a checkpoint's name: refused from its size and
// header, in milliseconds, without reading or allocating its size.
TEST_CASE("a huge checkpoint-named file is refused before anything is read or allocated") {
  Scratch s;
  const fs::path huge = io::checkpoint_path(s.dir, 50);
  const std::uint64_t size = std::uint64_t{8} << 30;
  const auto start = std::chrono::steady_clock::now();
  const long rss_before = peak_rss_kib();

  // Zeros: not a checkpoint, whatever the limits.
  { std::ofstream(huge) << ""; }
  fs::resize_file(huge, size);
  const std::string zeros = error_of([&] { (void)io::CheckpointFile::read(huge); });
  CHECK(has(zeros, huge.string()));
  CHECK(has(zeros, "not a forgery checkpoint"));

  // A valid header that promises the payload the file has: refused by max_bytes, with the
  // size and the limit named.
  io::CheckpointWriter w;
  std::string header = w.bytes();
  io::detail::store_le<std::uint64_t>(header.data() + 16, size - io::checkpoint_header_size);
  io::detail::store_le<std::uint32_t>(header.data() + 28, io::detail::crc32_of(header.data(), 28));
  {
    std::fstream f(huge, std::ios::in | std::ios::out | std::ios::binary);
    f.write(header.data(), static_cast<std::streamsize>(header.size()));
  }
  REQUIRE(fs::file_size(huge) == size);
  io::CheckpointLimits limits;
  limits.max_bytes = 1 << 20;
  const std::string over = error_of([&] { (void)io::CheckpointFile::read(huge, limits); });
  CHECK(has(over, huge.string()));
  CHECK(has(over, "is 8589934592 bytes, above the limit of 1048576"));

  // A header that promises less than the file has: refused before the payload is read.
  io::detail::store_le<std::uint64_t>(header.data() + 16, 100);
  io::detail::store_le<std::uint32_t>(header.data() + 28, io::detail::crc32_of(header.data(), 28));
  {
    std::fstream f(huge, std::ios::in | std::ios::out | std::ios::binary);
    f.write(header.data(), static_cast<std::streamsize>(header.size()));
  }
  CHECK(has(error_of([&] { (void)io::CheckpointFile::read(huge); }), "trailing bytes"));

  // As the newest of a directory: skipped for the good file before it.
  write_checkpoint(io::checkpoint_path(s.dir, 40), 40);
  StepLoader loader;
  const auto found = io::load_newest_checkpoint(s.dir, loader, limits);
  CHECK(found.loaded.step == 40);
  REQUIRE(found.skipped.size() == 1);
  CHECK(has(found.skipped[0], "above the limit"));

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const long grown_mib = (peak_rss_kib() - rss_before) / 1024;
  MESSAGE("8 GiB sparse checkpoint refused 4 times in " << seconds << " s, peak memory grew by " << grown_mib
                                                        << " MiB");
  CHECK(seconds < 2.0);
  CHECK(grown_mib < 64);
}

TEST_CASE("a record holding NaN or infinity is found, naming the file, record and index") {
  io::CheckpointWriter w;
  const float f[3] = {1.f, 2.f, std::numeric_limits<float>::infinity()};
  const double d[2] = {0.5, std::nan("")};
  const float ok[2] = {0.f, -1.f};
  w.add("f", f, 3);
  w.add("d", d, 2);
  w.add("ok", ok, 2);
  w.add_text("text", "nan");
  const io::CheckpointFile file(w.bytes(), "poisoned.fgck");
  CHECK(has(error_of([&] { file.require_finite("f"); }),
            "poisoned.fgck: checkpoint record 'f' holds a non-finite value (inf at index 2)"));
  CHECK(has(error_of([&] { file.require_finite("d"); }), "record 'd' holds a non-finite value (nan at index 1)"));
  CHECK_NOTHROW(file.require_finite("ok"));
  CHECK_NOTHROW(file.require_finite("text"));
  CHECK(has(error_of([&] { file.require_finite("absent"); }), "'absent' is missing"));
}

} // namespace
