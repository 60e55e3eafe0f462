// The .npy reader: valid files of every dtype and header version, and hostile bytes (must
// throw odc::Error with a reason, never crash; run under ASan/UBSan in CI).
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "npy.h"
#include "odc/abi.h"

namespace {

std::vector<uint8_t> npy_bytes(const std::string& header_dict, size_t data_bytes, int major = 1) {
  std::string header = header_dict;
  const size_t preamble = major == 1 ? 10 : 12;
  header.append((64 - (preamble + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', uint8_t(major), 0};
  const size_t n = header.size();
  out.push_back(uint8_t(n & 0xff));
  out.push_back(uint8_t(n >> 8));
  if (major != 1) {
    out.push_back(uint8_t(n >> 16));
    out.push_back(uint8_t(n >> 24));
  }
  out.insert(out.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(uint8_t(i));
  return out;
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    odc::parse_npy(bytes.data(), bytes.size());
  } catch (const odc::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

int main() {
  {
    auto bytes = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    odc::NpyArray a = odc::parse_npy(bytes.data(), bytes.size());
    CHECK(a.dtype == ODC_FLOAT32);
    CHECK((a.shape == std::vector<int64_t>{2, 3}));
    CHECK(a.data.size() == 24);
    CHECK(reinterpret_cast<uintptr_t>(a.data.data()) % 64 == 0);
    CHECK(a.data.data()[5] == 5);
  }
  {
    auto bytes = npy_bytes("{'descr': '|b1', 'fortran_order': False, 'shape': (), }", 1, 2);
    odc::NpyArray a = odc::parse_npy(bytes.data(), bytes.size());
    CHECK(a.dtype == ODC_BOOL && a.shape.empty());
  }
  {
    auto bytes = npy_bytes("{'shape': (4,), 'fortran_order': True, 'descr': '<i8'}", 32, 3);
    odc::NpyArray a = odc::parse_npy(bytes.data(), bytes.size());
    CHECK(a.dtype == ODC_INT64 && (a.shape == std::vector<int64_t>{4}));
  }
  CHECK_CONTAINS(error_of({}), "not a .npy file");
  CHECK_CONTAINS(error_of(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20)),
                 "data is 20 bytes, shape [2, 3] float32 needs 24");
  CHECK_CONTAINS(error_of(npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", 4)),
                 "little-endian");
  CHECK_CONTAINS(error_of(npy_bytes("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", 8)),
                 "dtype '<c8' is not supported");
  CHECK_CONTAINS(error_of(npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16)),
                 "fortran_order");
  CHECK_CONTAINS(error_of(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 0)),
                 "overflows int64");
  CHECK_CONTAINS(error_of(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 0)),
                 "overflows");
  CHECK_CONTAINS(error_of(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4)),
                 "rank exceeds 8");
  CHECK_CONTAINS(error_of(npy_bytes("{'descr': '<f4', 'shape': (1,), }", 4)), "needs 'descr'");
  CHECK_CONTAINS(error_of(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4)),
                 "unexpected key 'x'");
  {
    auto bytes = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
    bytes[8] = 0xff;  // header length past the end
    bytes[9] = 0xff;
    CHECK_CONTAINS(error_of(bytes), "truncated .npy header");
    bytes[6] = 9;
    CHECK_CONTAINS(error_of(bytes), "format version 9");
  }
  {  // round trip through the writer
    const float values[3] = {1.5f, -2.0f, 3.25f};
    const std::string path = "test_npy_roundtrip.npy";
    odc::write_npy(path, ODC_FLOAT32, {3}, values, sizeof(values));
    odc::NpyArray a = odc::read_npy(path);
    CHECK(a.dtype == ODC_FLOAT32 && (a.shape == std::vector<int64_t>{3}));
    CHECK(std::memcmp(a.data.data(), values, sizeof(values)) == 0);
    std::remove(path.c_str());
    CHECK_CONTAINS([&] {
      try {
        odc::read_npy("no/such/file.npy");
      } catch (const odc::Error& e) {
        return std::string(e.what());
      }
      return std::string();
    }(), "no/such/file.npy: missing file");
  }
  {  // random damage: every outcome is a parse or an odc::Error
    std::mt19937 rng(42);
    const auto pristine =
        npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }", 60);
    int errors = 0;
    for (int trial = 0; trial < 20000; ++trial) {
      auto bytes = pristine;
      const int edits = 1 + int(rng() % 4);
      for (int e = 0; e < edits; ++e) bytes[rng() % bytes.size()] = uint8_t(rng());
      if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
      errors += error_of(bytes).empty() ? 0 : 1;
    }
    CHECK(errors > 1000);
  }
  return odc_test::finish("test_npy");
}
