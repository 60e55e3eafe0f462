// The device side of a loaded cuda module (cuda_executor.cpp, cuda_tactics.cpp): the driver,
// the context and stream, device memory and each step's packed launches.
#ifndef ODC_CUDA_STATE_H_
#define ODC_CUDA_STATE_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cuda_driver.h"
#include "module.h"

namespace odc {

struct CudaState {
  const CudaDriver* driver = nullptr;
  CUdevice device = 0;
  CUcontext context = nullptr;
  bool retained = false;
  CUstream stream = nullptr;
  int major = 0, minor = 0;
  std::vector<CUdeviceptr> allocations;  // freed at unload
  CUdeviceptr weights = 0, arena = 0, workspace = 0;
  std::vector<CUdeviceptr> input_staging, output_staging;  // per signature index
  std::vector<int64_t> input_bytes, output_bytes;
  // Pinned host mirrors of the staging buffers: host inputs / outputs pass through them, so
  // the copies to and from the device are truly asynchronous (pageable copies stall the host).
  std::vector<uint8_t*> input_pinned, output_pinned;
  std::vector<void*> pinned;  // freed at unload
  std::map<std::string, CUmodule> modules;  // by cubin file
  std::vector<CUfunction> functions;        // per kernel
  struct Launch {
    CUfunction function = nullptr;
    unsigned grid[3] = {1, 1, 1};
    unsigned block = 32;
    unsigned shared = 0;
    std::vector<uint64_t> slots;  // one 8-byte slot per parameter
    std::vector<void*> params;    // points into slots
  };
  // Per step: every candidate launch (0: the step's own, t + 1: its tactics[t]; built once,
  // never moved: params point into slots) and the one runs use.
  std::vector<std::vector<Launch>> candidates;
  std::vector<Launch*> launches;
  CUgraphExec graph = nullptr;
  std::vector<CUevent> events;  // profile: one before each step and one after the last
  // Recorded at the end of every run on the stream it ran on; the next run's stream waits for
  // it, so runs on different streams never overlap on the staging buffers.
  CUevent done = nullptr;
  bool done_recorded = false;

  void check(CUresult result, const char* call, const std::string& what) const {
    driver->check(result, call, what);
  }
  CUdeviceptr alloc(int64_t bytes, const std::string& what) {
    CUdeviceptr pointer = 0;
    // cuMemAlloc refuses 0 bytes; a small buffer keeps every pointer valid and distinct.
    check(driver->cuMemAlloc(&pointer, size_t(std::max<int64_t>(bytes, 256))),
          "cuMemAlloc", "load: " + what + " (" + std::to_string(bytes) + " bytes)");
    allocations.push_back(pointer);
    return pointer;
  }
  uint8_t* alloc_pinned(int64_t bytes, const std::string& what) {
    void* pointer = nullptr;
    check(driver->cuMemHostAlloc(&pointer, size_t(std::max<int64_t>(bytes, 64)), 0),
          "cuMemHostAlloc", "load: " + what + " (" + std::to_string(bytes) + " bytes)");
    pinned.push_back(pointer);
    return static_cast<uint8_t*>(pointer);
  }
};

}  // namespace odc

#endif  // ODC_CUDA_STATE_H_
