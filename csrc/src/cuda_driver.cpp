// Opening the CUDA driver at run time: dlopen, one dlsym per call of the table (trying the
// versioned symbol cuda.h maps the call to first, then older names), cuInit once.
#include "cuda_driver.h"

#include <dlfcn.h>

#include <cstdlib>
#include <memory>
#include <mutex>

#include "util.h"

namespace odc {
namespace {

struct DriverState {
  CudaDriver driver{};
  void* handle = nullptr;
};

template <typename Fn>
void resolve(void* handle, Fn* slot, std::initializer_list<const char*> names,
             const std::string& library) {
  for (const char* name : names) {
    if (void* symbol = ::dlsym(handle, name)) {
      *slot = reinterpret_cast<Fn>(symbol);
      return;
    }
  }
  throw Error("module targets cuda: the NVIDIA driver " + library + " is too old (no " +
              *names.begin() + "); update the driver");
}

void open_driver(DriverState* state) {
  const char* override_path = std::getenv("ODC_CUDA_DRIVER");
  const std::string library =
      override_path != nullptr && *override_path != '\0' ? override_path : "libcuda.so.1";
  void* handle = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    throw Error("module targets cuda: NVIDIA driver not found (" + library + ")");
  }
  state->handle = handle;  // never closed: the driver lives as long as the process
  CudaDriver& d = state->driver;
  d.library = library;
#define ODC_RESOLVE(field, ...) resolve(handle, &d.field, {__VA_ARGS__}, library)
  ODC_RESOLVE(cuGetErrorName, "cuGetErrorName");
  ODC_RESOLVE(cuGetErrorString, "cuGetErrorString");
  ODC_RESOLVE(cuInit, "cuInit");
  ODC_RESOLVE(cuDriverGetVersion, "cuDriverGetVersion");
  ODC_RESOLVE(cuDeviceGetCount, "cuDeviceGetCount");
  ODC_RESOLVE(cuDeviceGet, "cuDeviceGet");
  ODC_RESOLVE(cuDeviceGetAttribute, "cuDeviceGetAttribute");
  ODC_RESOLVE(cuDeviceGetName, "cuDeviceGetName");
  ODC_RESOLVE(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  ODC_RESOLVE(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2",
              "cuDevicePrimaryCtxRelease");
  ODC_RESOLVE(cuCtxSetCurrent, "cuCtxSetCurrent");
  ODC_RESOLVE(cuModuleLoadData, "cuModuleLoadData");
  ODC_RESOLVE(cuModuleUnload, "cuModuleUnload");
  ODC_RESOLVE(cuModuleGetFunction, "cuModuleGetFunction");
  ODC_RESOLVE(cuFuncSetAttribute, "cuFuncSetAttribute");
  ODC_RESOLVE(cuMemAlloc, "cuMemAlloc_v2");
  ODC_RESOLVE(cuMemFree, "cuMemFree_v2");
  ODC_RESOLVE(cuMemHostAlloc, "cuMemHostAlloc");
  ODC_RESOLVE(cuMemFreeHost, "cuMemFreeHost");
  ODC_RESOLVE(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
  ODC_RESOLVE(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
  ODC_RESOLVE(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
  ODC_RESOLVE(cuMemsetD8Async, "cuMemsetD8Async");
  ODC_RESOLVE(cuStreamCreate, "cuStreamCreate");
  ODC_RESOLVE(cuStreamDestroy, "cuStreamDestroy_v2", "cuStreamDestroy");
  ODC_RESOLVE(cuStreamSynchronize, "cuStreamSynchronize");
  ODC_RESOLVE(cuStreamWaitEvent, "cuStreamWaitEvent");
  ODC_RESOLVE(cuLaunchKernel, "cuLaunchKernel");
  ODC_RESOLVE(cuStreamBeginCapture, "cuStreamBeginCapture_v2");
  ODC_RESOLVE(cuStreamEndCapture, "cuStreamEndCapture");
  ODC_RESOLVE(cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
  ODC_RESOLVE(cuGraphLaunch, "cuGraphLaunch");
  ODC_RESOLVE(cuGraphExecDestroy, "cuGraphExecDestroy");
  ODC_RESOLVE(cuGraphDestroy, "cuGraphDestroy");
  ODC_RESOLVE(cuEventCreate, "cuEventCreate");
  ODC_RESOLVE(cuEventDestroy, "cuEventDestroy_v2", "cuEventDestroy");
  ODC_RESOLVE(cuEventRecord, "cuEventRecord");
  ODC_RESOLVE(cuEventSynchronize, "cuEventSynchronize");
  ODC_RESOLVE(cuEventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime");
#undef ODC_RESOLVE
  d.check(d.cuInit(0), "cuInit", "module targets cuda");
}

}  // namespace

std::string CudaDriver::describe(CUresult result) const {
  const char* name = nullptr;
  const char* text = nullptr;
  if (cuGetErrorName == nullptr || cuGetErrorName(result, &name) != kCudaSuccess) name = nullptr;
  if (cuGetErrorString == nullptr || cuGetErrorString(result, &text) != kCudaSuccess) text = nullptr;
  std::string out = name ? name : "CUDA error " + std::to_string(result);
  if (text != nullptr) out += std::string(" (") + text + ")";
  return one_line(out);
}

void CudaDriver::check(CUresult result, const char* call, const std::string& what) const {
  if (result != kCudaSuccess) throw Error(what + ": " + call + ": " + describe(result));
}

const CudaDriver& cuda_driver() {
  // Success is kept for the life of the process; a failure is not, so a later call (after the
  // environment changed, say) tries again.
  static std::mutex mutex;
  static DriverState* opened = nullptr;
  std::lock_guard<std::mutex> lock(mutex);
  if (opened == nullptr) {
    auto state = std::make_unique<DriverState>();
    open_driver(state.get());
    opened = state.release();  // never freed: kernels may run until the process ends
  }
  return opened->driver;
}

}  // namespace odc
