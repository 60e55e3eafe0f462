// Test / reference kernels built into the runtime: small, obviously correct, slow. They exist
// so the executor can be tested end to end without the kernel library; the compiler never
// selects them. Registered names start with "test.".
//
//   test.add_f32          out = a + b (same shape; float32)
//   test.relu_f32         out = max(x, 0)
//   test.matmul_f32_naive out[M,N] = a[M,K] @ b[K,N] (+ bias[N], optional 3rd input)
//   test.scale_f32        out = x * fparams[0] + fparams[1]; iparams[0] != 0 -> then relu
//   test.fail             always fails with the message "test failure (iparams[0]=...)"
//   test.copy_workspace   out = x, bouncing through the step's workspace (needs nbytes)
#include <cstring>

#include "odc/abi.h"
#include "odc/registry.h"

namespace odc {
namespace {

int64_t numel(const odc_tensor& t) {
  int64_t n = 1;
  for (int32_t i = 0; i < t.ndim; ++i) n *= t.shape[i];
  return n;
}

bool same_shape(const odc_tensor& a, const odc_tensor& b) {
  if (a.ndim != b.ndim) return false;
  for (int32_t i = 0; i < a.ndim; ++i) {
    if (a.shape[i] != b.shape[i]) return false;
  }
  return true;
}

// Shared checks: counts, float32, present data.
int32_t check(const odc_kernel_args* args, int32_t min_inputs, int32_t max_inputs,
              char* error, int64_t error_size) {
  if (args->num_inputs < min_inputs || args->num_inputs > max_inputs || args->num_outputs != 1) {
    return kernel_error(error, error_size, "expected %d..%d inputs and 1 output, got %d and %d",
                        min_inputs, max_inputs, args->num_inputs, args->num_outputs);
  }
  for (int32_t i = 0; i < args->num_inputs; ++i) {
    const odc_tensor& t = args->inputs[i];
    if (t.data != nullptr && t.dtype != ODC_FLOAT32) {
      return kernel_error(error, error_size, "input %d is not float32", i);
    }
    if (t.data == nullptr && i < min_inputs) {
      return kernel_error(error, error_size, "input %d is missing", i);
    }
  }
  if (args->outputs[0].dtype != ODC_FLOAT32) {
    return kernel_error(error, error_size, "output is not float32");
  }
  return 0;
}

int32_t add_f32(const odc_kernel_args* args, char* error, int64_t error_size) {
  if (int32_t rc = check(args, 2, 2, error, error_size)) return rc;
  const odc_tensor &a = args->inputs[0], &b = args->inputs[1], &out = args->outputs[0];
  if (!same_shape(a, b) || !same_shape(a, out)) {
    return kernel_error(error, error_size, "shapes differ (no broadcasting)");
  }
  const float* a_ptr = static_cast<const float*>(a.data);
  const float* b_ptr = static_cast<const float*>(b.data);
  float* out_ptr = static_cast<float*>(out.data);
  for (int64_t i = 0, n = numel(out); i < n; ++i) out_ptr[i] = a_ptr[i] + b_ptr[i];
  return 0;
}

int32_t relu_f32(const odc_kernel_args* args, char* error, int64_t error_size) {
  if (int32_t rc = check(args, 1, 1, error, error_size)) return rc;
  if (!same_shape(args->inputs[0], args->outputs[0])) {
    return kernel_error(error, error_size, "output shape differs from input");
  }
  const float* x_ptr = static_cast<const float*>(args->inputs[0].data);
  float* out_ptr = static_cast<float*>(args->outputs[0].data);
  for (int64_t i = 0, n = numel(args->outputs[0]); i < n; ++i) {
    out_ptr[i] = x_ptr[i] > 0.0f ? x_ptr[i] : 0.0f;
  }
  return 0;
}

int32_t matmul_f32_naive(const odc_kernel_args* args, char* error, int64_t error_size) {
  if (int32_t rc = check(args, 2, 3, error, error_size)) return rc;
  const odc_tensor &a = args->inputs[0], &b = args->inputs[1], &out = args->outputs[0];
  if (a.ndim != 2 || b.ndim != 2 || out.ndim != 2 || a.shape[1] != b.shape[0] ||
      out.shape[0] != a.shape[0] || out.shape[1] != b.shape[1]) {
    return kernel_error(error, error_size, "expected [M,K] @ [K,N] -> [M,N]");
  }
  const float* bias_ptr = nullptr;
  if (args->num_inputs == 3 && args->inputs[2].data != nullptr) {
    const odc_tensor& bias = args->inputs[2];
    if (bias.ndim != 1 || bias.shape[0] != b.shape[1]) {
      return kernel_error(error, error_size, "bias must be [N]");
    }
    bias_ptr = static_cast<const float*>(bias.data);
  }
  const int64_t M = a.shape[0], K = a.shape[1], N = b.shape[1];
  const float* a_ptr = static_cast<const float*>(a.data);
  const float* b_ptr = static_cast<const float*>(b.data);
  float* out_ptr = static_cast<float*>(out.data);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double sum = bias_ptr ? bias_ptr[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) sum += double(a_ptr[m * K + k]) * b_ptr[k * N + n];
      out_ptr[m * N + n] = float(sum);
    }
  }
  return 0;
}

int32_t scale_f32(const odc_kernel_args* args, char* error, int64_t error_size) {
  if (int32_t rc = check(args, 1, 1, error, error_size)) return rc;
  if (args->num_fparams != 2 || args->num_iparams != 1) {
    return kernel_error(error, error_size, "needs fparams [scale, shift] and iparams [relu]");
  }
  if (!same_shape(args->inputs[0], args->outputs[0])) {
    return kernel_error(error, error_size, "output shape differs from input");
  }
  const float scale = float(args->fparams[0]), shift = float(args->fparams[1]);
  const bool relu = args->iparams[0] != 0;
  const float* x_ptr = static_cast<const float*>(args->inputs[0].data);
  float* out_ptr = static_cast<float*>(args->outputs[0].data);
  for (int64_t i = 0, n = numel(args->outputs[0]); i < n; ++i) {
    float y = x_ptr[i] * scale + shift;
    out_ptr[i] = relu && y < 0.0f ? 0.0f : y;
  }
  return 0;
}

int32_t fail(const odc_kernel_args* args, char* error, int64_t error_size) {
  return kernel_error(error, error_size, "test failure (iparams[0]=%lld)",
                      args->num_iparams > 0 ? static_cast<long long>(args->iparams[0]) : -1LL);
}

int32_t copy_workspace(const odc_kernel_args* args, char* error, int64_t error_size) {
  if (int32_t rc = check(args, 1, 1, error, error_size)) return rc;
  const int64_t nbytes = numel(args->inputs[0]) * 4;
  if (!same_shape(args->inputs[0], args->outputs[0])) {
    return kernel_error(error, error_size, "output shape differs from input");
  }
  if (args->workspace_size < nbytes || (nbytes > 0 && args->workspace == nullptr)) {
    return kernel_error(error, error_size, "workspace %lld < %lld bytes",
                        static_cast<long long>(args->workspace_size),
                        static_cast<long long>(nbytes));
  }
  if (nbytes > 0) {
    std::memcpy(args->workspace, args->inputs[0].data, size_t(nbytes));
    std::memcpy(args->outputs[0].data, args->workspace, size_t(nbytes));
  }
  return 0;
}

}  // namespace

ODC_REGISTER_KERNEL("test.add_f32", add_f32);
ODC_REGISTER_KERNEL("test.relu_f32", relu_f32);
ODC_REGISTER_KERNEL("test.matmul_f32_naive", matmul_f32_naive);
ODC_REGISTER_KERNEL("test.scale_f32", scale_f32);
ODC_REGISTER_KERNEL("test.fail", fail);
ODC_REGISTER_KERNEL("test.copy_workspace", copy_workspace);

}  // namespace odc
