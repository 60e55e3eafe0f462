// A stand-in for libcuda.so.1 (loaded through ODC_CUDA_DRIVER) so that picking a target can be
// tested without a GPU: it reports $FAKE_CUDA_DEVICES devices (default 1) of compute capability
// $FAKE_CUDA_CC ("9.0" by default), read at each call; every other call fails with
// CUDA_ERROR_NOT_SUPPORTED (801), so preparing a cuda module on it fails at its first real call.
#include <cstdlib>
#include <cstring>

namespace {
int env_int(const char* name, int fallback) {
  const char* text = std::getenv(name);
  return text != nullptr && *text != '\0' ? std::atoi(text) : fallback;
}
void compute_capability(int* major, int* minor) {
  const char* text = std::getenv("FAKE_CUDA_CC");
  if (text == nullptr || std::strchr(text, '.') == nullptr) text = "9.0";
  *major = std::atoi(text);
  *minor = std::atoi(std::strchr(text, '.') + 1);
}
}  // namespace

#define ODC_FAKE_FAILS(name) \
  extern "C" __attribute__((visibility("default"))) int name(...) { return 801; }

extern "C" __attribute__((visibility("default"))) int cuInit(unsigned) { return 0; }
extern "C" __attribute__((visibility("default"))) int cuDriverGetVersion(int* v) {
  *v = 13000;
  return 0;
}
extern "C" __attribute__((visibility("default"))) int cuDeviceGetCount(int* count) {
  *count = env_int("FAKE_CUDA_DEVICES", 1);
  return 0;
}
extern "C" __attribute__((visibility("default"))) int cuDeviceGet(int* device, int ordinal) {
  *device = ordinal;
  return 0;
}
extern "C" __attribute__((visibility("default"))) int cuDeviceGetAttribute(int* value, int attribute,
                                                                           int) {
  int major = 0, minor = 0;
  compute_capability(&major, &minor);
  *value = attribute == 75 ? major : attribute == 76 ? minor : 0;
  return 0;
}
extern "C" __attribute__((visibility("default"))) int cuGetErrorName(int error, const char** name) {
  *name = error == 801 ? "CUDA_ERROR_NOT_SUPPORTED" : "CUDA_ERROR_UNKNOWN";
  return 0;
}
extern "C" __attribute__((visibility("default"))) int cuGetErrorString(int, const char** text) {
  *text = "fake driver for tests";
  return 0;
}

ODC_FAKE_FAILS(cuDevicePrimaryCtxRetain)
ODC_FAKE_FAILS(cuDevicePrimaryCtxRelease_v2)
ODC_FAKE_FAILS(cuCtxSetCurrent)
ODC_FAKE_FAILS(cuModuleLoadData)
ODC_FAKE_FAILS(cuModuleUnload)
ODC_FAKE_FAILS(cuModuleGetFunction)
ODC_FAKE_FAILS(cuFuncSetAttribute)
ODC_FAKE_FAILS(cuMemAlloc_v2)
ODC_FAKE_FAILS(cuMemFree_v2)
ODC_FAKE_FAILS(cuMemHostAlloc)
ODC_FAKE_FAILS(cuMemFreeHost)
ODC_FAKE_FAILS(cuMemcpyHtoDAsync_v2)
ODC_FAKE_FAILS(cuMemcpyDtoHAsync_v2)
ODC_FAKE_FAILS(cuMemcpyDtoDAsync_v2)
ODC_FAKE_FAILS(cuMemsetD8Async)
ODC_FAKE_FAILS(cuDeviceGetName)
ODC_FAKE_FAILS(cuStreamCreate)
ODC_FAKE_FAILS(cuStreamDestroy_v2)
ODC_FAKE_FAILS(cuStreamSynchronize)
ODC_FAKE_FAILS(cuStreamWaitEvent)
ODC_FAKE_FAILS(cuLaunchKernel)
ODC_FAKE_FAILS(cuStreamBeginCapture_v2)
ODC_FAKE_FAILS(cuStreamEndCapture)
ODC_FAKE_FAILS(cuGraphInstantiateWithFlags)
ODC_FAKE_FAILS(cuGraphLaunch)
ODC_FAKE_FAILS(cuGraphExecDestroy)
ODC_FAKE_FAILS(cuGraphDestroy)
ODC_FAKE_FAILS(cuEventCreate)
ODC_FAKE_FAILS(cuEventDestroy_v2)
ODC_FAKE_FAILS(cuEventRecord)
ODC_FAKE_FAILS(cuEventSynchronize)
ODC_FAKE_FAILS(cuEventElapsedTime_v2)
