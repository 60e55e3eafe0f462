#include "registry.h"

#include "internal.h"

extern "C" const odc_builtin* odc_native_kernels(int32_t* count) {
#define ODC_ENTRY(name) {#name, odc_native_##name},
  static const odc_builtin table[] = {ODC_NATIVE_KERNELS(ODC_ENTRY)};
#undef ODC_ENTRY
  if (count) *count = (int32_t)(sizeof(table) / sizeof(table[0]));
  return table;
}
