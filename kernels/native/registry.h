/* The native CPU kernel table. The runtime registers every entry under its name (the manifest's
 * `entry` for kind "builtin"); there is no static-initialization magic: call
 * odc_native_kernels() and walk the array. Parameter layouts: kernels/native/params.md. */
#ifndef ODC_NATIVE_REGISTRY_H_
#define ODC_NATIVE_REGISTRY_H_

#include <stdint.h>

#include "odc/abi.h"

#ifdef __cplusplus
extern "C" {
#endif

struct odc_builtin {
  const char* name; /* e.g. "gemm_f32" */
  odc_kernel_fn fn;
};

/* Returns the table and writes its length to *count (if count is not NULL). */
const struct odc_builtin* odc_native_kernels(int32_t* count);

/* Instruction set the kernels dispatched to on this CPU: "avx512", "avx2" or "scalar"
 * (ODC_NATIVE_ISA=scalar|avx2|avx512 in the environment lowers it, for testing). */
const char* odc_native_isa(void);
/* Forces an ISA for testing; returns 0 if this CPU cannot run it (nothing changes then). */
int32_t odc_native_force_isa(const char* name);

#ifdef __cplusplus
}
#endif

#endif /* ODC_NATIVE_REGISTRY_H_ */
