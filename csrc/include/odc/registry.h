// The builtin-kernel registry: kernels compiled into the runtime (kind "builtin" in the
// module's kernel table, `entry` = the registered name).
//
// Register a kernel once, at static-initialization time, from any C++ file linked into the
// runtime:
//
//     #include "odc/registry.h"
//     static int32_t conv2d_nchw(const odc_kernel_args* args, char* error, int64_t error_size);
//     ODC_REGISTER_KERNEL("conv2d_nchw", conv2d_nchw);
//
// The kernel reads its flat parameters from args->iparams / args->fparams (meaning documented
// next to the kernel), its tensors from args->inputs / args->outputs, and reports failures
// with odc::kernel_error(error, error_size, "...") and a non-zero return. Static libraries of
// kernels must be linked whole (CMake: odc_link_whole_archive) or the registrations are
// dropped by the linker.
#ifndef ODC_REGISTRY_H_
#define ODC_REGISTRY_H_

#include <stdint.h>

#include <string>
#include <vector>

#include "odc/abi.h"

namespace odc {

// Registers `fn` under `name`. Returns false (and keeps the first) when the name is taken or
// the arguments are empty; duplicates are listed by builtin_registration_errors().
bool register_builtin(const char* name, odc_kernel_fn fn) noexcept;

// The kernel registered under `name`, or nullptr.
odc_kernel_fn find_builtin(const std::string& name) noexcept;

// All registered names, sorted.
std::vector<std::string> builtin_names();

// One line per rejected registration (duplicate name, null function).
std::vector<std::string> builtin_registration_errors();

// The instruction set the native builtin kernels dispatch to ("avx512", "avx2", "scalar"), or
// "none" when the runtime was built without them.
const char* builtin_isa() noexcept;

// Writes a printf-style one-line message into a kernel's error buffer and returns 1, so a
// kernel can `return odc::kernel_error(error, error_size, "bad rank %d", n);`.
int32_t kernel_error(char* error, int64_t error_size, const char* format, ...) noexcept
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

}  // namespace odc

#define ODC_REGISTRY_CONCAT_(a, b) a##b
#define ODC_REGISTRY_CONCAT(a, b) ODC_REGISTRY_CONCAT_(a, b)
// Registers `fn` (an odc_kernel_fn) as builtin kernel `name` (a string literal).
#define ODC_REGISTER_KERNEL(name, fn)                                        \
  [[maybe_unused]] static const bool ODC_REGISTRY_CONCAT(odc_registered_kernel_, __LINE__) = \
      ::odc::register_builtin((name), (fn))

#endif  // ODC_REGISTRY_H_
