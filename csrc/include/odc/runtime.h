/* The C API of the ODC runtime: load a compiled module (docs/module-format.md), inspect its
 * signature, run it. Version 1.
 *
 * Every function is safe to call with hostile input and never lets a C++ exception out.
 * Functions returning int32_t give 0 on success and -1 on failure; functions returning a
 * pointer give NULL on failure. After a failure, odc_last_error() returns a one-line message
 * (thread-local; valid until the next failing call on the same thread).
 *
 * A module is not reentrant: concurrent odc_module_run calls on one module are serialized.
 * Different modules run independently.
 */
#ifndef ODC_RUNTIME_H_
#define ODC_RUNTIME_H_

#include <stdint.h>

#include "odc/abi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ODC_MODULE_FORMAT_NAME "onnx-deploy-module"
#define ODC_MODULE_FORMAT_VERSION 3

typedef struct odc_module odc_module;

/* Load flags. */
#define ODC_LOAD_DEFAULT 0u
/* Skip the SHA-256 check of the module's files (sizes are still checked). Faster loads of
 * trusted modules; a damaged file is then caught only by the structural checks. */
#define ODC_LOAD_SKIP_CHECKSUMS 1u
/* CUDA modules: launch every step on each run instead of capturing the plan into a CUDA graph
 * on the first run and replaying it (for debugging; the environment variable
 * ODC_CUDA_GRAPHS=0 does the same). */
#define ODC_LOAD_NO_CUDA_GRAPHS 2u
/* Which target of a multi-target module (format version 3, `--target cpu,cuda`) to load. By
 * default (neither flag): cuda when the NVIDIA driver opens and GPU 0 can run the module's
 * cubins, else cpu (odc_module_target_note says why cuda was skipped). A forced target the
 * module does not carry fails ("module has no cuda target (it carries cpu)"); forcing cuda
 * without a driver fails with the driver error. Single-target modules load as they are; a
 * forced target other than theirs fails the same way. */
#define ODC_LOAD_TARGET_CPU 4u
#define ODC_LOAD_TARGET_CUDA 8u
/* CUDA modules with tactics (alternative launches of a step, see docs/module-format.md): time
 * every step's alternatives on the device at load, keep the fastest and store the choice in
 * the tactics cache ($ODC_CACHE_DIR/cuda_tactics.json). Without it cached choices are used,
 * else each step's own launch. The environment variable ODC_CUDA_TUNE=1 does the same. */
#define ODC_LOAD_CUDA_TUNE 16u

/* A signature entry (an input or output of the module). Pointers stay valid until the module
 * is freed. */
typedef struct odc_value_info {
  const char* name;
  int32_t dtype; /* enum odc_dtype */
  int32_t ndim;
  const int64_t* shape;
  int64_t nbytes;
} odc_value_info;

/* One step of the plan, for profiles and messages. */
typedef struct odc_step_info {
  const char* kernel_name; /* the kernel table's `name`, e.g. "native.conv2d_nchw" */
  const char* node;        /* the ONNX node the step came from ("" when unknown) */
  int32_t kernel_id;
} odc_step_info;

/* Resolves a kernel of kind "python": `entry` is "module:function"; on success stores the
 * odc_kernel_fn in *out and returns 0, else writes a one-line message into `error` and
 * returns non-zero. Installed by the Python bindings; without one, loading a module with a
 * python kernel fails with a "needs a Python interpreter" error. */
typedef int32_t (*odc_python_kernel_resolver)(const char* entry, void* user_data,
                                              odc_kernel_fn* out, char* error,
                                              int64_t error_size);

const char* odc_last_error(void);
int32_t odc_runtime_format_version(void);
/* "float32", ... for a known enum odc_dtype; NULL otherwise. */
const char* odc_dtype_name(int32_t dtype);
/* Element size in bytes; 0 for an unknown dtype. */
int32_t odc_dtype_size(int32_t dtype);

void odc_set_python_kernel_resolver(odc_python_kernel_resolver resolver, void* user_data);

odc_module* odc_module_load(const char* path, uint32_t flags);
void odc_module_free(odc_module* module); /* NULL is fine */

int32_t odc_module_num_inputs(const odc_module* module);  /* -1 on error */
int32_t odc_module_num_outputs(const odc_module* module); /* -1 on error */
int32_t odc_module_input_info(const odc_module* module, int32_t index, odc_value_info* out);
int32_t odc_module_output_info(const odc_module* module, int32_t index, odc_value_info* out);
int32_t odc_module_num_steps(const odc_module* module); /* -1 on error */
int32_t odc_module_step_info(const odc_module* module, int32_t index, odc_step_info* out);
int64_t odc_module_arena_size(const odc_module* module);     /* -1 on error */
int64_t odc_module_workspace_size(const odc_module* module); /* -1 on error */

/* A step's tactics: candidate 0 is the step's own launch, candidate t + 1 its tactics[t].
 * Pointers stay valid until the module is freed. */
typedef struct odc_tactic_info {
  int32_t num_candidates;      /* 1 + the step's tactics (1: nothing to choose) */
  int32_t chosen;              /* the candidate every run launches */
  const char* source;          /* "default", "cache" (an earlier tuning) or "tuned" (this load) */
  const char* key;             /* the step's known-tactics key ("" when the plan has none) */
  const double* seconds;       /* per candidate: device seconds per launch, -1 if not timed */
  const char* const* names;    /* per candidate: configuration name ("" when unnamed) */
} odc_tactic_info;

int32_t odc_module_step_tactics(const odc_module* module, int32_t index, odc_tactic_info* out);

/* Why the tactics cache could not be read or written ("" when it could, or was not needed). */
const char* odc_module_tactics_note(const odc_module* module);

/* Threads each kernel may use (>= 1). The default is the machine's hardware concurrency. */
int32_t odc_module_set_num_threads(odc_module* module, int32_t num_threads);
int32_t odc_module_num_threads(const odc_module* module); /* -1 on error */

/* Runs the plan once. `inputs` / `outputs` are in signature order, one per entry, CPU,
 * C-contiguous (strides NULL or contiguous), dtype and shape equal to the signature; outputs
 * are written in place.
 *
 * A module that targets cuda also takes tensors with device_type ODC_DEVICE_CUDA (device
 * pointers of the module's device, 0): they are copied device-to-device into (inputs) or out of
 * (outputs) the module's staging buffers, with no host round trip. The copies are ordered on the
 * module's stream (odc_module_cuda_stream): data the caller produced on another stream must be
 * complete, or that stream made to wait, before the call. The call returns once the outputs
 * are written (the module's stream is synchronized). */
int32_t odc_module_run(odc_module* module, const odc_tensor* inputs, int32_t num_inputs,
                       const odc_tensor* outputs, int32_t num_outputs);

/* CUDA modules: as odc_module_run, but enqueued on the caller's CUstream `stream` (NULL: the
 * module's own, exactly odc_module_run): the input copies, the plan (graph replay) and the
 * output copies are ordered on it, after the module's previous run on whichever stream. When
 * every input and output is device memory the call returns without waiting: the outputs are
 * ready in `stream`'s order, like any kernel's, and inputs may be overwritten by later work on
 * that stream. With a host input or output it waits for the run, as odc_module_run does.
 * A CPU module refuses a non-NULL stream. */
int32_t odc_module_run_on_stream(odc_module* module, const odc_tensor* inputs,
                                 int32_t num_inputs, const odc_tensor* outputs,
                                 int32_t num_outputs, void* stream);

/* As odc_module_run, and stores each step's wall time in seconds in step_seconds[i]
 * (num_steps entries, see odc_module_num_steps). */
int32_t odc_module_profile(odc_module* module, const odc_tensor* inputs, int32_t num_inputs,
                           const odc_tensor* outputs, int32_t num_outputs,
                           double* step_seconds, int32_t num_steps);

/* The device a module runs on: ODC_DEVICE_CPU or ODC_DEVICE_CUDA; -1 on error. */
int32_t odc_module_device_type(const odc_module* module);

/* The targets the module directory carries, comma-separated in manifest order ("cpu",
 * "cuda", "cpu,cuda"); NULL on error. Valid until the module is freed. */
const char* odc_module_targets(const odc_module* module);

/* Why loading skipped a target the module carries, one line, e.g. "cuda skipped: NVIDIA driver
 * not found (libcuda.so.1)"; "" when nothing was skipped; NULL on error. Valid until the
 * module is freed. */
const char* odc_module_target_note(const odc_module* module);

/* CUDA modules: the CUstream every run is ordered on (stored in *stream; NULL for a CPU
 * module). For DLPack producers: pass it as the consumer stream. */
int32_t odc_module_cuda_stream(const odc_module* module, void** stream);

/* CUDA modules: device memory in the module's context (at least `nbytes`, 256-byte aligned),
 * e.g. for outputs kept on the device; free it with odc_module_cuda_free before freeing the
 * module. */
int32_t odc_module_cuda_alloc(odc_module* module, int64_t nbytes, void** pointer);
int32_t odc_module_cuda_free(odc_module* module, void* pointer);

#ifdef __cplusplus
}
#endif

#endif /* ODC_RUNTIME_H_ */
