// ONNX Resize on H, W of NCHW (native entries `resize_nearest_f32`, `resize_bilinear_f32`).
//
// A block writes a tile of RB output rows (of the N*C*OH rows) x BW output columns (RB * BW
// about 1024 outputs). The source taps of the tile's columns and rows are computed once per
// block into shared memory, in float64 from the double scales (passed as their bit patterns),
// with the native kernel's formulas: nearest indices and bilinear taps are exactly the native
// kernel's (and the Triton twin's). The interpolation runs in fp32: horizontal lerp of the two
// source rows, then vertical.
#include "common.cuh"

#define MAX_BW 1024
#define MAX_RB 256

// Output coordinate -> input coordinate (coordinate modes 0 half_pixel, 1 align_corners,
// 2 asymmetric, 3 pytorch_half_pixel).
__device__ __forceinline__ double to_input(int o, int in, int out, double scale, int coord) {
  double of = (double)o;
  if (coord == 0) return (of + 0.5) / scale - 0.5;
  if (coord == 3) return out > 1 ? (of + 0.5) / scale - 0.5 : 0.0;
  if (coord == 1) return out == 1 ? 0.0 : of * (double)(in - 1) / (double)(out - 1);
  return of / scale;
}

// Nearest modes 0 round_prefer_floor, 1 round_prefer_ceil, 2 floor, 3 ceil; clamped.
__device__ __forceinline__ int nearest_index(double x, int in, int mode) {
  double f = floor(x);
  double r;
  if (mode == 0) r = (x - f == 0.5) ? f : floor(x + 0.5);
  else if (mode == 1) r = (x - f == 0.5) ? f + 1.0 : floor(x + 0.5);
  else if (mode == 2) r = f;
  else r = ceil(x);
  r = fmin(fmax(r, 0.0), (double)in - 1.0);
  return (int)r;
}

__device__ __forceinline__ void taps(int o, int in, int out, double scale, int coord, int& i0,
                                     int& i1, float& w) {
  double x = to_input(o, in, out, scale, coord);
  x = fmin(fmax(x, 0.0), (double)in - 1.0);
  double f = floor(x);
  i0 = (int)f;
  i1 = min(i0 + 1, in - 1);
  w = (float)(x - f);
}

template <typename T, bool BILINEAR>
__device__ __forceinline__ void resize_tile(const T* __restrict__ x, T* __restrict__ y,
                                            long long sh_bits, long long sw_bits, int H, int W,
                                            int OH, int OW, int coord, int mode, int rows,
                                            int log_bw, int rb) {
  __shared__ int cx0[MAX_BW], cx1[MAX_BW];
  __shared__ float cwx[MAX_BW];
  __shared__ int ry0[MAX_RB], ry1[MAX_RB];
  __shared__ float rwy[MAX_RB];
  __shared__ long long rplane[MAX_RB];
  const int bw = 1 << log_bw;
  const int row0 = blockIdx.x * rb;
  const int col0 = blockIdx.y * bw;
  const double sh = __longlong_as_double(sh_bits);
  const double sw = __longlong_as_double(sw_bits);
  for (int t = threadIdx.x; t < bw; t += blockDim.x) {
    int ox = col0 + t;
    if (ox >= OW) break;
    if (BILINEAR) {
      taps(ox, W, OW, sw, coord, cx0[t], cx1[t], cwx[t]);
    } else {
      cx0[t] = nearest_index(to_input(ox, W, OW, sw, coord), W, mode);
    }
  }
  for (int t = threadIdx.x; t < rb; t += blockDim.x) {
    int row = row0 + t;
    if (row >= rows) break;
    int q = row / OH, oy = row - q * OH;
    rplane[t] = (long long)q * H * W;
    if (BILINEAR) {
      taps(oy, H, OH, sh, coord, ry0[t], ry1[t], rwy[t]);
    } else {
      ry0[t] = nearest_index(to_input(oy, H, OH, sh, coord), H, mode);
    }
  }
  __syncthreads();
  const int tile = rb << log_bw;
  for (int t = threadIdx.x; t < tile; t += blockDim.x) {
    int r = t >> log_bw, c = t & (bw - 1);
    int row = row0 + r, ox = col0 + c;
    if (row >= rows || ox >= OW) continue;
    const T* plane = x + rplane[r];
    T out;
    if (BILINEAR) {
      const T* s0 = plane + (long long)ry0[r] * W;
      const T* s1 = plane + (long long)ry1[r] * W;
      float a0 = to_f32(s0[cx0[c]]), a1 = to_f32(s0[cx1[c]]);
      float b0 = to_f32(s1[cx0[c]]), b1 = to_f32(s1[cx1[c]]);
      float wx = cwx[c], wy = rwy[r];
      float h0 = a0 + (a1 - a0) * wx;
      float h1 = b0 + (b1 - b0) * wx;
      out = from_f32<T>(h0 + (h1 - h0) * wy);
    } else {
      out = plane[(long long)ry0[r] * W + cx0[c]];
    }
    y[(long long)row * OW + ox] = out;
  }
}

// rows = N*C*OH (< 2^31); a tile is rb rows x (1 << log_bw) columns; grid (rows/rb, OW/bw).
#define RESIZE_NEAREST(NAME, T)                                                                 \
  extern "C" __global__ void NAME(const T* __restrict__ x, T* __restrict__ y, long long sh_bits, \
                                  long long sw_bits, int H, int W, int OH, int OW, int coord,   \
                                  int mode, int rows, int log_bw, int rb) {                     \
    resize_tile<T, false>(x, y, sh_bits, sw_bits, H, W, OH, OW, coord, mode, rows, log_bw, rb); \
  }
#define RESIZE_BILINEAR(NAME, T)                                                                \
  extern "C" __global__ void NAME(const T* __restrict__ x, T* __restrict__ y, long long sh_bits, \
                                  long long sw_bits, int H, int W, int OH, int OW, int coord,   \
                                  int rows, int log_bw, int rb) {                               \
    resize_tile<T, true>(x, y, sh_bits, sw_bits, H, W, OH, OW, coord, 0, rows, log_bw, rb);     \
  }

RESIZE_NEAREST(resize_nearest_f32, float)
RESIZE_NEAREST(resize_nearest_f16, f16_t)
RESIZE_NEAREST(resize_nearest_bf16, bf16_t)
RESIZE_BILINEAR(resize_bilinear_f32, float)
RESIZE_BILINEAR(resize_bilinear_f16, f16_t)
RESIZE_BILINEAR(resize_bilinear_bf16, bf16_t)
