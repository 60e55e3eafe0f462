// ONNX Gather (native entry `gather`): Y[o, k, i] = Data[o, idx[k], i].
//
// Elements are moved, never interpreted, in units of 1, 2, 4, 8 or 16 bytes (the plan picks the
// widest unit that divides the bytes of one gathered row, so an embedding row of 64 fp16 values
// moves as 8 16-byte loads). One thread per unit of Y. Negative indices count from the end;
// out-of-range rows are written as zeros (a device kernel cannot report them), as the Triton
// twin does.
#include "common.cuh"

struct alignas(16) u128_t { unsigned long long lo, hi; };

template <typename U, typename I, typename X>
__device__ __forceinline__ void gather_body(const U* __restrict__ data, const I* __restrict__ idx,
                                            U* __restrict__ y, X n, X K, X A, X inner) {
  X e = (X)blockIdx.x * (X)blockDim.x + (X)threadIdx.x;
  if (e >= n) return;
  X i = e % inner;
  X t = e / inner;
  X k = t % K;
  X o = t / K;
  long long j = (long long)idx[k];
  if (j < 0) j += (long long)A;
  U v = {};
  if (j >= 0 && j < (long long)A) v = data[((long long)o * (long long)A + j) * (long long)inner + i];
  y[e] = v;
}

// n: units of Y; K: indices; A: Data's gathered axis; inner: units per gathered row;
// wide: nonzero when Y or Data has 2^31 units or more (64-bit index arithmetic).
#define GATHER(NAME, U, I)                                                                      \
  extern "C" __global__ void NAME(const U* __restrict__ data, const I* __restrict__ idx,       \
                                  U* __restrict__ y, long long n, long long K, long long A,     \
                                  long long inner, int wide) {                                  \
    if (wide)                                                                                   \
      gather_body<U, I, long long>(data, idx, y, n, K, A, inner);                               \
    else                                                                                        \
      gather_body<U, I, unsigned>(data, idx, y, (unsigned)n, (unsigned)K, (unsigned)A,          \
                                  (unsigned)inner);                                             \
  }

GATHER(gather_u8_i32, unsigned char, int)
GATHER(gather_u16_i32, unsigned short, int)
GATHER(gather_u32_i32, unsigned, int)
GATHER(gather_u64_i32, unsigned long long, int)
GATHER(gather_u128_i32, u128_t, int)
GATHER(gather_u8_i64, unsigned char, long long)
GATHER(gather_u16_i64, unsigned short, long long)
GATHER(gather_u32_i64, unsigned, long long)
GATHER(gather_u64_i64, unsigned long long, long long)
GATHER(gather_u128_i64, u128_t, long long)
