// Tests for the native CPU kernels: each kernel against a naive double-precision reference on
// random shapes (odd sizes, groups, padding, strides, dilations, broadcasting), plus argument
// checking (every bad call must return non-zero with a one-line message, never crash).
//
// Tolerances: results are compared with |got - ref| <= atol + rtol * |ref|.
//  * GEMM / conv: the kernels accumulate K products in fp32 (blocked, FMA) while the reference
//    uses double; the rounding error of a K-term fp32 dot product is bounded by ~K * 2^-24 *
//    sum|a_k b_k|, with inputs in [-1, 1] that is < K * 6e-8, so atol = 1e-5 + 2e-7 * K.
//  * Activations use polynomial exp/erf/tanh approximations (relative error ~2e-7, erf absolute
//    error 1.5e-7), so atol 1e-5 / rtol 1e-5 on O(1) values; exp is compared relatively.
//  * Softmax / layer norm / pooling / resize: a few fp32 roundings per element: 1e-5.
// Usage: test_native_kernels [--isa scalar|avx2|avx512]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "internal.h"
#include "registry.h"

namespace {

int g_failures = 0, g_checks = 0;
std::mt19937 rng(12345);

#define CHECK(cond, ...)                                             \
  do {                                                               \
    ++g_checks;                                                      \
    if (!(cond)) {                                                   \
      ++g_failures;                                                  \
      std::printf("FAIL %s:%d: ", __FILE__, __LINE__);               \
      std::printf(__VA_ARGS__);                                      \
      std::printf("\n");                                             \
    }                                                                \
  } while (0)

int64_t ri(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }
float rf(float lo = -1.f, float hi = 1.f) {
  return std::uniform_real_distribution<float>(lo, hi)(rng);
}

struct T {
  std::vector<int64_t> shape;
  std::vector<float> v;
  T() {}
  explicit T(std::vector<int64_t> s, bool random = true, float lo = -1.f, float hi = 1.f)
      : shape(std::move(s)) {
    v.resize(numel());
    for (auto& x : v) x = random ? rf(lo, hi) : 0.f;
  }
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  odc_tensor t() {
    odc_tensor o;
    o.data = v.empty() ? nullptr : v.data();
    o.dtype = ODC_FLOAT32;
    o.ndim = (int32_t)shape.size();
    o.shape = shape.data();
    o.strides = nullptr;
    o.device_type = ODC_DEVICE_CPU;
    o.device_id = 0;
    return o;
  }
};
odc_tensor null_tensor() {
  odc_tensor o;
  std::memset(&o, 0, sizeof o);
  return o;
}

odc_kernel_fn find(const char* name) {
  int32_t n = 0;
  const odc_builtin* t = odc_native_kernels(&n);
  for (int i = 0; i < n; ++i)
    if (!std::strcmp(t[i].name, name)) return t[i].fn;
  std::printf("kernel %s not registered\n", name);
  std::exit(2);
}

struct Call {
  std::vector<odc_tensor> in, out;
  std::vector<int64_t> ip;
  std::vector<double> fp;
  int threads = 1;
  void* ws = nullptr;
  int64_t ws_size = 0;
  char err[512];
  int run(const char* name) {
    odc_kernel_args a;
    a.inputs = in.data();
    a.num_inputs = (int32_t)in.size();
    a.outputs = out.data();
    a.num_outputs = (int32_t)out.size();
    a.iparams = ip.data();
    a.num_iparams = (int32_t)ip.size();
    a.fparams = fp.data();
    a.num_fparams = (int32_t)fp.size();
    a.workspace = ws;
    a.workspace_size = ws_size;
    a.stream = nullptr;
    a.num_threads = threads;
    std::memset(err, 0, sizeof err);
    return find(name)(&a, err, sizeof err);
  }
};

bool close_all(const char* what, const std::vector<float>& got, const std::vector<double>& ref,
               double atol, double rtol) {
  ++g_checks;
  if (got.size() != ref.size()) {
    ++g_failures;
    std::printf("FAIL %s: size %zu vs %zu\n", what, got.size(), ref.size());
    return false;
  }
  double worst = 0;
  size_t wi = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double d = std::fabs((double)got[i] - ref[i]);
    double lim = atol + rtol * std::fabs(ref[i]);
    bool bad = !(d <= lim) && !(std::isinf(ref[i]) && got[i] == ref[i]);
    if (std::isnan(ref[i]) && std::isnan(got[i])) bad = false;
    if (bad && d / lim > worst) worst = d / lim, wi = i;
    if (bad && worst == 0) worst = 1e300, wi = i;
  }
  if (worst > 0) {
    ++g_failures;
    std::printf("FAIL %s: element %zu got %.9g ref %.9g (%.3g x tolerance)\n", what, wi,
                (double)got[wi], ref[wi], worst);
    return false;
  }
  return true;
}

// ------------------------------------------------------------------ reference activations
double ref_act(double x, int act, double a, double b) {
  switch (act) {
    case 0: return x;
    case 1: return x > 0 ? x : 0;
    case 2: return std::min(std::max(x, a), b);
    case 3: return 1 / (1 + std::exp(-x));
    case 4: return x / (1 + std::exp(-x));
    case 5: return x * std::min(std::max(x / 6 + 0.5, 0.0), 1.0);
    case 6: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case 7: return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case 8: return x >= 0 ? x : a * x;
    case 9: return std::tanh(x);
    case 10: return std::min(std::max(a * x + b, 0.0), 1.0);
    case 11: return std::exp(x);
    case 12: return std::fabs(x);
    case 13: return -x;
    case 14: return std::sqrt(x);
    case 15: return 1 / x;
    case 16: return std::erf(x);
    case 17: return x > 0 ? x : a * (std::exp(x) - 1);
  }
  return x;
}
const int kActs = 18;
void act_params(int act, double* a, double* b) {
  *a = 0, *b = 0;
  if (act == 2) *a = -0.3, *b = 0.4;
  if (act == 8) *a = 0.1;
  if (act == 10) *a = 0.2, *b = 0.5;
  if (act == 17) *a = 0.7;
}

// ------------------------------------------------------------------ GEMM
void test_gemm_case(int64_t M, int64_t N, int64_t K, int ta, int tb, int bias_mode, int res_mode,
                    int act, int threads, float alpha, float beta) {
  T A(ta ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K});
  T B(tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N});
  T C;
  if (bias_mode == 1) C = T(std::vector<int64_t>{});
  if (bias_mode == 2) C = T({N});
  if (bias_mode == 3) C = T({M, 1});
  if (bias_mode == 4) C = T({M, N});
  if (bias_mode == 5) C = T({1, 1});
  T R;
  if (res_mode) R = T({M, N});
  T Y({M, N}, false);
  double aa, ab;
  act_params(act, &aa, &ab);
  Call c;
  c.in = {A.t(), B.t(), bias_mode ? C.t() : null_tensor(), res_mode ? R.t() : null_tensor()};
  c.out = {Y.t()};
  c.ip = {ta, tb, act, res_mode == 2};
  c.fp = {alpha, beta, aa, ab};
  c.threads = threads;
  int rc = c.run("gemm_f32");
  CHECK(rc == 0, "gemm rc=%d %s", rc, c.err);
  std::vector<double> ref((size_t)(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += (double)(ta ? A.v[k * M + i] : A.v[i * K + k]) *
             (double)(tb ? B.v[j * K + k] : B.v[k * N + j]);
      s *= alpha;
      double bv = 0;
      if (bias_mode == 1 || bias_mode == 5) bv = C.v[0];
      if (bias_mode == 2) bv = C.v[j];
      if (bias_mode == 3) bv = C.v[i];
      if (bias_mode == 4) bv = C.v[i * N + j];
      s += beta * bv;
      double r = res_mode ? R.v[i * N + j] : 0;
      if (res_mode == 1) s += r;
      s = ref_act(s, act, aa, ab);
      if (res_mode == 2) s += r;
      ref[i * N + j] = s;
    }
  char what[256];
  std::snprintf(what, sizeof what, "gemm M=%lld N=%lld K=%lld ta=%d tb=%d bias=%d res=%d act=%d th=%d",
                (long long)M, (long long)N, (long long)K, ta, tb, bias_mode, res_mode, act, threads);
  close_all(what, Y.v, ref, 1e-5 + 2e-7 * K * std::fabs(alpha) + 1e-5, 1e-5);
}

void test_gemm() {
  // edges of every micro-tile size (MR 4/6/14, NR 8/16/32), blocking (KC 256, MC 128..168)
  const int64_t sizes[] = {1, 2, 5, 7, 13, 14, 15, 17, 31, 33, 64};
  for (int it = 0; it < 60; ++it) {
    int64_t M = sizes[ri(0, 10)], N = sizes[ri(0, 10)], K = sizes[ri(0, 10)];
    test_gemm_case(M, N, K, (int)ri(0, 1), (int)ri(0, 1), (int)ri(0, 5), (int)ri(0, 2),
                   (int)ri(0, 10), (int)ri(1, 3), it % 3 ? 1.f : 0.7f, it % 4 ? 1.f : -0.5f);
  }
  test_gemm_case(200, 300, 257, 0, 0, 2, 1, 1, 2, 1.f, 1.f);   // > KC, > MC
  test_gemm_case(181, 97, 600, 1, 1, 3, 2, 4, 3, 1.f, 1.f);
  test_gemm_case(9, 2100, 40, 0, 1, 4, 0, 0, 2, 1.f, 1.f);     // > NC
  test_gemm_case(340, 50, 513, 1, 0, 0, 0, 6, 2, 1.f, 1.f);
  test_gemm_case(3, 1000, 700, 0, 1, 2, 0, 0, 2, 1.f, 1.f);    // small-M path, transB
  test_gemm_case(4, 777, 300, 1, 0, 2, 1, 1, 2, 1.f, 1.f);     // small-M path, no transB
  test_gemm_case(5, 6, 0, 0, 0, 2, 1, 3, 1, 1.f, 1.f);         // K = 0
  test_gemm_case(0, 6, 5, 0, 0, 0, 0, 0, 1, 1.f, 1.f);         // empty
  for (int act = 0; act < 11; ++act) test_gemm_case(20, 40, 30, 0, 0, 2, 0, act, 1, 1.f, 1.f);

  // batched MatMul with broadcasting: A [2,3,M,K] @ B [3,K,N]; and A [4,M,K] @ B [K,N] (folded)
  for (int variant = 0; variant < 3; ++variant) {
    const int64_t M = 19, K = 23, N = 37;
    T A, B;
    std::vector<int64_t> ys;
    if (variant == 0) A = T({2, 3, M, K}), B = T({3, K, N}), ys = {2, 3, M, N};
    if (variant == 1) A = T({4, M, K}), B = T({K, N}), ys = {4, M, N};
    if (variant == 2) A = T({M, K}), B = T({2, 1, K, N}), ys = {2, 1, M, N};
    T Y(ys, false), bias({N}), R(ys);
    Call c;
    c.in = {A.t(), B.t(), bias.t(), R.t()};
    c.out = {Y.t()};
    c.ip = {0, 0, 1, 0};
    c.fp = {1, 1, 0, 0};
    c.threads = 2;
    int rc = c.run("gemm_f32");
    CHECK(rc == 0, "batched gemm rc=%d %s", rc, c.err);
    const int64_t nb = Y.numel() / (M * N);
    const int64_t na = A.numel() / (M * K), nbb = B.numel() / (K * N);
    std::vector<double> ref((size_t)Y.numel());
    for (int64_t b = 0; b < nb; ++b) {
      int64_t ab = 0, bb = 0;
      if (variant == 0) ab = b, bb = b % 3;
      if (variant == 1) ab = b, bb = 0;
      if (variant == 2) ab = 0, bb = b;
      (void)na, (void)nbb;
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double s = bias.v[j];
          for (int64_t k = 0; k < K; ++k)
            s += (double)A.v[ab * M * K + i * K + k] * B.v[bb * K * N + k * N + j];
          s += R.v[b * M * N + i * N + j];
          ref[b * M * N + i * N + j] = s > 0 ? s : 0;
        }
    }
    close_all("batched gemm", Y.v, ref, 1e-5 + 2e-7 * K, 1e-5);
  }
}

// ------------------------------------------------------------------ conv
struct ConvCase {
  int64_t N, C, H, W, Co, KH, KW, sh, sw, pt, pl, pb, pr, dh, dw, g;
};
int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t p0, int64_t p1, int64_t d) {
  return (in + p0 + p1 - ((k - 1) * d + 1)) / s + 1;
}

void ref_conv(const ConvCase& k, const T& X, const T& Wt, const T* B, const T* R, int act,
              double aa, double ab, int rafter, std::vector<double>& out) {
  const int64_t OH = conv_out(k.H, k.KH, k.sh, k.pt, k.pb, k.dh);
  const int64_t OW = conv_out(k.W, k.KW, k.sw, k.pl, k.pr, k.dw);
  const int64_t Cg = k.C / k.g, Mg = k.Co / k.g;
  out.assign((size_t)(k.N * k.Co * OH * OW), 0);
  for (int64_t n = 0; n < k.N; ++n)
    for (int64_t oc = 0; oc < k.Co; ++oc) {
      const int64_t g = oc / Mg;
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          double s = B ? B->v[oc] : 0;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t ky = 0; ky < k.KH; ++ky)
              for (int64_t kx = 0; kx < k.KW; ++kx) {
                int64_t iy = oy * k.sh - k.pt + ky * k.dh, ix = ox * k.sw - k.pl + kx * k.dw;
                if (iy < 0 || iy >= k.H || ix < 0 || ix >= k.W) continue;
                s += (double)X.v[((n * k.C + g * Cg + c) * k.H + iy) * k.W + ix] *
                     Wt.v[((oc * Cg + c) * k.KH + ky) * k.KW + kx];
              }
          const int64_t o = ((n * k.Co + oc) * OH + oy) * OW + ox;
          const double r = R ? R->v[o] : 0;
          if (!rafter) s += r;
          s = ref_act(s, act, aa, ab);
          if (rafter) s += r;
          out[o] = s;
        }
    }
}

void run_conv_case(const char* kernel, const ConvCase& k, int threads) {
  const int64_t OH = conv_out(k.H, k.KH, k.sh, k.pt, k.pb, k.dh);
  const int64_t OW = conv_out(k.W, k.KW, k.sw, k.pl, k.pr, k.dw);
  T X({k.N, k.C, k.H, k.W}), Wt({k.Co, k.C / k.g, k.KH, k.KW}), B({k.Co}),
      R({k.N, k.Co, OH, OW}), Y({k.N, k.Co, OH, OW}, false);
  const bool has_b = ri(0, 3) > 0, has_r = ri(0, 2) == 0;
  const int act = (int)ri(0, 7), rafter = (int)ri(0, 1);
  double aa, ab;
  act_params(act, &aa, &ab);
  Call c;
  c.in = {X.t(), Wt.t(), has_b ? B.t() : null_tensor(), has_r ? R.t() : null_tensor()};
  c.out = {Y.t()};
  c.ip = {k.sh, k.sw, k.pt, k.pl, k.pb, k.pr, k.dh, k.dw, k.g, act, rafter};
  T Wp;
  if (std::strcmp(kernel, "conv2d_packed_f32") == 0) {  // the documented compile-time packing
    const int64_t Mg = k.Co / k.g, Kg = k.C / k.g * k.KH * k.KW, NQ = (Mg + 31) / 32;
    Wp = T({k.g, NQ, Kg, 32}, false);
    for (int64_t g = 0; g < k.g; ++g)
      for (int64_t q = 0; q < NQ; ++q)
        for (int64_t kk = 0; kk < Kg; ++kk)
          for (int64_t j = 0; j < 32 && q * 32 + j < Mg; ++j)
            Wp.v[((g * NQ + q) * Kg + kk) * 32 + j] = Wt.v[(g * Mg + q * 32 + j) * Kg + kk];
    c.in[1] = Wp.t();
    c.ip.insert(c.ip.end(), {k.Co, k.KH, k.KW});
  }
  c.fp = {aa, ab};
  c.threads = threads;
  int rc = c.run(kernel);
  char what[300];
  std::snprintf(what, sizeof what,
                "%s N=%lld C=%lld H=%lld W=%lld Co=%lld k=%lldx%lld s=%lld,%lld p=%lld,%lld,%lld,%lld "
                "d=%lld,%lld g=%lld act=%d th=%d",
                kernel, (long long)k.N, (long long)k.C, (long long)k.H, (long long)k.W,
                (long long)k.Co, (long long)k.KH, (long long)k.KW, (long long)k.sh,
                (long long)k.sw, (long long)k.pt, (long long)k.pl, (long long)k.pb,
                (long long)k.pr, (long long)k.dh, (long long)k.dw, (long long)k.g, act, threads);
  CHECK(rc == 0, "%s rc=%d %s", what, rc, c.err);
  std::vector<double> ref;
  ref_conv(k, X, Wt, has_b ? &B : nullptr, has_r ? &R : nullptr, act, aa, ab, rafter, ref);
  close_all(what, Y.v, ref, 1e-5 + 2e-7 * (k.C / k.g) * k.KH * k.KW + 1e-5, 1e-5);
}

void test_conv() {
  for (int it = 0; it < 60; ++it) {
    ConvCase k;
    k.g = it % 4 == 0 ? ri(2, 4) : 1;
    k.N = ri(1, 2);
    k.C = k.g * ri(1, 9);
    k.Co = k.g * ri(1, 20);
    k.KH = ri(1, 5), k.KW = ri(1, 5);
    k.sh = ri(1, 3), k.sw = ri(1, 3), k.dh = ri(1, 2), k.dw = ri(1, 2);
    k.pt = ri(0, 2), k.pl = ri(0, 2), k.pb = ri(0, 2), k.pr = ri(0, 2);
    k.H = ri((k.KH - 1) * k.dh + 1, 20), k.W = ri((k.KW - 1) * k.dw + 1, 40);
    run_conv_case("conv2d_f32", k, (int)ri(1, 3));
    run_conv_case("conv2d_packed_f32", k, (int)ri(1, 3));
  }
  // tiny spatial extents (rows of the micro-kernel < MR) and wide channel counts
  run_conv_case("conv2d_packed_f32", ConvCase{1, 64, 2, 2, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 2);
  run_conv_case("conv2d_packed_f32", ConvCase{2, 16, 5, 3, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 3);
  run_conv_case("conv2d_packed_f32", ConvCase{1, 300, 3, 3, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 2);
  run_conv_case("conv2d_packed_f32", ConvCase{1, 32, 33, 35, 48, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2}, 2);
  // stride 2 (column-deinterleaved input) at the edges: width 1 and 2, odd/even pads
  run_conv_case("conv2d_packed_f32", ConvCase{2, 3, 5, 1, 8, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1}, 1);
  run_conv_case("conv2d_packed_f32", ConvCase{1, 3, 4, 2, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1}, 1);
  run_conv_case("conv2d_packed_f32", ConvCase{1, 4, 9, 19, 20, 3, 3, 2, 2, 0, 2, 1, 1, 1, 1, 1}, 2);
  run_conv_case("conv2d_packed_f32", ConvCase{1, 4, 9, 40, 20, 3, 5, 2, 2, 0, 3, 1, 0, 1, 1, 1}, 2);
  // pointwise (no im2col), ResNet-like 3x3, stem 7x7/2, larger channel counts
  run_conv_case("conv2d_f32", ConvCase{1, 64, 14, 14, 96, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1}, 2);
  run_conv_case("conv2d_f32", ConvCase{2, 40, 9, 11, 50, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2}, 2);
  run_conv_case("conv2d_f32", ConvCase{1, 32, 17, 19, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 2);
  run_conv_case("conv2d_f32", ConvCase{1, 3, 40, 40, 16, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 1}, 2);
  run_conv_case("conv2d_f32", ConvCase{1, 64, 12, 12, 64, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 32}, 2);
  run_conv_case("conv2d_f32", ConvCase{3, 16, 8, 8, 24, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 8}, 3);

  // depthwise: group == C, multiplier 1 or 2
  for (int it = 0; it < 50; ++it) {
    ConvCase k;
    const int64_t ks[] = {1, 3, 5, 7};
    k.N = ri(1, 2);
    k.C = ri(1, 12);
    k.g = k.C;
    k.Co = k.C * ri(1, 2);
    k.KH = ks[ri(0, 3)];
    k.KW = it % 3 ? k.KH : ks[ri(0, 3)];
    k.sh = ri(1, 2), k.sw = ri(1, 2), k.dh = it % 5 ? 1 : 2, k.dw = it % 5 ? 1 : 2;
    k.pt = ri(0, k.KH / 2 + 1), k.pl = ri(0, k.KW / 2 + 1);
    k.pb = ri(0, k.KH / 2), k.pr = ri(0, k.KW / 2);
    k.H = ri((k.KH - 1) * k.dh + 1, 30), k.W = ri((k.KW - 1) * k.dw + 1, 45);
    run_conv_case("depthwise_conv2d_f32", k, (int)ri(1, 3));
  }
  run_conv_case("depthwise_conv2d_f32", ConvCase{1, 32, 56, 56, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 32}, 2);
  run_conv_case("depthwise_conv2d_f32", ConvCase{1, 24, 28, 28, 24, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1, 24}, 2);
  // channel-blocked path: several 16-channel blocks with a partial last one, multiplier 2,
  // MobileNetV3-like tiny planes (2x2 with a 5x5 kernel, pads larger than the plane)
  for (int it = 0; it < 20; ++it) {
    ConvCase k;
    k.N = ri(1, 2);
    k.C = ri(13, 40);
    k.g = k.C;
    k.Co = k.C * (it % 4 == 3 ? 2 : 1);
    k.KH = it % 2 ? 3 : 5, k.KW = k.KH;
    k.sh = k.sw = ri(1, 2), k.dh = k.dw = 1;
    k.pt = k.pl = k.pb = k.pr = k.KH / 2;
    k.H = ri(1, 9), k.W = ri(1, 9);
    run_conv_case("depthwise_conv2d_f32", k, (int)ri(1, 3));
  }
  run_conv_case("depthwise_conv2d_f32", ConvCase{1, 576, 2, 2, 576, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 576}, 2);
  run_conv_case("depthwise_conv2d_f32", ConvCase{1, 96, 8, 8, 96, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1, 96}, 2);
  run_conv_case("depthwise_conv2d_f32", ConvCase{1, 16, 32, 32, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 16}, 2);
  run_conv_case("depthwise_conv2d_f32", ConvCase{2, 40, 64, 48, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 40}, 2);
  run_conv_case("depthwise_conv2d_f32", ConvCase{2, 32, 20, 37, 32, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 32}, 1);
  run_conv_case("depthwise_conv2d_f32", ConvCase{1, 48, 35, 50, 48, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 48}, 2);
}

void test_conv_transpose() {
  for (int it = 0; it < 40; ++it) {
    const int64_t g = it % 4 == 0 ? ri(2, 3) : 1;
    const int64_t N = ri(1, 2), C = g * ri(1, 6), Cog = ri(1, 6), Co = Cog * g;
    const int64_t KH = ri(1, 4), KW = ri(1, 4), sh = ri(1, 3), sw = ri(1, 3);
    const int64_t dh = ri(1, 2), dw = ri(1, 2), H = ri(1, 9), W = ri(1, 13);
    const int64_t pt = ri(0, 1), pl = ri(0, 1), pb = ri(0, 1), pr = ri(0, 1);
    const int64_t oph = ri(0, std::max(sh, dh) - 1), opw = ri(0, std::max(sw, dw) - 1);
    const int64_t OH = (H - 1) * sh - pt - pb + (KH - 1) * dh + 1 + oph;
    const int64_t OW = (W - 1) * sw - pl - pr + (KW - 1) * dw + 1 + opw;
    if (OH < 1 || OW < 1) continue;
    T X({N, C, H, W}), Wt({C, Cog, KH, KW}), B({Co}), R({N, Co, OH, OW}), Y({N, Co, OH, OW}, false);
    const int act = (int)ri(0, 4);
    const bool has_r = it % 2;
    double aa, ab;
    act_params(act, &aa, &ab);
    std::vector<float> ws;
    Call c;
    c.in = {X.t(), Wt.t(), B.t(), has_r ? R.t() : null_tensor()};
    c.out = {Y.t()};
    c.ip = {sh, sw, pt, pl, pb, pr, dh, dw, g, oph, opw, act, 0};
    c.fp = {aa, ab};
    c.threads = (int)ri(1, 2);
    if (it % 3 == 0) {  // plan-provided workspace
      ws.resize((size_t)(Cog * KH * KW * H * W));
      c.ws = ws.data();
      c.ws_size = (int64_t)ws.size() * 4;
    }
    int rc = c.run("conv_transpose2d_f32");
    CHECK(rc == 0, "conv_transpose rc=%d %s", rc, c.err);
    std::vector<double> ref((size_t)Y.numel(), 0.0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t ci = 0; ci < C; ++ci) {
        const int64_t gi = ci / (C / g);
        for (int64_t iy = 0; iy < H; ++iy)
          for (int64_t ix = 0; ix < W; ++ix)
            for (int64_t co = 0; co < Cog; ++co)
              for (int64_t ky = 0; ky < KH; ++ky)
                for (int64_t kx = 0; kx < KW; ++kx) {
                  int64_t oy = iy * sh - pt + ky * dh, ox = ix * sw - pl + kx * dw;
                  if (oy < 0 || oy >= OH || ox < 0 || ox >= OW) continue;
                  ref[((n * Co + gi * Cog + co) * OH + oy) * OW + ox] +=
                      (double)X.v[((n * C + ci) * H + iy) * W + ix] *
                      Wt.v[((ci * Cog + co) * KH + ky) * KW + kx];
                }
      }
    for (int64_t i = 0; i < Y.numel(); ++i) {
      const int64_t oc = (i / (OH * OW)) % Co;
      double s = ref[i] + B.v[oc] + (has_r ? R.v[i] : 0);
      ref[i] = ref_act(s, act, aa, ab);
    }
    char what[200];
    std::snprintf(what, sizeof what, "conv_transpose it=%d g=%lld k=%lldx%lld s=%lld,%lld d=%lld,%lld", it,
                  (long long)g, (long long)KH, (long long)KW, (long long)sh, (long long)sw,
                  (long long)dh, (long long)dw);
    close_all(what, Y.v, ref, 1e-5 + 2e-7 * C * KH * KW, 1e-5);
  }
}

// ------------------------------------------------------------------ pooling
int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p0, int64_t p1, int64_t d, int ceil) {
  const int64_t eff = (k - 1) * d + 1;
  const double v = (double)(in + p0 + p1 - eff) / (double)s;
  int64_t o = (int64_t)(ceil ? std::ceil(v) : std::floor(v)) + 1;
  if (ceil && (o - 1) * s >= in + p0) --o;
  return o;
}

void test_pool() {
  for (int it = 0; it < 80; ++it) {
    const bool is_max = it % 2 == 0;
    const int64_t kh = ri(1, 4), kw = ri(1, 4), sh = ri(1, 3), sw = ri(1, 3);
    const int64_t dh = it % 5 == 0 ? 2 : 1, dw = it % 7 == 0 ? 2 : 1;
    const int64_t pt = ri(0, ((kh - 1) * dh + 1) - 1), pb = ri(0, ((kh - 1) * dh + 1) - 1);
    const int64_t pl = ri(0, ((kw - 1) * dw + 1) - 1), pr = ri(0, ((kw - 1) * dw + 1) - 1);
    const int ceil = (int)ri(0, 1), cip = (int)ri(0, 1);
    const int64_t N = ri(1, 2), C = ri(1, 5);
    const int64_t H = ri((kh - 1) * dh + 1, 15), W = ri((kw - 1) * dw + 1, 15);
    const int64_t OH = pool_out(H, kh, sh, pt, pb, dh, ceil), OW = pool_out(W, kw, sw, pl, pr, dw, ceil);
    T X({N, C, H, W}), Y({N, C, OH, OW}, false);
    Call c;
    c.in = {X.t()};
    c.out = {Y.t()};
    c.ip = {kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, ceil};
    if (!is_max) c.ip.push_back(cip);
    c.threads = (int)ri(1, 2);
    int rc = c.run(is_max ? "maxpool2d_f32" : "avgpool2d_f32");
    CHECK(rc == 0, "pool rc=%d %s", rc, c.err);
    std::vector<double> ref((size_t)Y.numel());
    for (int64_t q = 0; q < N * C; ++q)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          double m = -INFINITY, s = 0;
          int64_t cnt = 0, cntpad = 0;
          for (int64_t ky = 0; ky < kh; ++ky)
            for (int64_t kx = 0; kx < kw; ++kx) {
              const int64_t iy = oy * sh - pt + ky * dh, ix = ox * sw - pl + kx * dw;
              if (iy >= -pt && iy < H + pb && ix >= -pl && ix < W + pr) ++cntpad;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
              const double v = X.v[(q * H + iy) * W + ix];
              m = std::max(m, v);
              s += v;
              ++cnt;
            }
          ref[(q * OH + oy) * OW + ox] = is_max ? m : s / (double)(cip ? cntpad : cnt);
        }
    char what[200];
    std::snprintf(what, sizeof what, "%s k=%lldx%lld s=%lld,%lld p=%lld,%lld,%lld,%lld d=%lld,%lld ceil=%d cip=%d",
                  is_max ? "maxpool" : "avgpool", (long long)kh, (long long)kw, (long long)sh,
                  (long long)sw, (long long)pt, (long long)pl, (long long)pb, (long long)pr,
                  (long long)dh, (long long)dw, ceil, cip);
    close_all(what, Y.v, ref, 1e-6, 1e-5);
  }
  // global average pool, rank 4 and 3, output [N, C] too
  for (int it = 0; it < 4; ++it) {
    T X(it == 3 ? std::vector<int64_t>{2, 5, 17} : std::vector<int64_t>{2, 7, 1 + 4 * it, 9});
    T Y(it == 3 ? std::vector<int64_t>{2, 5, 1}
                : it == 2 ? std::vector<int64_t>{2, 7} : std::vector<int64_t>{2, 7, 1, 1}, false);
    Call c;
    c.in = {X.t()};
    c.out = {Y.t()};
    c.threads = 2;
    int rc = c.run("global_avgpool_f32");
    CHECK(rc == 0, "global_avgpool rc=%d %s", rc, c.err);
    const int64_t planes = Y.numel(), hw = X.numel() / planes;
    std::vector<double> ref((size_t)planes);
    for (int64_t q = 0; q < planes; ++q) {
      double s = 0;
      for (int64_t i = 0; i < hw; ++i) s += X.v[q * hw + i];
      ref[q] = s / hw;
    }
    close_all("global_avgpool", Y.v, ref, 1e-6, 1e-5);
  }
}

// ------------------------------------------------------------------ softmax / layer norm
// Masked attention scores (-10000 added): the masked probabilities are exactly 0, never
// denormal (denormal softmax outputs made the following GEMM ~10x slower); exp underflows to 0.
void test_softmax_underflow() {
  const int64_t rows = 8, n = 37;
  for (int axis_last = 0; axis_last < 2; ++axis_last) {
    T X(axis_last ? std::vector<int64_t>{rows, n} : std::vector<int64_t>{n, rows}), Y(X.shape, false);
    for (int64_t i = 0; i < X.numel(); ++i)
      if (i % 3 == 1) X.v[(size_t)i] -= 10000.f;
    Call c;
    c.in = {X.t()};
    c.out = {Y.t()};
    c.ip = {axis_last ? 1 : 0, 0};
    CHECK(c.run("softmax_f32") == 0, "softmax masked: %s", c.err);
    int denormal = 0, nonzero_masked = 0;
    for (int64_t i = 0; i < X.numel(); ++i) {
      const float y = Y.v[(size_t)i];
      denormal += y != 0.f && std::fabs(y) < 1.17549435e-38f;
      nonzero_masked += i % 3 == 1 && y != 0.f;
    }
    CHECK(denormal == 0 && nonzero_masked == 0, "softmax masked: %d denormal, %d masked != 0",
          denormal, nonzero_masked);
  }
  T X({4}), Y({4}, false);
  X.v = {-100.f, -87.5f, -1e30f, -INFINITY};
  Call c;
  c.in = {X.t()};
  c.out = {Y.t()};
  c.ip = {11};
  c.fp = {0.0, 0.0};
  CHECK(c.run("unary_f32") == 0, "exp underflow: %s", c.err);
  for (float y : Y.v) CHECK(y == 0.f, "exp underflow: got %g, want 0", y);
}

void test_softmax() {
  test_softmax_underflow();
  for (int it = 0; it < 30; ++it) {
    const int rank = (int)ri(1, 4);
    std::vector<int64_t> shp;
    for (int d = 0; d < rank; ++d) shp.push_back(ri(1, 9));
    if (it % 5 == 0) shp.back() = 1000 + ri(0, 50);
    if (it % 5 == 2) shp.front() = 300 + ri(0, 9);  // many short rows: blocks of rows
    int64_t axis = it % 2 ? -1 : ri(-rank, rank - 1);
    const int lg = it % 3 == 0;
    T X(shp, true, -30.f, 30.f), Y(shp, false);  // large magnitudes: stability
    const bool inplace = it % 4 == 1;
    Call c;
    c.in = {X.t()};
    c.out = {inplace ? X.t() : Y.t()};
    c.ip = {axis, lg};
    c.threads = (int)ri(1, 2);
    std::vector<float> x0 = X.v;
    int rc = c.run("softmax_f32");
    CHECK(rc == 0, "softmax rc=%d %s", rc, c.err);
    const int ax = (int)(axis < 0 ? axis + rank : axis);
    int64_t outer = 1, inner = 1, n = shp[ax];
    for (int d = 0; d < ax; ++d) outer *= shp[d];
    for (int d = ax + 1; d < rank; ++d) inner *= shp[d];
    std::vector<double> ref(x0.size());
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        double m = -INFINITY, s = 0;
        for (int64_t k = 0; k < n; ++k) m = std::max(m, (double)x0[(o * n + k) * inner + i]);
        for (int64_t k = 0; k < n; ++k) s += std::exp(x0[(o * n + k) * inner + i] - m);
        for (int64_t k = 0; k < n; ++k) {
          const double v = x0[(o * n + k) * inner + i] - m;
          ref[(o * n + k) * inner + i] = lg ? v - std::log(s) : std::exp(v) / s;
        }
      }
    close_all(lg ? "log_softmax" : "softmax", inplace ? X.v : Y.v, ref, lg ? 2e-5 : 1e-6, 1e-5);
  }
}

void test_layer_norm() {
  for (int it = 0; it < 30; ++it) {
    const int rank = (int)ri(1, 4);
    std::vector<int64_t> shp;
    for (int d = 0; d < rank; ++d) shp.push_back(ri(1, 8));
    if (it % 4 == 0) shp.back() = 768 + ri(0, 9);
    const int64_t axis = ri(-rank, rank - 1);
    const int ax = (int)(axis < 0 ? axis + rank : axis);
    int64_t outer = 1, n = 1;
    for (int d = 0; d < ax; ++d) outer *= shp[d];
    for (int d = ax; d < rank; ++d) n *= shp[d];
    const int mode = it % 3;  // 0: no scale/bias, 1: scale, 2: scale + bias
    T X(shp, true, -3.f, 5.f), S({n}), B({n}), Y(shp, false), Mn({outer}, false), Is({outer}, false);
    const bool stats = it % 2;
    Call c;
    c.in = {X.t()};
    if (mode >= 1) c.in.push_back(S.t());
    if (mode >= 2) c.in.push_back(B.t());
    c.out = {Y.t()};
    if (stats) c.out.push_back(Mn.t()), c.out.push_back(Is.t());
    c.ip = {axis};
    c.fp = {1e-5};
    c.threads = (int)ri(1, 2);
    int rc = c.run("layer_norm_f32");
    CHECK(rc == 0, "layer_norm rc=%d %s", rc, c.err);
    std::vector<double> ref(X.v.size()), rm(outer), ris(outer);
    for (int64_t o = 0; o < outer; ++o) {
      double m = 0, v = 0;
      for (int64_t j = 0; j < n; ++j) m += X.v[o * n + j];
      m /= n;
      for (int64_t j = 0; j < n; ++j) v += (X.v[o * n + j] - m) * (X.v[o * n + j] - m);
      v /= n;
      const double inv = 1 / std::sqrt(v + 1e-5);
      rm[o] = m, ris[o] = inv;
      for (int64_t j = 0; j < n; ++j)
        ref[o * n + j] = (X.v[o * n + j] - m) * inv * (mode >= 1 ? S.v[j] : 1.0) + (mode >= 2 ? B.v[j] : 0.0);
    }
    close_all("layer_norm", Y.v, ref, 2e-5, 1e-4);
    if (stats) {
      close_all("layer_norm mean", Mn.v, rm, 1e-5, 1e-5);
      close_all("layer_norm invstd", Is.v, ris, 1e-5, 1e-4);
    }
  }
}

// ------------------------------------------------------------------ reductions
void expect_error(const char* what, Call& c, const char* kernel);

double ref_reduce(int op, const std::vector<double>& v) {
  const double inf = std::numeric_limits<double>::infinity();
  double acc = 0;
  switch (op) {
    case 0: case 1: case 8: for (double x : v) acc += x; break;
    case 2: acc = -inf; for (double x : v) acc = std::max(acc, x); break;
    case 3: acc = inf; for (double x : v) acc = std::min(acc, x); break;
    case 4: acc = 1; for (double x : v) acc *= x; break;
    case 5: case 7: for (double x : v) acc += x * x; break;
    case 6: for (double x : v) acc += std::fabs(x); break;
    case 9: {
      double m = -inf;
      for (double x : v) m = std::max(m, x);
      if (std::isinf(m)) return m;
      for (double x : v) acc += std::exp(x - m);
      return std::log(acc) + m;
    }
  }
  if (op == 1) return v.empty() ? NAN : acc / (double)v.size();
  if (op == 7) return std::sqrt(acc);
  if (op == 8) return std::log(acc);
  return acc;
}

void reduce_case(const std::vector<int64_t>& shp, const std::vector<int>& flags, int op,
                 int threads) {
  const int rank = (int)shp.size();
  float lo = -2.f, hi = 3.f;
  if (op == 4) lo = 0.97f, hi = 1.03f;
  if (op == 8) lo = 0.1f, hi = 2.f;
  T X(shp, true, lo, hi);
  std::vector<int64_t> yshape;
  for (int d = 0; d < rank; ++d) yshape.push_back(flags[(size_t)d] ? 1 : shp[(size_t)d]);
  T Y(yshape, false);
  for (auto& y : Y.v) y = 12345.f;
  Call c;
  c.in = {X.t()};
  c.out = {Y.t()};
  c.ip = {op};
  for (int f : flags) c.ip.push_back(f);
  c.threads = threads;
  int rc = c.run("reduce_f32");
  CHECK(rc == 0, "reduce rc=%d %s", rc, c.err);
  // reference: odometer over X, output index from the kept dims
  std::vector<std::vector<double>> groups((size_t)Y.numel());
  std::vector<int64_t> idx((size_t)rank, 0);
  for (int64_t i = 0; i < X.numel(); ++i) {
    int64_t o = 0;
    for (int d = 0; d < rank; ++d) o = o * yshape[(size_t)d] + (flags[(size_t)d] ? 0 : idx[(size_t)d]);
    groups[(size_t)o].push_back(X.v[(size_t)i]);
    for (int d = rank - 1; d >= 0; --d) {
      if (++idx[(size_t)d] < shp[(size_t)d]) break;
      idx[(size_t)d] = 0;
    }
  }
  std::vector<double> ref;
  size_t n = 0;
  for (auto& g : groups) ref.push_back(ref_reduce(op, g)), n = std::max(n, g.size());
  char what[64];
  std::snprintf(what, sizeof what, "reduce op %d rank %d", op, rank);
  close_all(what, Y.v, ref, 1e-5 + 1e-6 * (double)n, 2e-5 + (op == 4 ? 1e-7 * (double)n : 0.0));
}

void test_reduce() {
  for (int it = 0; it < 400; ++it) {
    const int rank = (int)ri(0, 5);
    std::vector<int64_t> shp;
    std::vector<int> flags;
    for (int d = 0; d < rank; ++d) {
      shp.push_back(it % 50 == 7 && d == 0 ? 0 : ri(1, 6));
      flags.push_back((int)ri(0, 1));
    }
    if (rank && it % 5 == 0) shp.back() = ri(30, 300);  // long rows / wide columns
    if (rank >= 3 && it % 7 == 0) shp[1] = ri(100, 2000), flags[1] = 1;
    reduce_case(shp, flags, it % 10, (int)ri(1, 2));
  }
  // the zoo's cases: last-axis mean (decomposed layer norm), spatial mean (global pooling)
  for (int op = 0; op < 10; ++op) {
    reduce_case({2, 7, 768}, {0, 0, 1}, op, 2);
    reduce_case({1, 64, 28, 28}, {0, 0, 1, 1}, op, 2);
    reduce_case({3, 1000, 5}, {0, 1, 0}, op, 2);
    reduce_case({2, 3}, {0, 0}, op, 1);  // no axis: the elementwise part only
    reduce_case({4, 0, 3}, {0, 1, 0}, op, 1);  // empty reduction
  }
  // infinities in log-sum-exp and max
  {
    T X({2, 3}), Y({2, 1}, false);
    X.v = {-INFINITY, -INFINITY, -INFINITY, 1.f, INFINITY, 2.f};
    Call c;
    c.in = {X.t()};
    c.out = {Y.t()};
    c.ip = {9, 0, 1};
    CHECK(c.run("reduce_f32") == 0, "reduce lse inf: %s", c.err);
    CHECK(std::isinf(Y.v[0]) && Y.v[0] < 0 && std::isinf(Y.v[1]) && Y.v[1] > 0,
          "reduce lse of infinities: %g %g", Y.v[0], Y.v[1]);
  }
  T X({3, 4}), Y({3}, false), Ybad({4}, false);
  auto base = [&]() {
    Call c;
    c.in = {X.t()};
    c.out = {Y.t()};
    c.ip = {1, 0, 1};
    return c;
  };
  { Call c = base(); CHECK(c.run("reduce_f32") == 0, "baseline reduce: %s", c.err); }
  { Call c = base(); c.ip = {1, 0}; expect_error("reduce flag count", c, "reduce_f32"); }
  { Call c = base(); c.ip = {}; expect_error("reduce no iparams", c, "reduce_f32"); }
  { Call c = base(); c.ip[0] = 10; expect_error("reduce op", c, "reduce_f32"); }
  { Call c = base(); c.ip[1] = 2; expect_error("reduce flag value", c, "reduce_f32"); }
  { Call c = base(); c.out = {Ybad.t()}; expect_error("reduce output size", c, "reduce_f32"); }
  { Call c = base(); c.fp = {1.0}; expect_error("reduce fparams", c, "reduce_f32"); }
  { Call c = base(); c.in[0].dtype = ODC_INT64; expect_error("reduce dtype", c, "reduce_f32"); }
  { Call c = base(); c.out = {X.t()}; c.ip = {1, 0, 0}; expect_error("reduce in place", c, "reduce_f32"); }
}

// ------------------------------------------------------------------ resize
double ref_coord(int64_t xo, int64_t in, int64_t out, double scale, int mode) {
  if (mode == 0) return (xo + 0.5) / scale - 0.5;
  if (mode == 1) return out == 1 ? 0 : xo * (double)(in - 1) / (double)(out - 1);
  if (mode == 2) return xo / scale;
  return out > 1 ? (xo + 0.5) / scale - 0.5 : 0;
}
int64_t ref_nearest(double x, int64_t in, int mode) {
  double r;
  if (mode == 0) r = (x - std::floor(x) == 0.5) ? std::floor(x) : std::round(x);
  else if (mode == 1) r = (x - std::floor(x) == 0.5) ? std::ceil(x) : std::round(x);
  else if (mode == 2) r = std::floor(x);
  else r = std::ceil(x);
  return (int64_t)std::min(std::max(r, 0.0), (double)(in - 1));
}

void test_resize() {
  for (int it = 0; it < 60; ++it) {
    const bool nearest = it % 2 == 0;
    const int64_t N = ri(1, 2), C = ri(1, 3), H = ri(1, 9), W = ri(1, 9);
    const int64_t OH = ri(1, 20), OW = ri(1, 20);
    const int cm = (int)ri(0, 3), nm = (int)ri(0, 3);
    const bool use_scale = it % 3 == 0;
    const double sh = use_scale ? (double)OH / H * 1.0 : 0, sw = use_scale ? (double)OW / W : 0;
    T X({N, C, H, W}), Y({N, C, OH, OW}, false);
    Call c;
    c.in = {X.t()};
    c.out = {Y.t()};
    c.ip = nearest ? std::vector<int64_t>{cm, nm} : std::vector<int64_t>{cm};
    c.fp = {sh, sw};
    c.threads = (int)ri(1, 2);
    int rc = c.run(nearest ? "resize_nearest_f32" : "resize_bilinear_f32");
    CHECK(rc == 0, "resize rc=%d %s", rc, c.err);
    const double ssh = (double)OH / H, ssw = (double)OW / W;
    std::vector<double> ref((size_t)Y.numel());
    for (int64_t q = 0; q < N * C; ++q)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          double y = ref_coord(oy, H, OH, ssh, cm), x = ref_coord(ox, W, OW, ssw, cm);
          double v;
          if (nearest) {
            v = X.v[(q * H + ref_nearest(y, H, nm)) * W + ref_nearest(x, W, nm)];
          } else {
            y = std::min(std::max(y, 0.0), (double)H - 1), x = std::min(std::max(x, 0.0), (double)W - 1);
            int64_t y0 = (int64_t)y, x0 = (int64_t)x, y1 = std::min(y0 + 1, H - 1), x1 = std::min(x0 + 1, W - 1);
            double fy = y - y0, fx = x - x0;
            auto at = [&](int64_t yy, int64_t xx) { return (double)X.v[(q * H + yy) * W + xx]; };
            v = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1));
          }
          ref[(q * OH + oy) * OW + ox] = v;
        }
    char what[160];
    std::snprintf(what, sizeof what, "resize %s %lldx%lld->%lldx%lld cm=%d nm=%d", nearest ? "nearest" : "bilinear",
                  (long long)H, (long long)W, (long long)OH, (long long)OW, cm, nm);
    close_all(what, Y.v, ref, 1e-5, 1e-5);
  }
  // hand-checked: bilinear half_pixel 2x of [0, 1] -> [0, 0.25, 0.75, 1]
  T X({1, 1, 1, 2}), Y({1, 1, 1, 4}, false);
  X.v = {0.f, 1.f};
  Call c;
  c.in = {X.t()};
  c.out = {Y.t()};
  c.ip = {0};
  c.fp = {0, 0};
  CHECK(c.run("resize_bilinear_f32") == 0, "%s", c.err);
  close_all("bilinear hand case", Y.v, {0, 0.25, 0.75, 1}, 1e-7, 0);
}

// ------------------------------------------------------------------ elementwise
void test_binary() {
  struct Case {
    std::vector<int64_t> a, b, y;
  };
  std::vector<Case> cases = {
      {{2, 3, 4, 5}, {2, 3, 4, 5}, {2, 3, 4, 5}}, {{2, 16, 7, 9}, {16, 1, 1}, {2, 16, 7, 9}},
      {{3, 1}, {1, 4}, {3, 4}},                     {{}, {5, 6}, {5, 6}},
      {{5, 6}, {}, {5, 6}},                         {{4, 1, 6}, {1, 5, 1}, {4, 5, 6}},
      {{1}, {1}, {1}},                              {{7, 1, 3}, {7, 2, 3}, {7, 2, 3}},
      {{2, 50000}, {50000}, {2, 50000}},            {{0, 3}, {3}, {0, 3}},
      // short broadcast rows (SE blocks), both operand orders, in place
      {{1, 96, 4, 4}, {1, 96, 1, 1}, {1, 96, 4, 4}},  {{1, 20, 1, 1}, {1, 20, 3, 3}, {1, 20, 3, 3}},
      {{6, 5}, {6, 1}, {6, 5}},                       {{2, 7, 3}, {2, 7, 3}, {2, 7, 3}},
  };
  for (size_t ci = 0; ci < cases.size(); ++ci)
    for (int op = 0; op < 6; ++op) {
      const Case& cs = cases[ci];
      T A(cs.a), B(cs.b, true, 0.5f, 2.f), Y(cs.y, false);
      const int act = (int)((ci + op) % 6);
      double aa, ab;
      act_params(act, &aa, &ab);
      const bool inplace = cs.a == cs.y && op == 1;
      std::vector<float> a0 = A.v;
      Call c;
      c.in = {A.t(), B.t()};
      c.out = {inplace ? A.t() : Y.t()};
      c.ip = {op, act};
      c.fp = {aa, ab};
      c.threads = 2;
      int rc = c.run("binary_f32");
      CHECK(rc == 0, "binary rc=%d %s", rc, c.err);
      const int r = (int)cs.y.size();
      std::vector<double> ref((size_t)Y.numel());
      for (int64_t i = 0; i < Y.numel(); ++i) {
        int64_t rem = i, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int d = r - 1; d >= 0; --d) {
          const int64_t idx = rem % cs.y[d];
          rem /= cs.y[d];
          const int da = d - (r - (int)cs.a.size()), db = d - (r - (int)cs.b.size());
          const int64_t ad = da >= 0 ? cs.a[da] : 1, bd = db >= 0 ? cs.b[db] : 1;
          ia += (ad == 1 ? 0 : idx) * sa, ib += (bd == 1 ? 0 : idx) * sb;
          sa *= ad, sb *= bd;
        }
        const double x = a0[ia], y = B.v[ib];
        double v = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : op == 3 ? x / y
                 : op == 4 ? std::max(x, y) : std::min(x, y);
        ref[i] = ref_act(v, act, aa, ab);
      }
      char what[100];
      std::snprintf(what, sizeof what, "binary case %zu op %d act %d", ci, op, act);
      close_all(what, inplace ? A.v : Y.v, ref, 1e-6, 1e-5);
    }
}

void expect_error(const char* what, Call& c, const char* kernel);

// eltwise_program_f32 against a double-precision interpreter of the same program
int64_t preg(int64_t i) { return i; }
int64_t pin(int64_t i) { return (int64_t(1) << 24) + i; }
int64_t pimm(int64_t i) { return (int64_t(2) << 24) + i; }
double ref_prog(int op, double x, double y, double lo, double hi) {
  switch (op) {
    case 0: return x + y;
    case 1: return x - y;
    case 2: return x * y;
    case 3: return x / y;
    case 4: return std::max(x, y);
    case 5: return std::min(x, y);
    case 6: return std::pow(x, y);
    case 7: return x;
    case 8: return -x;
    case 9: return std::fabs(x);
    case 10: return std::exp(x);
    case 11: return std::log(x);
    case 12: return std::sqrt(x);
    case 13: return 1.0 / x;
    case 14: return std::erf(x);
    case 15: return std::tanh(x);
    case 16: return 1.0 / (1.0 + std::exp(-x));
    case 17: return x > 0 ? x : 0.0;
    default: return std::min(std::max(x, lo), hi);
  }
}
void test_program() {
  struct Prog {
    const char* name;
    std::vector<std::vector<int64_t>> ins;
    std::vector<int64_t> y;
    int nregs, result;
    std::vector<std::vector<int64_t>> code;  // op, dst, a, b
    std::vector<double> imm;
    float lo, hi;  // input range
  };
  const double s2 = std::sqrt(2.0);
  std::vector<Prog> progs = {
      {"gelu_erf", {{3, 1001}}, {3, 1001}, 2, 0,
       {{3, 0, pin(0), pimm(0)}, {14, 0, preg(0), 0}, {0, 0, preg(0), pimm(1)},
        {2, 0, pin(0), preg(0)}, {2, 0, preg(0), pimm(2)}},
       {s2, 1.0, 0.5}, -4.f, 4.f},
      {"broadcast mix", {{2, 16, 7, 9}, {16, 1, 1}, {9}, {}}, {2, 16, 7, 9}, 3, 2,
       {{1, 0, pin(0), pin(1)}, {2, 0, preg(0), pin(2)}, {18, 1, preg(0), pimm(0)},
        {4, 1, preg(1), pin(1)}, {16, 2, preg(1), 0}, {9, 0, pin(0), 0},
        {0, 0, preg(0), pin(3)}, {6, 0, preg(0), pin(2)}, {11, 0, preg(0), 0},
        {5, 0, preg(0), pimm(2)}, {0, 2, preg(2), preg(0)}},
       {-0.5, 0.5, 1.5}, 0.1f, 1.f},
      {"unaries", {{5, 1}, {1, 300}}, {5, 300}, 4, 3,
       {{2, 0, pin(0), pin(1)}, {8, 1, preg(0), 0}, {10, 1, preg(1), 0}, {17, 2, preg(0), 0},
        {7, 2, preg(2), 0}, {12, 2, preg(2), 0}, {15, 3, preg(1), 0}, {0, 1, preg(2), pimm(0)},
        {13, 1, preg(1), 0}, {0, 3, preg(3), preg(1)}, {1, 3, preg(3), pin(1)},
        {3, 3, preg(3), pin(0)}, {14, 0, pin(1), 0}, {2, 3, preg(3), preg(0)}},
       {1.0}, 0.2f, 2.f},
      {"scalar broadcast unary", {{}, {4, 600}}, {4, 600}, 2, 1,
       {{10, 0, pin(0), 0}, {2, 1, preg(0), pin(1)}, {10, 1, pin(0), 0}, {9, 0, pin(0), 0},
        {1, 1, preg(1), preg(0)}, {18, 1, preg(1), pimm(0)}},
       {-1e30, 0.25}, -1.f, 1.f},
      {"rank 0", {{}, {}}, {}, 1, 0, {{3, 0, pin(0), pin(1)}, {16, 0, preg(0), 0}}, {}, 0.5f, 1.f},
      {"big", {{64, 3000}, {3000}}, {64, 3000}, 1, 0,
       {{2, 0, pin(0), pin(1)}, {15, 0, preg(0), 0}}, {}, -2.f, 2.f},
  };
  for (const Prog& p : progs) {
    for (int threads : {1, 3}) {
      std::vector<T> X;
      for (auto& s : p.ins) X.emplace_back(s, true, p.lo, p.hi);
      T Y(p.y, false);
      Call c;
      for (auto& x : X) c.in.push_back(x.t());
      c.out = {Y.t()};
      c.ip = {p.nregs, (int64_t)p.code.size(), p.result};
      for (auto& q : p.code) c.ip.insert(c.ip.end(), q.begin(), q.end());
      c.fp = p.imm;
      c.threads = threads;
      int rc = c.run("eltwise_program_f32");
      CHECK(rc == 0, "program %s rc=%d %s", p.name, rc, c.err);
      const int r = (int)p.y.size();
      std::vector<double> ref((size_t)Y.numel());
      for (int64_t i = 0; i < Y.numel(); ++i) {
        std::vector<double> in(X.size());
        for (size_t k = 0; k < X.size(); ++k) {
          int64_t rem = i, off = 0, st = 1;
          const int rk = (int)p.ins[k].size();
          for (int d = r - 1; d >= 0; --d) {
            const int64_t idx = rem % p.y[d];
            rem /= p.y[d];
            const int dk = d - (r - rk);
            const int64_t kd = dk >= 0 ? p.ins[k][dk] : 1;
            off += (kd == 1 ? 0 : idx) * st;
            st *= kd;
          }
          in[k] = X[k].v[(size_t)off];
        }
        std::vector<double> reg((size_t)p.nregs, 0.0);
        auto val = [&](int64_t x) {
          const int64_t kind = x >> 24, idx = x & ((1 << 24) - 1);
          return kind == 0 ? reg[(size_t)idx] : kind == 1 ? in[(size_t)idx] : p.imm[(size_t)idx];
        };
        for (auto& q : p.code) {
          const int op = (int)q[0];
          const double x = val(q[2]);
          double y = 0, lo = 0, hi = 0;
          if (op <= 6) y = val(q[3]);
          if (op == 18) lo = p.imm[(size_t)(q[3] & 0xffffff)], hi = p.imm[(size_t)(q[3] & 0xffffff) + 1];
          reg[(size_t)q[1]] = ref_prog(op, x, y, lo, hi);
        }
        ref[(size_t)i] = reg[(size_t)p.result];
      }
      char what[100];
      std::snprintf(what, sizeof what, "program %s threads %d", p.name, threads);
      close_all(what, Y.v, ref, 2e-6, 2e-5);
    }
  }
  // inputs of other dtypes, converted to float32 on load (a fused Cast): the attention mask
  // (1 - float(mask)) * -10000 with an int64 / int32 / bool / uint8 / float64 mask, broadcast
  {
    const int32_t dts[] = {ODC_INT64, ODC_INT32, ODC_BOOL, ODC_UINT8, ODC_FLOAT64, ODC_INT16};
    for (int32_t dt : dts)
      for (int threads : {1, 2}) {
        const int64_t rows = 3, cols = 700;
        std::vector<int64_t> i64((size_t)(rows * cols));
        for (auto& v : i64) v = dt == ODC_BOOL || dt == ODC_UINT8 ? ri(0, 1) : ri(-300, 300);
        std::vector<unsigned char> raw((size_t)(rows * cols) * 8);
        for (size_t j = 0; j < i64.size(); ++j) {
          const int64_t v = i64[j];
          if (dt == ODC_INT64) std::memcpy(&raw[j * 8], &v, 8);
          if (dt == ODC_INT32) { int32_t w = (int32_t)v; std::memcpy(&raw[j * 4], &w, 4); }
          if (dt == ODC_INT16) { int16_t w = (int16_t)v; std::memcpy(&raw[j * 2], &w, 2); }
          if (dt == ODC_BOOL || dt == ODC_UINT8) raw[j] = (unsigned char)v;
          if (dt == ODC_FLOAT64) { double w = (double)v; std::memcpy(&raw[j * 8], &w, 8); }
        }
        T M({rows, 1, cols}), F({2, 1}), Y({rows, 2, cols}, false);
        Call c;
        odc_tensor m = M.t();
        m.data = raw.data();
        m.dtype = dt;
        c.in = {m, F.t()};
        c.out = {Y.t()};
        // r0 = 1 - float(mask); r0 = r0 * -10000 + F
        c.ip = {1, 3, 0, 1, 0, pimm(0), pin(0), 2, 0, preg(0), pimm(1), 0, 0, preg(0), pin(1)};
        c.fp = {1.0, -10000.0};
        c.threads = threads;
        int rc = c.run("eltwise_program_f32");
        CHECK(rc == 0, "program converted dtype %d rc=%d %s", dt, rc, c.err);
        std::vector<double> ref((size_t)Y.numel());
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t k = 0; k < 2; ++k)
            for (int64_t j = 0; j < cols; ++j)
              ref[(size_t)((r * 2 + k) * cols + j)] =
                  (1.0 - (double)i64[(size_t)(r * cols + j)]) * -10000.0 + F.v[(size_t)k];
        char what[64];
        std::snprintf(what, sizeof what, "program converted dtype %d", dt);
        close_all(what, Y.v, ref, 1e-6, 1e-6);
      }
    T A({4, 5}), Y({4, 5}, false);
    Call c;
    c.in = {A.t()};
    c.in[0].dtype = ODC_FLOAT16;
    c.out = {Y.t()};
    c.ip = {1, 1, 0, 7, 0, pin(0), 0};
    expect_error("program float16 input", c, "eltwise_program_f32");
    c.in[0].dtype = ODC_INT32;
    c.out = {A.t()};
    expect_error("program converted input aliasing Y", c, "eltwise_program_f32");
  }
  // bad programs
  T A({4, 5}), B({3}), Y({4, 5}, false);
  Call c;
  c.in = {A.t()};
  c.out = {Y.t()};
  c.ip = {1, 1, 0, 0, 0, preg(0), pin(0)};
  expect_error("program reads an unwritten register", c, "eltwise_program_f32");
  c.ip = {1, 1, 0, 19, 0, pin(0), 0};
  expect_error("program op code", c, "eltwise_program_f32");
  c.ip = {1, 1, 0, 0, 0, pin(0), pin(1)};
  expect_error("program input index", c, "eltwise_program_f32");
  c.ip = {1, 1, 0, 18, 0, pin(0), pimm(0)};
  c.fp = {0.0};
  expect_error("program clip bounds", c, "eltwise_program_f32");
  c.fp = {};
  c.ip = {1, 2, 0, 0, 0, pin(0), pin(0)};
  expect_error("program iparam count", c, "eltwise_program_f32");
  // a num_instr whose 3 + 4 * num_instr overflows int64 (UBSan caught it in a damaged module)
  c.ip = {1, int64_t(1) << 62, 0, 0, 0, pin(0), pin(0)};
  expect_error("program num_instr overflow", c, "eltwise_program_f32");
  c.in = {B.t()};
  c.ip = {1, 1, 0, 0, 0, pin(0), pin(0)};
  expect_error("program broadcast mismatch", c, "eltwise_program_f32");
}

void test_unary() {
  for (int act = 0; act < kActs; ++act) {
    const bool pos = act == 14 || act == 15;
    T X({3, 1001}, true, pos ? 0.05f : -8.f, pos ? 9.f : 8.f), Y({3, 1001}, false);
    X.v[0] = 0.f;
    if (!pos) X.v[1] = -100.f, X.v[2] = 100.f, X.v[3] = 1e-6f, X.v[4] = -3e-3f;
    if (act == 11) X.v[1] = -80.f, X.v[2] = 80.f;
    double aa, ab;
    act_params(act, &aa, &ab);
    Call c;
    c.in = {X.t()};
    c.out = {Y.t()};
    c.ip = {act};
    c.fp = {aa, ab};
    c.threads = 2;
    int rc = c.run("unary_f32");
    CHECK(rc == 0, "unary rc=%d %s", rc, c.err);
    std::vector<double> ref(X.v.size());
    for (size_t i = 0; i < ref.size(); ++i) ref[i] = ref_act(X.v[i], act, aa, ab);
    char what[64];
    std::snprintf(what, sizeof what, "unary act %d", act);
    close_all(what, Y.v, ref, act == 11 ? 0 : 1e-6, act == 11 ? 1e-6 : 2e-6);
  }
}

// ------------------------------------------------------------------ argument checking
void expect_error(const char* what, Call& c, const char* kernel) {
  int rc = c.run(kernel);
  ++g_checks;
  const bool one_line = std::strchr(c.err, '\n') == nullptr && std::strlen(c.err) > 0;
  if (rc == 0 || !one_line) {
    ++g_failures;
    std::printf("FAIL error case '%s': rc=%d msg='%s'\n", what, rc, c.err);
  } else if (std::getenv("ODC_TEST_VERBOSE")) {
    std::printf("  ok: %-32s -> %s\n", what, c.err);
  }
}

void test_errors() {
  T A({4, 5}), B({5, 6}), Y({4, 6}, false), Ybad({4, 7}, false);
  auto base = [&]() {
    Call c;
    c.in = {A.t(), B.t()};
    c.out = {Y.t()};
    c.ip = {0, 0, 0, 0};
    c.fp = {1, 1, 0, 0};
    return c;
  };
  {
    Call c = base();
    CHECK(c.run("gemm_f32") == 0, "baseline gemm: %s", c.err);
  }
  { Call c = base(); c.in.pop_back(); expect_error("too few inputs", c, "gemm_f32"); }
  { Call c = base(); c.ip.pop_back(); expect_error("iparams count", c, "gemm_f32"); }
  { Call c = base(); c.fp.push_back(0); expect_error("fparams count", c, "gemm_f32"); }
  { Call c = base(); c.out = {Ybad.t()}; expect_error("output shape", c, "gemm_f32"); }
  { Call c = base(); c.in[0].dtype = ODC_FLOAT16; expect_error("dtype", c, "gemm_f32"); }
  { Call c = base(); c.in[0].device_type = ODC_DEVICE_CUDA; expect_error("device", c, "gemm_f32"); }
  { Call c = base(); c.in[0].data = nullptr; expect_error("null data", c, "gemm_f32"); }
  { Call c = base(); c.in[0].ndim = 1; expect_error("rank", c, "gemm_f32"); }
  { Call c = base(); c.ip[2] = 99; expect_error("activation code", c, "gemm_f32"); }
  { Call c = base(); c.ip[0] = 1; expect_error("trans mismatch", c, "gemm_f32"); }
  { Call c = base(); c.threads = 0; expect_error("num_threads 0", c, "gemm_f32"); }
  {
    Call c = base();
    static const int64_t strides[2] = {1, 4};
    c.in[0].strides = strides;
    expect_error("non-contiguous", c, "gemm_f32");
  }
  {
    Call c = base();
    odc_tensor o = A.t();  // Y aliasing A (same byte range)
    static int64_t s2[2] = {4, 5};
    o.shape = s2;
    c.out = {o};
    c.out[0].shape = Y.shape.data();
    c.out[0].data = A.v.data();
    T big({4, 6});
    T Aa({4, 5});
    c.in[0] = Aa.t();
    c.out[0].data = Aa.v.data() + 1;  // overlaps A's buffer
    // Aa has 20 floats, Y needs 24: only test overlap logic when sizes allow
    std::vector<float> buf(60);
    c.in[0].data = buf.data();
    c.out[0].data = buf.data() + 10;
    expect_error("output overlaps input", c, "gemm_f32");
  }
  {
    Call c = base();
    T bias({3});
    c.in.push_back(bias.t());
    expect_error("bias shape", c, "gemm_f32");
  }
  {
    T X({1, 4, 8, 8}), Wt({8, 3, 3, 3}), Yc({1, 8, 6, 6}, false);
    Call c;
    c.in = {X.t(), Wt.t()};
    c.out = {Yc.t()};
    c.ip = {1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0};
    c.fp = {0, 0};
    expect_error("conv channel mismatch", c, "conv2d_f32");
    T W2({8, 4, 3, 3});
    c.in[1] = W2.t();
    CHECK(c.run("conv2d_f32") == 0, "conv baseline: %s", c.err);
    c.ip[0] = 0;
    expect_error("conv stride 0", c, "conv2d_f32");
    c.ip[0] = 1, c.ip[8] = 3;
    expect_error("conv bad group", c, "conv2d_f32");
    c.ip[8] = 1, c.ip[2] = 1;
    expect_error("conv output shape", c, "conv2d_f32");
    c.ip[2] = 0, c.ip[8] = 2;
    expect_error("depthwise group != C", c, "depthwise_conv2d_f32");
    T big({1, 4, 2, 2});
    c.in[0] = big.t();
    c.ip[8] = 1;
    expect_error("kernel larger than input", c, "conv2d_f32");
  }
  {  // conv2d_packed_f32: packed shape, logical sizes
    T X({1, 4, 8, 8}), Wp({1, 1, 36, 32}), Yc({1, 8, 6, 6}, false);
    Call c;
    c.in = {X.t(), Wp.t()};
    c.out = {Yc.t()};
    c.ip = {1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 8, 3, 3};
    c.fp = {0, 0};
    CHECK(c.run("conv2d_packed_f32") == 0, "packed conv baseline: %s", c.err);
    c.ip[12] = 2;
    expect_error("packed conv Kg mismatch", c, "conv2d_packed_f32");
    c.ip[12] = 3, c.ip[11] = 40;
    expect_error("packed conv Co needs 2 panels", c, "conv2d_packed_f32");
    c.ip[11] = 0;
    expect_error("packed conv Co 0", c, "conv2d_packed_f32");
    c.ip[11] = 8, c.ip[8] = 3;
    expect_error("packed conv bad group", c, "conv2d_packed_f32");
    c.ip[8] = 1;
    c.ip.pop_back();
    expect_error("packed conv iparam count", c, "conv2d_packed_f32");
  }
  {
    T X({1, 2, 5, 5}), Yp({1, 2, 3, 3}, false);
    Call c;
    c.in = {X.t()};
    c.out = {Yp.t()};
    c.ip = {3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 0};
    CHECK(c.run("maxpool2d_f32") == 0, "maxpool baseline: %s", c.err);
    c.ip[10] = 1;  // ceil mode gives the same size here, fine
    CHECK(c.run("maxpool2d_f32") == 0, "maxpool ceil: %s", c.err);
    c.ip[4] = 3;
    expect_error("pad >= kernel", c, "maxpool2d_f32");
    c.ip[4] = 0;
    expect_error("avgpool iparam count", c, "avgpool2d_f32");
  }
  {
    T X({2, 3}), Yb({2, 4}, false);
    Call c;
    c.in = {X.t(), X.t()};
    c.out = {Yb.t()};
    c.ip = {0, 0};
    c.fp = {0, 0};
    expect_error("binary broadcast mismatch", c, "binary_f32");
    c.ip = {9, 0};
    expect_error("binary op code", c, "binary_f32");
  }
  {
    T X({2, 3}), Ys({2, 3}, false);
    Call c;
    c.in = {X.t()};
    c.out = {Ys.t()};
    c.ip = {2, 0};
    expect_error("softmax axis", c, "softmax_f32");
    c.ip = {0};
    c.fp = {1e-5};
    T S({4});
    c.in.push_back(S.t());
    c.ip = {-1};
    expect_error("layernorm scale size", c, "layer_norm_f32");
    c.in.pop_back();
    c.ip = {0, 9};
    c.fp = {0, 0};
    expect_error("resize nearest mode", c, "resize_nearest_f32");
  }
  // NULL args, tiny error buffer, NULL error buffer
  {
    char small[8];
    int rc = find("gemm_f32")(nullptr, small, sizeof small);
    CHECK(rc != 0 && std::strlen(small) < sizeof small, "null args: rc=%d", rc);
    rc = find("gemm_f32")(nullptr, nullptr, 0);
    CHECK(rc != 0, "null args without error buffer: rc=%d", rc);
  }
}

void test_registry_and_threads() {
  int32_t n = 0;
  const odc_builtin* t = odc_native_kernels(&n);
  // every kernel of internal.h's list is registered, under its name, exactly once
#define ODC_NAME(name) #name,
  const char* const expected[] = {ODC_NATIVE_KERNELS(ODC_NAME)};
#undef ODC_NAME
  const int32_t n_expected = (int32_t)(sizeof(expected) / sizeof(expected[0]));
  CHECK(n == n_expected, "kernel count %d, internal.h lists %d", n, n_expected);
  for (const char* name : expected) {
    int found = 0;
    for (int i = 0; i < n; ++i) found += t[i].name && std::strcmp(t[i].name, name) == 0;
    CHECK(found == 1, "%s registered %d times", name, found);
  }
  for (int i = 0; i < n; ++i) {
    CHECK(t[i].fn != nullptr && t[i].name != nullptr, "entry %d", i);
    for (int j = 0; j < i; ++j) CHECK(std::strcmp(t[i].name, t[j].name), "duplicate %s", t[i].name);
  }
  // concurrent callers share the worker pool: results must stay exact
  T A({150, 90}), B({90, 130});
  std::vector<double> ref(150 * 130);
  for (int i = 0; i < 150; ++i)
    for (int j = 0; j < 130; ++j) {
      double s = 0;
      for (int k = 0; k < 90; ++k) s += (double)A.v[i * 90 + k] * B.v[k * 130 + j];
      ref[i * 130 + j] = s;
    }
  std::vector<T> Ys(4, T({150, 130}, false));
  std::vector<int> rcs(4, -1);
  std::vector<std::thread> th;
  for (int w = 0; w < 4; ++w)
    th.emplace_back([&, w] {
      int rc = 0;
      for (int rep = 0; rep < 20 && rc == 0; ++rep) {
        Call c;
        c.in = {A.t(), B.t()};
        c.out = {Ys[w].t()};
        c.ip = {0, 0, 0, 0};
        c.fp = {1, 1, 0, 0};
        c.threads = 2;
        rc = c.run("gemm_f32");
      }
      rcs[w] = rc;
    });
  for (auto& x : th) x.join();
  for (int w = 0; w < 4; ++w) {
    CHECK(rcs[w] == 0, "concurrent gemm rc %d", rcs[w]);
    close_all("concurrent gemm", Ys[w].v, ref, 1e-5 + 2e-7 * 90, 1e-5);
  }
}


// ---------------------------------------------------------------- data movement
// A raw tensor of any element size (values are distinct small integers, so byte-exact compares).
struct R {
  std::vector<int64_t> shape;
  std::vector<uint8_t> b;
  int32_t dtype = ODC_FLOAT32;
  int es = 4;
  R() {}
  R(std::vector<int64_t> s, int32_t dt, int esize, bool fill = true)
      : shape(std::move(s)), dtype(dt), es(esize) {
    b.assign((size_t)(numel() * es), 0);
    if (fill)
      for (auto& x : b) x = (uint8_t)ri(0, 255);
  }
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  odc_tensor t() {
    odc_tensor o;
    o.data = b.empty() ? nullptr : b.data();
    o.dtype = dtype;
    o.ndim = (int32_t)shape.size();
    o.shape = shape.data();
    o.strides = nullptr;
    o.device_type = ODC_DEVICE_CPU;
    o.device_id = 0;
    return o;
  }
};
std::vector<int64_t> cstrides(const std::vector<int64_t>& s) {
  std::vector<int64_t> st(s.size());
  int64_t a = 1;
  for (int d = (int)s.size() - 1; d >= 0; --d) st[d] = a, a *= s[d];
  return st;
}
// index of flat i in shape s
std::vector<int64_t> unravel(int64_t i, const std::vector<int64_t>& s) {
  std::vector<int64_t> idx(s.size());
  for (int d = (int)s.size() - 1; d >= 0; --d) idx[d] = i % s[d], i /= s[d];
  return idx;
}
const struct { int32_t dt; int es; } kTypes[] = {
    {ODC_FLOAT32, 4}, {ODC_INT64, 8}, {ODC_UINT8, 1}, {ODC_FLOAT16, 2}};

std::vector<int64_t> rand_shape(int rank, int lo, int hi) {
  std::vector<int64_t> s(rank);
  for (auto& d : s) d = ri(lo, hi);
  return s;
}

void test_movement() {
  // copy
  for (auto ty : kTypes) {
    R X({3, 5, 7}, ty.dt, ty.es), Y({105}, ty.dt, ty.es, false);
    Call c;
    c.in = {X.t()};
    c.out = {Y.t()};
    c.threads = 3;
    CHECK(c.run("copy") == 0, "copy: %s", c.err);
    CHECK(X.b == Y.b, "copy dtype %d differs", ty.dt);
    Call d;  // aliased view: a no-op
    d.in = {X.t()};
    odc_tensor o = X.t();
    static int64_t flat[1] = {105};
    o.ndim = 1;
    o.shape = flat;
    d.out = {o};
    CHECK(d.run("copy") == 0, "copy in place: %s", d.err);
  }
  {  // a large copy (threads)
    R X({1 << 20}, ODC_FLOAT32, 4), Y({1024, 1024}, ODC_FLOAT32, 4, false);
    Call c;
    c.in = {X.t()};
    c.out = {Y.t()};
    c.threads = 4;
    CHECK(c.run("copy") == 0 && X.b == Y.b, "large copy: %s", c.err);
  }
  // transpose
  for (int it = 0; it < 60; ++it) {
    auto ty = kTypes[it % 4];
    const int r = it == 0 ? 2 : (int)ri(1, 6);
    std::vector<int64_t> xs = it == 0 ? std::vector<int64_t>{67, 129} : rand_shape(r, 1, r > 4 ? 4 : 7);
    std::vector<int64_t> perm(r);
    for (int i = 0; i < r; ++i) perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), rng);
    std::vector<int64_t> ys(r);
    for (int i = 0; i < r; ++i) ys[i] = xs[perm[i]];
    R X(xs, ty.dt, ty.es), Y(ys, ty.dt, ty.es, false), W(ys, ty.dt, ty.es, false);
    auto xst = cstrides(xs);
    for (int64_t i = 0; i < Y.numel(); ++i) {
      auto idx = unravel(i, ys);
      int64_t off = 0;
      for (int d = 0; d < r; ++d) off += idx[d] * xst[perm[d]];
      std::memcpy(&W.b[i * ty.es], &X.b[off * ty.es], ty.es);
    }
    Call c;
    c.in = {X.t()};
    c.out = {Y.t()};
    c.ip = perm;
    c.threads = (int)ri(1, 4);
    CHECK(c.run("transpose") == 0, "transpose: %s", c.err);
    CHECK(Y.b == W.b, "transpose rank %d dtype %d differs", r, ty.dt);
  }
  // slice
  for (int it = 0; it < 60; ++it) {
    auto ty = kTypes[it % 4];
    const int r = (int)ri(1, 5);
    std::vector<int64_t> xs = rand_shape(r, 1, 8), st(r), en(r), sp(r), ys(r);
    for (int d = 0; d < r; ++d) {
      sp[d] = ri(-3, 3);
      if (sp[d] == 0) sp[d] = 1;
      st[d] = ri(0, xs[d] - 1);
      if (sp[d] > 0) {
        en[d] = ri(st[d], xs[d]);
        ys[d] = (en[d] - st[d] + sp[d] - 1) / sp[d];
      } else {
        en[d] = ri(-1, st[d]);
        ys[d] = (st[d] - en[d] - sp[d] - 1) / -sp[d];
      }
    }
    R X(xs, ty.dt, ty.es), Y(ys, ty.dt, ty.es, false), W(ys, ty.dt, ty.es, false);
    auto xst = cstrides(xs);
    for (int64_t i = 0; i < Y.numel(); ++i) {
      auto idx = unravel(i, ys);
      int64_t off = 0;
      for (int d = 0; d < r; ++d) off += (st[d] + idx[d] * sp[d]) * xst[d];
      std::memcpy(&W.b[i * ty.es], &X.b[off * ty.es], ty.es);
    }
    Call c;
    c.in = {X.t()};
    c.out = {Y.t()};
    c.ip = st;
    c.ip.insert(c.ip.end(), en.begin(), en.end());
    c.ip.insert(c.ip.end(), sp.begin(), sp.end());
    c.threads = (int)ri(1, 4);
    CHECK(c.run("slice") == 0, "slice: %s", c.err);
    CHECK(Y.b == W.b, "slice rank %d dtype %d differs", r, ty.dt);
  }
  // concat and split (inverse of each other)
  for (int it = 0; it < 40; ++it) {
    auto ty = kTypes[it % 4];
    const int r = (int)ri(1, 4);
    std::vector<int64_t> base = rand_shape(r, 1, 6);
    const int axis = (int)ri(0, r - 1);
    const int n = (int)ri(1, 4);
    std::vector<R> X;
    int64_t total = 0;
    for (int i = 0; i < n; ++i) {
      auto s = base;
      s[axis] = ri(0, 5);
      total += s[axis];
      X.emplace_back(s, ty.dt, ty.es);
    }
    auto ys = base;
    ys[axis] = total;
    R Y(ys, ty.dt, ty.es, false), W(ys, ty.dt, ty.es, false);
    int64_t outer = 1, inner = ty.es;
    for (int d = 0; d < axis; ++d) outer *= base[d];
    for (int d = axis + 1; d < r; ++d) inner *= base[d];
    for (int64_t o = 0, pos = 0; o < outer; ++o)
      for (int i = 0; i < n; ++i) {
        const int64_t len = X[i].shape[axis] * inner;
        if (len) std::memcpy(&W.b[pos], &X[i].b[o * len], len);
        pos += len;
      }
    Call c;
    for (auto& x : X) c.in.push_back(x.t());
    c.out = {Y.t()};
    c.ip = {axis};
    c.threads = (int)ri(1, 4);
    CHECK(c.run("concat") == 0, "concat: %s", c.err);
    CHECK(Y.b == W.b, "concat rank %d axis %d dtype %d differs", r, axis, ty.dt);
    std::vector<R> P;
    for (auto& x : X) P.emplace_back(x.shape, ty.dt, ty.es, false);
    Call s;
    s.in = {Y.t()};
    for (auto& p : P) s.out.push_back(p.t());
    s.ip = {axis};
    s.threads = (int)ri(1, 4);
    CHECK(s.run("split") == 0, "split: %s", s.err);
    for (int i = 0; i < n; ++i) CHECK(P[i].b == X[i].b, "split piece %d differs", i);
  }
  // gather
  for (int it = 0; it < 40; ++it) {
    auto ty = kTypes[it % 4];
    const int r = (int)ri(1, 4);
    std::vector<int64_t> ds = rand_shape(r, 1, 6);
    const int axis = (int)ri(0, r - 1);
    std::vector<int64_t> is = rand_shape((int)ri(0, 2), 1, 4);
    R D(ds, ty.dt, ty.es);
    const bool i64 = it % 2 == 0;
    R I(is, i64 ? ODC_INT64 : ODC_INT32, i64 ? 8 : 4, false);
    std::vector<int64_t> iv(I.numel());
    for (int64_t k = 0; k < I.numel(); ++k) {
      iv[k] = ri(-ds[axis], ds[axis] - 1);
      if (i64) std::memcpy(&I.b[k * 8], &iv[k], 8);
      else { int32_t v = (int32_t)iv[k]; std::memcpy(&I.b[k * 4], &v, 4); }
    }
    std::vector<int64_t> ys(ds.begin(), ds.begin() + axis);
    ys.insert(ys.end(), is.begin(), is.end());
    ys.insert(ys.end(), ds.begin() + axis + 1, ds.end());
    R Y(ys, ty.dt, ty.es, false), W(ys, ty.dt, ty.es, false);
    int64_t outer = 1, inner = ty.es;
    for (int d = 0; d < axis; ++d) outer *= ds[d];
    for (int d = axis + 1; d < r; ++d) inner *= ds[d];
    for (int64_t o = 0, pos = 0; o < outer; ++o)
      for (int64_t k = 0; k < I.numel(); ++k, pos += inner) {
        int64_t v = iv[k] < 0 ? iv[k] + ds[axis] : iv[k];
        std::memcpy(&W.b[pos], &D.b[(o * ds[axis] + v) * inner], inner);
      }
    Call c;
    c.in = {D.t(), I.t()};
    c.out = {Y.t()};
    c.ip = {axis};
    c.threads = (int)ri(1, 4);
    CHECK(c.run("gather") == 0, "gather: %s", c.err);
    CHECK(Y.b == W.b, "gather rank %d axis %d dtype %d differs", r, axis, ty.dt);
  }
  // argument errors
  {
    R X({2, 3}, ODC_FLOAT32, 4), Y({3, 2}, ODC_FLOAT32, 4, false), Yi({3, 2}, ODC_INT64, 8, false);
    R Ybad({3, 3}, ODC_FLOAT32, 4, false);
    auto mk = [&](R& y, std::vector<int64_t> ip) {
      Call c;
      c.in = {X.t()};
      c.out = {y.t()};
      c.ip = ip;
      return c;
    };
    { Call c = mk(Y, {1, 0}); CHECK(c.run("transpose") == 0, "transpose baseline: %s", c.err); }
    { Call c = mk(Y, {0, 0}); expect_error("transpose not a perm", c, "transpose"); }
    { Call c = mk(Y, {1}); expect_error("transpose perm length", c, "transpose"); }
    { Call c = mk(Ybad, {1, 0}); expect_error("transpose shape", c, "transpose"); }
    { Call c = mk(Yi, {1, 0}); expect_error("transpose dtype", c, "transpose"); }
    { Call c = mk(Ybad, {}); expect_error("copy numel", c, "copy"); }
    { Call c = mk(Y, {}); c.fp = {1.0}; expect_error("copy fparams", c, "copy"); }
    { Call c = mk(Y, {0}); expect_error("concat shape", c, "concat"); }
    { Call c = mk(Y, {2}); expect_error("concat axis", c, "concat"); }
    { Call c = mk(Y, {0}); expect_error("split shape", c, "split"); }
    R S({1, 2}, ODC_FLOAT32, 4, false);
    { Call c = mk(S, {0, 0, 1, 2, 1, 1}); CHECK(c.run("slice") == 0, "slice ok: %s", c.err); }
    { Call c = mk(S, {0, 0, 1, 2, 1, 0}); expect_error("slice step 0", c, "slice"); }
    { Call c = mk(S, {0, 2, 1, 4, 1, 1}); expect_error("slice out of range", c, "slice"); }
    { Call c = mk(S, {0, 0, 1, 3, 1, 1}); expect_error("slice count", c, "slice"); }
    R I({2}, ODC_INT64, 8, false), G({2, 2}, ODC_FLOAT32, 4, false);
    int64_t bad[2] = {0, 5};
    std::memcpy(I.b.data(), bad, 16);
    Call c;
    c.in = {X.t(), I.t()};
    c.out = {G.t()};
    c.ip = {1};
    expect_error("gather index range", c, "gather");
    c.in[1].dtype = ODC_FLOAT32;
    expect_error("gather index dtype", c, "gather");
    R Xs({2, 3}, 8 /* string */, 8);
    Call d;
    d.in = {Xs.t()};
    d.out = {Xs.t()};
    expect_error("copy unsupported dtype", d, "copy");
  }
}
}  // namespace

// ------------------------------------------------------------------ pad
// Reference index along one axis (crop by the negative pads, then pad), by walking: -1 = value.
int64_t ref_pad_index(int64_t o, int64_t n_in, int64_t b, int64_t e, int mode) {
  const int64_t lo = b < 0 ? -b : 0, n = n_in - lo - (e < 0 ? -e : 0);
  int64_t i = o - (b > 0 ? b : 0);
  if (i >= 0 && i < n) return lo + i;
  if (mode == 0) return -1;
  if (mode == 2) return lo + (i < 0 ? 0 : n - 1);
  if (mode == 3) {
    while (i < 0) i += n;
    while (i >= n) i -= n;
    return lo + i;
  }
  if (n == 1) return lo;
  while (i < 0 || i >= n) {
    if (i < 0) i = -i;
    if (i >= n) i = 2 * (n - 1) - i;
  }
  return lo + i;
}

void test_pad() {
  for (int it = 0; it < 120; ++it) {
    auto ty = kTypes[it % 4];
    const int mode = (it / 4) % 4;
    const int r = it == 0 ? 3 : (int)ri(1, 4);
    std::vector<int64_t> xs = rand_shape(r, 1, 7), pb(r), pe(r), ys(r);
    for (int d = 0; d < r; ++d) {
      const int64_t lim = mode == 0 ? 4 : (mode == 1 ? 2 * xs[d] : 5);
      pb[d] = ri(-(xs[d] - 1) / 2, lim);
      pe[d] = ri(-(xs[d] - 1) / 2, lim);
      if (mode == 1 && xs[d] - (pb[d] < 0 ? -pb[d] : 0) - (pe[d] < 0 ? -pe[d] : 0) < 1)
        pb[d] = pe[d] = 0;
      ys[d] = xs[d] + pb[d] + pe[d];
    }
    if (it == 0) xs = {1, 2, 3}, pb = {0, 1, -1}, pe = {2, 0, 4}, ys = {3, 3, 6};
    R X(xs, ty.dt, ty.es), Y(ys, ty.dt, ty.es, false), W(ys, ty.dt, ty.es, false);
    const int64_t bits = ty.es == 8 ? (int64_t)0x8123456789abcdefULL : (int64_t)0x5a6b7c8d;
    auto xst = cstrides(xs);
    for (int64_t i = 0; i < Y.numel(); ++i) {
      auto idx = unravel(i, ys);
      int64_t off = 0;
      bool value = false;
      for (int d = 0; d < r; ++d) {
        const int64_t j = ref_pad_index(idx[d], xs[d], pb[d], pe[d], mode);
        if (j < 0) value = true;
        off += j * xst[d];
      }
      if (value)
        std::memcpy(&W.b[i * ty.es], &bits, ty.es);  // little-endian low bytes
      else
        std::memcpy(&W.b[i * ty.es], &X.b[off * ty.es], ty.es);
    }
    Call c;
    c.in = {X.t()};
    c.out = {Y.t()};
    c.ip = {mode};
    c.ip.insert(c.ip.end(), pb.begin(), pb.end());
    c.ip.insert(c.ip.end(), pe.begin(), pe.end());
    c.ip.push_back(bits);
    c.threads = (int)ri(1, 4);
    CHECK(c.run("pad") == 0, "pad: %s", c.err);
    CHECK(Y.b == W.b, "pad rank %d dtype %d mode %d differs", r, ty.dt, mode);
  }
  {  // a larger float32 image pad (threads), and a crop to nothing on one axis (constant)
    R X({2, 8, 33, 47}, ODC_FLOAT32, 4), Y({2, 8, 37, 49}, ODC_FLOAT32, 4, false);
    Call c;
    c.in = {X.t()};
    c.out = {Y.t()};
    c.ip = {1, 0, 0, 2, 1, 0, 0, 2, 1, 0};
    c.threads = 3;
    CHECK(c.run("pad") == 0, "pad large: %s", c.err);
    CHECK(std::memcmp(&Y.b[((0 * 37 + 2) * 49 + 1) * 4], &X.b[0], 4) == 0, "pad large: corner");
    R Z({3, 4}, ODC_INT32, 4), E({0, 6}, ODC_INT32, 4, false);
    Call z;
    z.in = {Z.t()};
    z.out = {E.t()};
    z.ip = {0, -2, 1, -1, 1, 0};
    CHECK(z.run("pad") == 0, "pad crop to empty: %s", z.err);
  }
  // errors
  R X({3, 4}, ODC_FLOAT32, 4), Y({5, 4}, ODC_FLOAT32, 4, false), Yi({5, 4}, ODC_INT32, 4, false);
  auto base = [&]() {
    Call c;
    c.in = {X.t()};
    c.out = {Y.t()};
    c.ip = {0, 1, 0, 1, 0, 0};
    return c;
  };
  { Call c = base(); CHECK(c.run("pad") == 0, "pad base: %s", c.err); }
  { Call c = base(); c.ip = {0, 1, 0, 1, 0}; expect_error("pad iparams count", c, "pad"); }
  { Call c = base(); c.ip[0] = 7; expect_error("pad mode", c, "pad"); }
  { Call c = base(); c.ip[1] = 2; expect_error("pad Y shape", c, "pad"); }
  { Call c = base(); c.out = {Yi.t()}; expect_error("pad dtype", c, "pad"); }
  { Call c = base(); c.fp = {1.0}; expect_error("pad fparams", c, "pad"); }
  {
    R Z({3, 4}, ODC_FLOAT32, 4), E({3, 5}, ODC_FLOAT32, 4, false);
    Call c;
    c.in = {Z.t()};
    c.out = {E.t()};
    c.ip = {1, 0, -4, 0, 5, 0};  // reflect on an axis cropped to nothing
    expect_error("pad reflect empty", c, "pad");
    c.ip = {0, 0, -5, 0, 6, 0};  // crops more than the axis
    expect_error("pad over-crop", c, "pad");
  }
}

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], "--isa")) {
      if (!odc_native_force_isa(argv[i + 1])) {
        std::printf("ISA %s not supported on this CPU: skipped\n", argv[i + 1]);
        return 0;
      }
    }
  std::printf("native kernels, ISA %s\n", odc_native_isa());
  struct {
    const char* name;
    void (*fn)();
  } tests[] = {{"gemm", test_gemm},         {"conv", test_conv},
               {"conv_transpose", test_conv_transpose}, {"pool", test_pool},
               {"softmax", test_softmax},   {"layer_norm", test_layer_norm}, {"reduce", test_reduce},
               {"resize", test_resize},     {"binary", test_binary},
               {"unary", test_unary},       {"program", test_program},       {"movement", test_movement}, {"pad", test_pad},
               {"errors", test_errors},
               {"registry+threads", test_registry_and_threads}};
  for (auto& t : tests) {
    const int f0 = g_failures, c0 = g_checks;
    t.fn();
    std::printf("%-18s %4d checks, %d failures\n", t.name, g_checks - c0, g_failures - f0);
  }
  std::printf("%s: %d checks, %d failures\n", g_failures ? "FAILED" : "PASSED", g_checks, g_failures);
  return g_failures ? 1 : 0;
}
