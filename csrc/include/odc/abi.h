/* The one C ABI every kernel is called through, whatever produced it (native C++, Numba
 * cfunc, TVM, cubin launcher, OpenCL program). Version 1.
 *
 * A kernel receives tensor descriptors and flat parameter arrays and returns 0 on success,
 * or non-zero after writing a one-line message into `error` (NUL-terminated, at most
 * `error_size` bytes including the NUL). Kernels never throw across this boundary, never
 * allocate output memory (outputs are preallocated by the runtime in its arena), and use only
 * the workspace they asked for in the plan.
 */
#ifndef ODC_ABI_H_
#define ODC_ABI_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ODC_ABI_VERSION 1

/* Element types: the values of ONNX TensorProto.DataType. */
enum odc_dtype {
  ODC_FLOAT32 = 1,
  ODC_UINT8 = 2,
  ODC_INT8 = 3,
  ODC_UINT16 = 4,
  ODC_INT16 = 5,
  ODC_INT32 = 6,
  ODC_INT64 = 7,
  ODC_BOOL = 9,
  ODC_FLOAT16 = 10,
  ODC_FLOAT64 = 11,
  ODC_UINT32 = 12,
  ODC_UINT64 = 13,
  ODC_BFLOAT16 = 16
};

/* Where a buffer lives. Every buffer carries one from day one, so GPU and FPGA targets fit. */
enum odc_device_type { ODC_DEVICE_CPU = 0, ODC_DEVICE_CUDA = 1, ODC_DEVICE_OPENCL = 2 };

#define ODC_MAX_RANK 8

typedef struct odc_tensor {
  void* data;             /* first element; 64-byte aligned when the runtime allocated it */
  int32_t dtype;          /* enum odc_dtype */
  int32_t ndim;           /* 0..ODC_MAX_RANK */
  const int64_t* shape;   /* ndim entries */
  const int64_t* strides; /* ndim entries, in elements; NULL means C-contiguous */
  int32_t device_type;    /* enum odc_device_type */
  int32_t device_id;
} odc_tensor;

typedef struct odc_kernel_args {
  const odc_tensor* inputs; /* omitted optional inputs have data == NULL */
  int32_t num_inputs;
  const odc_tensor* outputs;
  int32_t num_outputs;
  const int64_t* iparams; /* the step's integer parameters, meaning defined per kernel */
  int32_t num_iparams;
  const double* fparams;  /* the step's float parameters, meaning defined per kernel */
  int32_t num_fparams;
  void* workspace;        /* scratch of the size the plan asked for (may be NULL if 0) */
  int64_t workspace_size;
  void* stream;           /* CUDA stream / OpenCL queue; NULL on CPU */
  int32_t num_threads;    /* threads the kernel may use (>= 1) */
} odc_kernel_args;

typedef int32_t (*odc_kernel_fn)(const odc_kernel_args* args, char* error, int64_t error_size);

#ifdef __cplusplus
}
#endif

#endif /* ODC_ABI_H_ */
