// GlobalAveragePool (native entry `global_avgpool_f32`): Y[p] = mean of plane p (S elements).
//
// One warp per plane: the lanes sum strided elements in fp32, a butterfly of shuffles adds the
// 32 partial sums, lane 0 stores sum * inv_s (inv_s = 1/S rounded to fp32, as the Triton twin).
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void global_avgpool(const T* __restrict__ x, T* __restrict__ y,
                                               long long planes, long long S, float inv_s) {
  long long plane = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (plane >= planes) return;  // whole warps leave together: planes are per warp
  const T* p = x + plane * S;
  float acc = 0.0f;
  for (long long i = lane; i < S; i += 32) acc += to_f32(p[i]);
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) y[plane] = from_f32<T>(acc * inv_s);
}

#define GLOBAL_AVGPOOL(NAME, T)                                                                 \
  extern "C" __global__ void NAME(const T* __restrict__ x, T* __restrict__ y, long long planes, \
                                  long long S, float inv_s) {                                   \
    global_avgpool<T>(x, y, planes, S, inv_s);                                                  \
  }

GLOBAL_AVGPOOL(global_avgpool_f32, float)
GLOBAL_AVGPOOL(global_avgpool_f16, f16_t)
GLOBAL_AVGPOOL(global_avgpool_bf16, bf16_t)
