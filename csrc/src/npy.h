// A small, bounds-checked reader and writer of NumPy .npy files (format versions 1-3,
// little-endian, C order), for the runner and the tests.
#ifndef ODC_NPY_H_
#define ODC_NPY_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "util.h"

namespace odc {

struct NpyArray {
  int32_t dtype = 0;  // enum odc_dtype
  std::vector<int64_t> shape;
  AlignedBuffer data;  // 64-byte aligned, numel * itemsize bytes
};

// Parses a whole .npy file image. Throws odc::Error with a one-line reason.
NpyArray parse_npy(const uint8_t* bytes, size_t size);
NpyArray read_npy(const std::string& path);  // errors start with the path
void write_npy(const std::string& path, int32_t dtype, const std::vector<int64_t>& shape,
               const void* data, size_t nbytes);

}  // namespace odc

#endif  // ODC_NPY_H_
