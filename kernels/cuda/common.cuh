// Shared helpers of the NVRTC kernels: element types and float conversions.
//
// NVRTC ships no CUDA headers (no cuda_fp16.h), so the 16-bit float types are plain 16-bit
// patterns converted with PTX (float16) or bit arithmetic (bfloat16, round to nearest even,
// as Triton's cvt.rn.bf16.f32 does; portable to sm_75).
#pragma once

typedef unsigned short u16_t;
struct f16_t { u16_t bits; };
struct bf16_t { u16_t bits; };

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(f16_t v) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
  return f;
}
__device__ __forceinline__ float to_f32(bf16_t v) {
  return __uint_as_float(((unsigned)v.bits) << 16);
}

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ f16_t from_f32<f16_t>(float v) {
  f16_t r;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(v));
  return r;
}
template <> __device__ __forceinline__ bf16_t from_f32<bf16_t>(float v) {
  unsigned u = __float_as_uint(v);
  bf16_t r;
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    r.bits = (u16_t)((u >> 16) | 0x40u);  // NaN stays a (quiet) NaN
  } else {
    r.bits = (u16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  return r;
}
