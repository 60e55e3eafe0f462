// Element types: names as in the module format, sizes, and the .npy descriptors.
#ifndef ODC_DTYPE_H_
#define ODC_DTYPE_H_

#include <cstdint>
#include <cstring>

#include "odc/abi.h"

namespace odc {

struct DtypeInfo {
  int32_t dtype;
  const char* name;  // module-format name
  int32_t size;      // bytes
  const char* npy;   // .npy descr without byte order, "" when .npy has none
};

inline constexpr DtypeInfo kDtypes[] = {
    {ODC_FLOAT32, "float32", 4, "f4"}, {ODC_FLOAT16, "float16", 2, "f2"},
    {ODC_BFLOAT16, "bfloat16", 2, ""}, {ODC_FLOAT64, "float64", 8, "f8"},
    {ODC_INT8, "int8", 1, "i1"},       {ODC_INT16, "int16", 2, "i2"},
    {ODC_INT32, "int32", 4, "i4"},     {ODC_INT64, "int64", 8, "i8"},
    {ODC_UINT8, "uint8", 1, "u1"},     {ODC_UINT16, "uint16", 2, "u2"},
    {ODC_UINT32, "uint32", 4, "u4"},   {ODC_UINT64, "uint64", 8, "u8"},
    {ODC_BOOL, "bool", 1, "b1"},
};

inline const DtypeInfo* find_dtype(int32_t dtype) {
  for (const DtypeInfo& info : kDtypes) {
    if (info.dtype == dtype) return &info;
  }
  return nullptr;
}

inline const DtypeInfo* find_dtype_by_name(const char* name) {
  for (const DtypeInfo& info : kDtypes) {
    if (std::strcmp(info.name, name) == 0) return &info;
  }
  return nullptr;
}

inline const DtypeInfo* find_dtype_by_npy(const char* descr) {
  for (const DtypeInfo& info : kDtypes) {
    if (info.npy[0] != '\0' && std::strcmp(info.npy, descr) == 0) return &info;
  }
  return nullptr;
}

}  // namespace odc

#endif  // ODC_DTYPE_H_
