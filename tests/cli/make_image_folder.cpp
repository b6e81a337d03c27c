// make_image_folder DIR [PER_CLASS]: writes a small folder of images for the image_folder_gan
// test: DIR/discs and DIR/squares, PER_CLASS (default 32) PNGs each, 40 x 36 RGB (not the
// training size, so that loading resizes and crops), a coloured shape on a dark background
// whose colour, place and size vary with the image's number. Deterministic.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <stb_image_write.h>

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: make_image_folder DIR [PER_CLASS]\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const int per_class = argc == 3 ? std::atoi(argv[2]) : 32;
  if (per_class < 1) {
    std::fprintf(stderr, "make_image_folder: PER_CLASS must be at least 1\n");
    return 2;
  }
  const int w = 40, h = 36;
  for (int k = 0; k < 2; ++k) {
    const std::filesystem::path sub = dir / (k == 0 ? "discs" : "squares");
    std::filesystem::create_directories(sub);
    for (int i = 0; i < per_class; ++i) {
      const int cx = 12 + (i * 7) % 16, cy = 10 + (i * 5) % 16, r = 5 + i % 6;
      const unsigned char colour[3] = {static_cast<unsigned char>(80 + (i * 53) % 176),
                                       static_cast<unsigned char>(80 + (i * 97) % 176),
                                       static_cast<unsigned char>(80 + (i * 31) % 176)};
      std::vector<unsigned char> px(static_cast<std::size_t>(w * h * 3));
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const int dx = x - cx, dy = y - cy;
          const bool inside = k == 0 ? dx * dx + dy * dy <= r * r : std::abs(dx) <= r && std::abs(dy) <= r;
          for (int c = 0; c < 3; ++c)
            px[static_cast<std::size_t>((y * w + x) * 3 + c)] =
                inside ? colour[c] : static_cast<unsigned char>(20 + c * 10);
        }
      char name[32];
      std::snprintf(name, sizeof name, "%03d.png", i);
      if (stbi_write_png((sub / name).c_str(), w, h, 3, px.data(), w * 3) == 0) {
        std::fprintf(stderr, "make_image_folder: cannot write %s\n", (sub / name).c_str());
        return 1;
      }
    }
  }
  return 0;
}
