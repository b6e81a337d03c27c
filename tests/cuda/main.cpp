// The doctest main of the CUDA tests: without a usable CUDA device (no GPU, no driver) a
// test executable prints why and exits with 77, which CTest reports as skipped
// (SKIP_RETURN_CODE), never as passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include <cuda_runtime_api.h>

int main(int argc, char** argv) {
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    std::printf("no CUDA device (%s): CUDA tests skipped\n",
                e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount found 0");
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
