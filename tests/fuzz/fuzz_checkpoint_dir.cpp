// libFuzzer target: the checkpoint directory (forgery/io/checkpoint.hpp): listing, choosing
// the newest usable checkpoint, pruning, and removing the temporaries of killed saves.
//
// An input describes a directory, built fresh in a temporary folder for each run:
//   byte 0       how many checkpoints prune keeps (1 + b % 4), and up to which step
//                ((b / 4) % 12)
//   then entries, each: a kind byte, a name byte, and for the kinds with content a length
//   byte and that many content bytes (cut short by the end of the input).
//   kind % 8:  0 regular file of the content, 1 the same with a checkpoint header's payload
//              size and CRC-32s made valid, 2 a valid checkpoint whose "step" record is the
//              name's step and whose f32 values are the content, 3 a dangling symbolic link,
//              4 a directory, 5 a FIFO, 6 a symbolic link to /dev/zero, 7 a symbolic link to
//              a valid checkpoint outside the directory
//   name % 16: 0..7 the checkpoint of that step, 8 step-<n>.fgck (not zero-padded), 9 and
//              10 temporaries of a process that is gone and of this one, 11..15 names that
//              are not checkpoints.
// A FIFO opened for reading would block (a timeout), /dev/zero read whole would exhaust
// memory: both are findings. So are a chosen entry that is not a regular file, a newer
// usable file passed over, a checkpoint or foreign entry deleted by pruning or the clean-up
// of temporaries, and any exception that is not a forgery::error.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "forgery/io/checkpoint.hpp"

#include "fuzz_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace io = forgery::io;

const char* const dead_pid = "999999999"; // above any pid_max: never a running process

std::string entry_name(unsigned n, long long* step) {
  *step = -1;
  n %= 16;
  if (n < 8) {
    *step = n;
    return io::checkpoint_path("", n).string();
  }
  switch (n) {
  case 8:
    *step = 8;
    return "step-8.fgck";
  case 9:
    return io::checkpoint_path("", 9).string() + ".tmp." + dead_pid;
  case 10:
    return io::checkpoint_path("", 10).string() + ".tmp." + std::to_string(::getpid());
  case 11:
    return "step-.fgck";
  case 12:
    return "step-000000000001.fgck.tmp.";
  case 13:
    return "step-1x.fgck";
  case 14:
    return ".fgck";
  default:
    return "notes.txt";
  }
}

std::string fixed_header(std::string bytes) {
  if (bytes.size() < io::checkpoint_header_size) return bytes;
  char* h = bytes.data();
  const std::size_t payload = bytes.size() - io::checkpoint_header_size;
  std::memcpy(h, io::checkpoint_magic, sizeof io::checkpoint_magic);
  io::detail::store_le<std::uint64_t>(h + 16, payload);
  io::detail::store_le<std::uint32_t>(h + 24, io::detail::crc32_of(h + io::checkpoint_header_size, payload));
  io::detail::store_le<std::uint32_t>(h + 28, io::detail::crc32_of(h, 28));
  return bytes;
}

std::string valid_checkpoint(long long step, const std::string& content) {
  io::CheckpointWriter w;
  w.add_i64("step", step);
  std::vector<float> values(content.size() / sizeof(float));
  if (!values.empty()) std::memcpy(values.data(), content.data(), values.size() * sizeof(float));
  w.add("values", values.data(), values.size());
  return w.bytes();
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::FILE* f = std::fopen(p.c_str(), "wb");
  if (f == nullptr) forgery::fuzz::broken("cannot create a file of the test directory");
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size())
    forgery::fuzz::broken("cannot write a file of the test directory");
  std::fclose(f);
}

bool is_regular(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(fs::status(p, ec));
}
bool present(const fs::path& p) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(p, ec));
}

// A scratch folder for the whole run, and a valid checkpoint outside the directory.
struct Base {
  fs::path root, outside;
  Base() {
    std::string tmpl = (fs::temp_directory_path() / "fuzz_checkpoint_dir.XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) forgery::fuzz::broken("mkdtemp");
    root = tmpl;
    outside = root / "outside.fgck";
    write_file(outside, valid_checkpoint(3, "\1\2\3\4"));
  }
  ~Base() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

struct Built {
  long long step; // -1: not named as a checkpoint
  fs::path path;
  bool regular;   // a regular file or a symbolic link to one
  bool plain;     // a regular file itself
  bool temporary; // named as a temporary of a save
};

// The loader a trainer would be: needs the "step" record and finite values.
void load(const io::CheckpointFile& f) {
  (void)f.i64("step");
  if (f.contains("values")) f.require_finite("values");
}

void check_directory(const fs::path& dir, const std::vector<Built>& built, std::size_t keep, long long up_to) {
  const auto entries = io::list_checkpoint_entries(dir);
  std::size_t named = 0;
  for (const auto& b : built) named += b.step >= 0 ? 1 : 0;
  FORGERY_FUZZ_CHECK(entries.size() == named);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    FORGERY_FUZZ_CHECK(io::detail::checkpoint_step(e.path.filename().string()) == e.step);
    FORGERY_FUZZ_CHECK(i == 0 || entries[i - 1].step <= e.step);
    FORGERY_FUZZ_CHECK(e.is_file() == is_regular(e.path));
  }
  const auto files = io::list_checkpoints(dir);
  for (const auto& f : files) FORGERY_FUZZ_CHECK(f.is_file() && is_regular(f.path));

  io::CheckpointLimits limits;
  limits.max_bytes = 65536;
  std::size_t calls = 0;
  const io::NewestCheckpoint found = io::load_newest_checkpoint(
      dir,
      [&](const io::CheckpointFile& f) {
        ++calls;
        load(f);
      },
      limits);
  if (found) {
    FORGERY_FUZZ_CHECK(found.loaded.is_file() && is_regular(found.loaded.path));
    // Everything newer was refused, each with a message naming it; nothing older was tried.
    const auto at =
        std::find_if(entries.begin(), entries.end(), [&](const auto& e) { return e.path == found.loaded.path; });
    FORGERY_FUZZ_CHECK(at != entries.end());
    FORGERY_FUZZ_CHECK(found.skipped.size() == static_cast<std::size_t>(entries.end() - at - 1));
    FORGERY_FUZZ_CHECK(!found.newest_error);
  } else {
    FORGERY_FUZZ_CHECK(found.skipped.size() == entries.size());
    FORGERY_FUZZ_CHECK(static_cast<bool>(found.newest_error) == !entries.empty());
  }
  for (std::size_t i = 0; i < found.skipped.size(); ++i) {
    const auto& e = entries[entries.size() - 1 - i];
    FORGERY_FUZZ_CHECK(found.skipped[i].find(e.path.string()) != std::string::npos);
  }
  FORGERY_FUZZ_CHECK(calls <= files.size());

  // Only regular files of a save by a process that is gone are removed.
  auto stale = [](const Built& b) { return b.temporary && b.plain && b.path.string().ends_with(dead_pid); };
  const std::size_t removed = io::remove_stale_temporaries(dir);
  FORGERY_FUZZ_CHECK(removed == static_cast<std::size_t>(std::count_if(built.begin(), built.end(), stale)));
  for (const auto& b : built) FORGERY_FUZZ_CHECK(present(b.path) == !stale(b));

  try {
    io::prune_checkpoints(dir, keep, up_to);
  } catch (const forgery::error& e) {
    forgery::fuzz::refused(e);
    return;
  }
  // The newest `keep` up to the step stay, and every later one.
  std::vector<io::CheckpointEntry> expected, candidates;
  for (const auto& f : files) (f.step > up_to ? expected : candidates).push_back(f);
  const std::size_t stay = std::min(keep, candidates.size());
  expected.insert(expected.begin(), candidates.end() - static_cast<std::ptrdiff_t>(stay), candidates.end());
  const auto kept = io::list_checkpoints(dir);
  FORGERY_FUZZ_CHECK(kept.size() == expected.size());
  for (std::size_t i = 0; i < kept.size(); ++i) FORGERY_FUZZ_CHECK(kept[i].path == expected[i].path);
  // Pruning deletes checkpoints only: every other entry is still there.
  for (const auto& b : built)
    if ((b.step < 0 || !b.regular) && !stale(b)) FORGERY_FUZZ_CHECK(present(b.path));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Base base;
  if (size == 0) return 0;
  const fs::path dir = base.root / "checkpoints";
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (!fs::create_directory(dir, ec)) forgery::fuzz::broken("cannot create the test directory");

  const std::size_t keep = 1 + data[0] % 4;
  const long long up_to = (data[0] / 4) % 12;
  std::vector<Built> built;
  std::size_t at = 1;
  while (at + 2 <= size && built.size() < 16) {
    const unsigned kind = data[at] % 8, name_byte = data[at + 1];
    at += 2;
    std::string content;
    if (kind <= 2 && at < size) {
      const std::size_t len = std::min<std::size_t>(data[at], size - at - 1);
      content.assign(reinterpret_cast<const char*>(data + at + 1), len);
      at += 1 + len;
    }
    long long step = -1;
    const fs::path path = dir / entry_name(name_byte, &step);
    if (present(path)) continue;
    switch (kind) {
    case 0:
      write_file(path, content);
      break;
    case 1:
      write_file(path, fixed_header(content));
      break;
    case 2:
      write_file(path, valid_checkpoint(step, content));
      break;
    case 3:
      fs::create_symlink(dir / "nowhere", path);
      break;
    case 4:
      fs::create_directory(path);
      break;
    case 5:
      if (::mkfifo(path.c_str(), 0600) != 0) forgery::fuzz::broken("mkfifo");
      break;
    case 6:
      fs::create_symlink("/dev/zero", path);
      break;
    default:
      fs::create_symlink(base.outside, path);
      break;
    }
    const std::string name = path.filename().string();
    const std::size_t tmp = name.rfind(".tmp.");
    const bool temporary =
        tmp != std::string::npos && tmp + 5 < name.size() && io::detail::checkpoint_step(name.substr(0, tmp)) >= 0;
    built.push_back({step, path, kind <= 2 || kind == 7, kind <= 2, temporary});
  }

  try {
    check_directory(dir, built, keep, up_to);
  } catch (const forgery::error& e) {
    forgery::fuzz::refused(e);
  }
  fs::remove_all(dir, ec);
  return 0;
}
