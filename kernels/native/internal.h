// Internal declarations shared by the native CPU kernels (not part of the ABI).
#ifndef ODC_NATIVE_INTERNAL_H_
#define ODC_NATIVE_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <functional>

#include "odc/abi.h"

namespace odc_native {

// ---------------------------------------------------------------- errors / argument checks
struct Err {
  const char* kernel;
  char* buf;
  int64_t size;
  // Writes "<kernel>: <message>" (one line, truncated to fit) and returns 1.
  int fail(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
};

struct View {  // a checked, C-contiguous float32 CPU tensor
  float* data = nullptr;
  int ndim = 0;
  int64_t shape[ODC_MAX_RANK] = {0};
  int64_t numel = 0;
};

// Checks input/output counts and parameter counts (exact).
int check_counts(const odc_kernel_args* a, int min_in, int max_in, int min_out, int max_out,
                 int n_ip, int n_fp, Err& e);
// Validates a tensor: float32, CPU, 0 <= ndim within [min_rank, max_rank], non-negative dims,
// C-contiguous (strides NULL or equal to the contiguous strides), data non-NULL unless empty.
// If `optional` and t.data == NULL, returns 0 with out->data == NULL.
int get_view(const odc_tensor& t, const char* what, int min_rank, int max_rank, bool optional,
             View* out, Err& e);
// Fails if the two element ranges overlap (identical start allowed when allow_same).
int check_no_overlap(const View& a, const char* an, const View& b, const char* bn,
                     bool allow_same, Err& e);
const char* shape_str(const View& v, char* buf, size_t n);

// ---------------------------------------------------------------- activations
enum Act {
  ACT_NONE = 0, ACT_RELU = 1, ACT_CLIP = 2, ACT_SIGMOID = 3, ACT_SILU = 4, ACT_HARDSWISH = 5,
  ACT_GELU_ERF = 6, ACT_GELU_TANH = 7, ACT_LEAKY_RELU = 8, ACT_TANH = 9, ACT_HARDSIGMOID = 10,
  ACT_EXP = 11, ACT_ABS = 12, ACT_NEG = 13, ACT_SQRT = 14, ACT_RECIPROCAL = 15, ACT_ERF = 16,
  ACT_ELU = 17, ACT_COUNT = 18
};
enum BinOp { BIN_ADD = 0, BIN_SUB = 1, BIN_MUL = 2, BIN_DIV = 3, BIN_MAX = 4, BIN_MIN = 5,
             BIN_COUNT = 6 };

// ---------------------------------------------------------------- per-ISA row operations
// One depthwise convolution (group == C) for RowOps::dw_block: pointers at batch element n.
struct DwArgs {
  const float* x;     // C input planes [H, W]
  const float* w;     // Co filters [KH, KW]
  const float* bias;  // [Co] or NULL
  const float* res;   // Co planes [OH, OW] or NULL
  float* y;           // Co planes [OH, OW]
  int64_t H, W, OH, OW, mult;  // output channel oc reads input plane oc / mult
  int KH, KW, sh, sw, pt, pl, dh, dw;
  int act, res_after_act;
  float act_a, act_b;
};

struct RowOps {
  const char* isa;
  // y = act(alpha*c + beta*bias [+ res]) [+ res]; bias_cs 0: bias[0] broadcast, 1: bias[j];
  // bias/res may be NULL.
  void (*epilogue)(float* c, int64_t n, float alpha, const float* bias, int bias_cs, float beta,
                   const float* res, int act, float a, float b, int res_after_act);
  void (*unary)(const float* x, float* y, int64_t n, int act, float a, float b);
  // y[j] = op(a[j*sa], b[j*sb]), sa/sb in {0,1}
  void (*binary)(const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t n,
                 int op);
  void (*softmax)(const float* x, float* y, int64_t n, int log);
  // normalizes one row; writes mean/invstd
  void (*layernorm)(const float* x, float* y, int64_t n, const float* scale, const float* bias,
                    float eps, float* mean, float* invstd);
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float a, const float* x, float* y, int64_t n);  // y += a*x
  // one depthwise output plane (no bias): x [H,W], w [KH,KW] -> y [OH,OW]
  void (*dw_plane)(const float* x, int64_t H, int64_t W, const float* w, int KH, int KW, int sh,
                   int sw, int pt, int pl, int dh, int dw, float* y, int64_t OH, int64_t OW);
  // Edge / strided micro-kernel: C[m x n] (+)= A[kc x m] * B[kc x n], 1 <= m <= mr, 1 <= n <= nr.
  // A rows are `lda` floats apart (a packed panel: lda = mr), B rows `ldb` floats apart, and every
  // B row has nr readable floats (zero beyond n). Only the m x n block of C is read / written.
  void (*ukr_mn)(int64_t kc, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                 int64_t ldc, int accumulate, int m, int n);
  // Gathers a micro-kernel A panel: dst[k*lda + i] = src[koff[k] + poff[i]] for k < kc, i < m,
  // and 0 for m <= i < lda; lda is a multiple of 8 and >= mr (the conv's implicit im2col).
  void (*pack_gather)(const float* src, const int32_t* koff, int64_t kc, const int32_t* poff,
                      int m, float* dst, int64_t lda);
  // Indirect micro-kernel: ukr_mn with A(k, i) = base[koff[k] + i] read in place (conv rows of
  // a stride-1 convolution over the padded input: no packing).
  void (*ukr_ind)(int64_t kc, const float* base, const int32_t* koff, const float* B, int64_t ldb,
                  float* C, int64_t ldc, int accumulate, int m, int n);
  // Indirect-B micro-kernel: ukr_mn with B(k, j) = bbase[koff[k] + j] read in place (pixels of
  // one output row over the padded input; the last vector's loads are masked to n).
  void (*ukr_indb)(int64_t kc, const float* A, int64_t lda, const float* bbase,
                   const int32_t* koff, float* C, int64_t ldc, int accumulate, int m, int n);
  // Pooling rows: y[r*y_rs + i] = max(y[..], x[r*x_rs + i*stride]) (op 0) or += (op 1), for
  // i < n, r < rows (one tap over a block of output rows).
  void (*pool_rows)(const float* x, int64_t x_rs, int64_t stride, float* y, int64_t y_rs,
                    int64_t n, int64_t rows, int op);
  int mr, nr, kc, mc, nc;
  // Depthwise output channels [c0, c0 + nc) (nc <= 16), output rows [oy0, oy1), with the fused
  // bias + residual + activation: channels are the vector lanes (transposed through scratch
  // slot 2), so tiny planes cost no per-plane overhead.
  void (*dw_block)(const DwArgs& d, int64_t c0, int nc, int64_t oy0, int64_t oy1);
};

const RowOps& ops();  // the best ISA this CPU supports (or ODC_NATIVE_ISA=scalar|avx2|avx512)
// Force an ISA ("scalar", "avx2", "avx512"); returns 0 if unsupported on this CPU.
int force_isa(const char* name);
extern const RowOps kScalarOps;
extern const RowOps kAvx2Ops;
extern const RowOps kAvx512Ops;

// ---------------------------------------------------------------- threads
// Runs fn(tid) for tid in [0, nthreads), on the caller plus pooled workers. Nested or concurrent
// calls run serially on the caller. Returns false if any fn threw (the exception is swallowed).
bool parallel_run(int nthreads, const std::function<void(int)>& fn);
// Splits [0, n) into nthreads contiguous chunks; chunk tid is [*b, *e).
inline void split_range(int64_t n, int nthreads, int tid, int64_t* b, int64_t* e) {
  int64_t q = n / nthreads, r = n % nthreads;
  *b = tid * q + (tid < r ? tid : r);
  *e = *b + q + (tid < r ? 1 : 0);
}
// Threads worth using for `work` units of roughly `grain` cost.
inline int threads_for(int64_t work, int64_t grain, int max_threads) {
  int64_t t = work / (grain > 0 ? grain : 1);
  if (t < 1) t = 1;
  if (t > max_threads) t = max_threads;
  return (int)t;
}

// Per-thread scratch (64-byte aligned, grown on demand, kept for the thread's lifetime); slots
// 0..7 (0, 1 GEMM packing, 2 conv, 3 norm / resize / conv weights, 4 eltwise_program, 5 conv
// padded input, 6..7 free).
float* thread_scratch(int slot, int64_t nfloats);

// ---------------------------------------------------------------- GEMM
struct Epilogue {
  float alpha = 1.f, beta = 1.f;
  const float* bias = nullptr;  // bias(i,j) = bias[i*bias_rs + j*bias_cs]; bias_cs in {0,1}
  int64_t bias_rs = 0, bias_cs = 0;
  const float* res = nullptr;   // res(i,j) = res[i*res_ld + j]
  int64_t res_ld = 0;
  int act = ACT_NONE;
  float act_a = 0.f, act_b = 0.f;
  int res_after_act = 0;
};

// Logical B (K x N), packed on demand into NR-wide panels: dst[p][k][j], zero padded.
struct BSource {
  virtual ~BSource() {}
  virtual void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int nr, float* dst) const = 0;
};
struct BMatrix : BSource {  // B(k,n) = trans ? b[n*ld + k] : b[k*ld + n]
  const float* b;
  int64_t ld;
  bool trans;
  BMatrix(const float* b_, int64_t ld_, bool t) : b(b_), ld(ld_), trans(t) {}
  void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int nr, float* dst) const override;
};

// C[M x N] (ldc) = epilogue(A' * B) with A'(i,k) = transA ? A[k*lda+i] : A[i*lda+k].
// Returns false on allocation failure.
bool sgemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, bool transA,
           const BSource& B, float* C, int64_t ldc, const Epilogue& ep, int nthreads);

// Applies the epilogue to rows [i0,i1) x cols [j0,j1) of C.
void apply_epilogue(float* C, int64_t ldc, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                    const Epilogue& ep);

int parse_act(int64_t code, const char* what, Err& e);

}  // namespace odc_native

// Kernel entry points (the registered table is in registry.cc).
#define ODC_NATIVE_KERNELS(X) \
  X(gemm_f32)                 \
  X(conv2d_f32)               \
  X(conv2d_packed_f32)        \
  X(depthwise_conv2d_f32)     \
  X(conv_transpose2d_f32)     \
  X(maxpool2d_f32)            \
  X(avgpool2d_f32)            \
  X(global_avgpool_f32)       \
  X(softmax_f32)              \
  X(layer_norm_f32)           \
  X(reduce_f32)               \
  X(resize_nearest_f32)       \
  X(resize_bilinear_f32)      \
  X(binary_f32)               \
  X(unary_f32)                \
  X(eltwise_program_f32)      \
  X(lstm_f32)                 \
  X(gru_f32)                  \
  X(copy)                     \
  X(transpose)                \
  X(slice)                    \
  X(concat)                   \
  X(split)                    \
  X(gather)                   \
  X(pad)

#define ODC_DECLARE_KERNEL(name) \
  extern "C" int32_t odc_native_##name(const odc_kernel_args*, char*, int64_t);
ODC_NATIVE_KERNELS(ODC_DECLARE_KERNEL)
#undef ODC_DECLARE_KERNEL

// Defines the exported entry point around `static int name##_impl(const odc_kernel_args*, Err&)`:
// argument-pointer checks, no exceptions across the ABI.
#define ODC_DEFINE_KERNEL(name)                                                              \
  static int name##_impl(const odc_kernel_args* a, ::odc_native::Err& e);                     \
  extern "C" int32_t odc_native_##name(const odc_kernel_args* a, char* error,                 \
                                       int64_t error_size) {                                  \
    ::odc_native::Err e{#name, error, error_size};                                            \
    if (error && error_size > 0) error[0] = '\0';                                             \
    if (!a) return e.fail("args is NULL");                                                    \
    try {                                                                                     \
      return name##_impl(a, e);                                                               \
    } catch (const std::bad_alloc&) {                                                         \
      return e.fail("out of memory");                                                         \
    } catch (...) {                                                                           \
      return e.fail("internal error");                                                        \
    }                                                                                         \
  }                                                                                           \
  static int name##_impl(const odc_kernel_args* a, ::odc_native::Err& e)

#endif  // ODC_NATIVE_INTERNAL_H_
