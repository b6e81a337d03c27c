// Writes the seed corpus of the fuzz targets: small valid files of each format, and a few
// invalid ones that stop at each kind of check (truncated, wrong magic, huge claimed sizes,
// bad checksums, other versions). Deterministic: running it again rewrites the same bytes.
// It replaces the files it writes and leaves others (regression seeds from findings) alone.
//
// Build and run from the repository root:
//   g++ -std=c++20 -O1 -Wall -Wextra -Iinclude tests/fuzz/make_corpus.cpp -lz -o /tmp/make_corpus
//   /tmp/make_corpus tests/fuzz/corpus
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <zlib.h>

#include "forgery/io/checkpoint.hpp"

namespace {

namespace fs = std::filesystem;
namespace io = forgery::io;

fs::path root;
std::size_t files = 0, total = 0;

void write(const std::string& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(root / dir);
  std::ofstream out(root / dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "make_corpus: cannot write %s\n", (root / dir / name).c_str());
    std::exit(1);
  }
  ++files;
  total += bytes.size();
}

std::string gzip(const std::string& plain) {
  z_stream z{};
  // windowBits 15 + 16: a gzip wrapper, with mtime 0 and no name, so the output is stable.
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::string out(deflateBound(&z, plain.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
  z.avail_in = static_cast<uInt>(plain.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// --- checkpoint ----------------------------------------------------------------------------

// Recomputes the payload CRC and then the header CRC, so an edited file stops at the check
// the edit is meant for rather than at a checksum.
std::string reseal(std::string f) {
  char* h = f.data();
  io::detail::store_le<std::uint32_t>(h + 24, io::detail::crc32_of(h + 32, f.size() - 32));
  io::detail::store_le<std::uint32_t>(h + 28, io::detail::crc32_of(h, 28));
  return f;
}

void checkpoint_seeds() {
  const std::string dir = "checkpoint";
  io::CheckpointWriter w;
  w.add_text("config", "format=forgery\nbatch=64\nlr=0.0002\n\nbeta1=0.5\n");
  const float g[] = {0.5f, -1.25f, 3.0e-8f, 1.0f / 3.0f};
  w.add<float>("generator.params", g, 4);
  const double d[] = {-0.0, 2.5, 1e300};
  w.add<double>("critic.params", d, 3);
  w.add_i64("step", 1234);
  const std::uint64_t rng[] = {0x0123456789abcdefULL, 42};
  w.add<std::uint64_t>("rng", rng, 2);
  w.add_text("empty", "");
  w.add<float>("none", g, 0);
  const std::string mixed = w.bytes();
  write(dir, "valid_mixed.ckpt", mixed);
  write(dir, "valid_empty.ckpt", io::CheckpointWriter().bytes());

  io::CheckpointWriter one;
  one.add_i64("step", 7);
  const std::string step = one.bytes(); // record "step": name length at 32, type at 38, count at 40
  write(dir, "valid_step.ckpt", step);

  write(dir, "truncated.ckpt", mixed.substr(0, mixed.size() - 5));
  write(dir, "header_only.ckpt", mixed.substr(0, 32));
  write(dir, "short.ckpt", mixed.substr(0, 20));
  std::string bad = mixed;
  bad[1] = 'X';
  write(dir, "bad_magic.ckpt", bad);
  bad = mixed;
  bad[40] ^= 0x10;
  write(dir, "bad_payload_crc.ckpt", bad);
  bad = mixed;
  bad[12] ^= 1;
  write(dir, "bad_header_crc.ckpt", bad);
  bad = step;
  bad[8] = 2;
  write(dir, "version2.ckpt", reseal(bad));
  bad = step;
  io::detail::store_le<std::uint32_t>(bad.data() + 12, 0xFFFFFFFFu);
  write(dir, "too_many_records.ckpt", reseal(bad));
  bad = step;
  io::detail::store_le<std::uint64_t>(bad.data() + 40, std::uint64_t{1} << 62);
  write(dir, "huge_count.ckpt", reseal(bad));
  bad = step;
  bad[38] = 9;
  write(dir, "bad_type.ckpt", reseal(bad));
  bad = step;
  bad[39] = 1;
  write(dir, "reserved_byte.ckpt", reseal(bad));
  bad = step;
  io::detail::store_le<std::uint16_t>(bad.data() + 32, 300);
  write(dir, "long_name.ckpt", reseal(bad));
  bad = step;
  bad[35] = ' ';
  write(dir, "name_with_space.ckpt", reseal(bad));
  bad = step + "xyz";
  io::detail::store_le<std::uint64_t>(bad.data() + 16, bad.size() - 32);
  write(dir, "trailing_after_records.ckpt", reseal(bad));

  io::CheckpointWriter twice;
  twice.add_i64("a", 1);
  twice.add_i64("b", 2);
  bad = twice.bytes();
  bad[bad.find('b')] = 'a';
  write(dir, "duplicate_names.ckpt", reseal(bad));

  io::CheckpointWriter fields;
  fields.add_text("config", "batch=64\nno equals sign here\n");
  fields.add_text("config2", "=value\n");
  write(dir, "bad_fields.ckpt", fields.bytes());
}

// --- IDX -----------------------------------------------------------------------------------

std::string idx(std::uint8_t type, const std::vector<std::uint32_t>& dims, std::size_t payload, char fill = 0) {
  std::string f{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (std::uint32_t n : dims)
    for (int s = 24; s >= 0; s -= 8) f.push_back(static_cast<char>((n >> s) & 0xFF));
  for (std::size_t i = 0; i < payload; ++i) f.push_back(fill ? fill : static_cast<char>(i * 37 % 256));
  return f;
}

void idx_seeds() {
  const std::string dir = "idx";
  const std::string images = idx(0x08, {3, 4, 5}, 60);
  write(dir, "images_3x4x5.idx", images);
  write(dir, "labels_3.idx", idx(0x08, {3}, 3));
  write(dir, "four_dims.idx", idx(0x08, {2, 1, 3, 2}, 12));
  write(dir, "images_2x28x28.idx.gz", gzip(idx(0x08, {2, 28, 28}, 2 * 28 * 28)));
  write(dir, "labels_10.idx.gz", gzip(idx(0x08, {10}, 10)));
  // 4 MiB of zeros in 4 KiB of gzip: the payload grows in steps as it is decompressed.
  write(dir, "zeros_1x2048x2048.idx.gz", gzip(idx(0x08, {1, 2048, 2048}, 2048 * 2048, '\1')));

  write(dir, "truncated.idx", images.substr(0, images.size() - 7));
  write(dir, "truncated_header.idx", images.substr(0, 9));
  write(dir, "trailing.idx", images + "extra");
  write(dir, "bad_magic.idx", "\x01\x02" + images.substr(2));
  write(dir, "float_type.idx", idx(0x0D, {3}, 12));
  write(dir, "zero_dims.idx", idx(0x08, {}, 0));
  write(dir, "five_dims.idx", idx(0x08, {1, 1, 1, 1, 1}, 1));
  write(dir, "zero_dim.idx", idx(0x08, {3, 0, 5}, 0));
  write(dir, "huge_dims.idx", idx(0x08, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, 16));
  write(dir, "huge_dims.idx.gz", gzip(idx(0x08, {60000, 4096, 4096}, 64)));
  const std::string gz = gzip(idx(0x08, {2, 28, 28}, 2 * 28 * 28));
  write(dir, "cut_stream.idx.gz", gz.substr(0, gz.size() / 2));
  write(dir, "no_trailer.idx.gz", gz.substr(0, gz.size() - 4));
  write(dir, "trailing_payload.idx.gz", gzip(idx(0x08, {3}, 3) + "more"));
  std::string corrupt = gz;
  corrupt[corrupt.size() / 2] ^= 0x55;
  write(dir, "corrupt_stream.idx.gz", corrupt);

  // gzip members, each with a trailer (CRC-32, length) to check, and what may follow them.
  const std::string labels = idx(0x08, {10}, 10);
  const std::string member = gzip(labels);
  for (const std::size_t n : {1, 8})
    write(dir, "cut_" + std::to_string(n) + ".idx.gz", member.substr(0, member.size() - n));
  std::string crc = member;
  crc[crc.size() - 8] ^= 0x01;
  write(dir, "crc_flipped.idx.gz", crc);
  std::string isize = member;
  isize[isize.size() - 4] ^= 0x01;
  write(dir, "isize_flipped.idx.gz", isize);
  write(dir, "two_members.idx.gz", gzip(labels.substr(0, 6)) + gzip(labels.substr(6)));
  write(dir, "empty_member_after.idx.gz", member + gzip(""));
  write(dir, "second_member_cut.idx.gz", gzip(labels.substr(0, 6)) + gzip(labels.substr(6)).substr(0, 20));
  write(dir, "trailing_garbage.idx.gz", member + "garbage");
  write(dir, "trailing_zeros.idx.gz", member + std::string(16, '\0'));

  // Inputs that fuzz_idx wraps in gzip itself (see its header): a control byte (bit 0: two
  // members, bit 1: coded rather than stored, bits 2-4: the damage, bit 7 set so that it is
  // neither 00 nor 1f), a parameter byte, then the content. One per damage.
  const char* damages[] = {"none", "crc_bit", "isize_bit", "cut", "garbage", "data_bit", "empty_member", "zeros"};
  for (int d = 0; d < 8; ++d)
    for (const int members : {1, 2}) {
      const auto control = static_cast<char>(0x80 | (members - 1) | 2 | (d << 2));
      write(dir, std::string("wrap_") + damages[d] + "_" + std::to_string(members) + ".bin",
            std::string{control, static_cast<char>(0x5b)} + images);
    }
  write(dir, "wrap_stored_labels.bin", std::string{static_cast<char>(0x80), 0} + labels);
}

// --- .npy ----------------------------------------------------------------------------------

// A .npy file: the dict padded with spaces and a newline to a multiple of 64 bytes overall.
std::string npy(int major, const std::string& dict, std::size_t data_bytes) {
  const std::size_t prefix = major == 1 ? 10 : 12;
  std::string header = dict;
  while ((prefix + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string f("\x93NUMPY", 6);
  f.push_back(static_cast<char>(major));
  f.push_back('\0');
  const std::size_t len = header.size();
  for (std::size_t i = 0; i < prefix - 8; ++i) f.push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
  f += header;
  for (std::size_t i = 0; i < data_bytes; ++i) f.push_back(static_cast<char>(i * 13 % 256));
  return f;
}

std::string dict(const std::string& descr, const std::string& shape, const std::string& fortran = "False") {
  return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
}

void npy_seeds() {
  const std::string dir = "npy";
  const std::string f4 = npy(1, dict("<f4", "(10,)"), 40);
  write(dir, "f4_10.npy", f4);
  write(dir, "f8_6.npy", npy(1, dict("<f8", "(6,)"), 48));
  write(dir, "f4_empty.npy", npy(1, dict("<f4", "(0,)"), 0));
  write(dir, "v2_f4_5.npy", npy(2, dict("<f4", "(5,)"), 20));
  write(dir, "v3_f8_2.npy", npy(3, dict("<f8", "(2,)"), 16));
  write(dir, "fortran_f4_4.npy", npy(1, dict("<f4", "(4,)", "True"), 16));
  write(dir, "double_quoted_keys.npy", npy(1, "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (3L,)}", 12));

  write(dir, "two_dims.npy", npy(1, dict("<f4", "(2, 3)"), 24));
  write(dir, "scalar.npy", npy(1, dict("<f4", "()"), 4));
  write(dir, "int32.npy", npy(1, dict("<i4", "(4,)"), 16));
  write(dir, "big_endian.npy", npy(1, dict(">f4", "(4,)"), 16));
  write(dir, "truncated_data.npy", f4.substr(0, f4.size() - 3));
  write(dir, "trailing_data.npy", f4 + "xx");
  write(dir, "truncated_header.npy", f4.substr(0, 40));
  write(dir, "bad_magic.npy", "\x93NUMPZ" + f4.substr(6));
  std::string v9 = f4;
  v9[6] = 9;
  write(dir, "version9.npy", v9);
  std::string v2short("\x93NUMPY\x02\x00\x10\x00\x00", 11); // cut inside the 4-byte length
  write(dir, "v2_short.npy", v2short);
  // A version 2 header that claims 1 MiB, longer than any weights file's header may be.
  std::string v2long = npy(2, dict("<f4", "(1,)"), 4);
  io::detail::store_le<std::uint32_t>(v2long.data() + 8, 1u << 20);
  write(dir, "v2_long_header.npy", v2long);
  write(dir, "huge_dim.npy", npy(1, dict("<f4", "(18446744073709551615,)"), 8));
  write(dir, "overflow_dim.npy", npy(1, dict("<f4", "(99999999999999999999999,)"), 8));
  write(dir, "no_shape.npy", npy(1, "{'descr': '<f4', 'fortran_order': False, }", 8));
  write(dir, "descr_not_string.npy", npy(1, "{'descr': 4, 'fortran_order': False, 'shape': (1,), }", 4));
  write(dir, "shape_not_tuple.npy", npy(1, dict("<f4", "[1]"), 4));
  write(dir, "csv.npy", "step,d_loss\n1,0.5\n");
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  root = argv[1];
  checkpoint_seeds();
  idx_seeds();
  npy_seeds();
  std::printf("make_corpus: wrote %zu files, %zu bytes, under %s\n", files, total, root.c_str());
}
