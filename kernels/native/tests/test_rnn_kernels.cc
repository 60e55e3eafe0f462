// Tests for the recurrent kernels (lstm_f32, gru_f32) against a double-precision ONNX
// reference: directions, layouts, biases, sequence_lens (int32 / int64), initial states,
// peepholes, clip, input_forget, linear_before_reset, omitted outputs, threads, plan-provided
// workspace; plus argument checking (every bad call returns non-zero with a one-line message).
//
// Tolerance: the kernels accumulate in fp32 (K = I or H terms per gate, inputs in [-1, 1],
// weights in [-0.5, 0.5]) and use polynomial sigmoid / tanh (error ~2e-7); the recurrence
// contracts errors (|d tanh| <= 1, gates < 1), so atol 1e-5 + 1e-7 * (I + H) holds with margin.
// Usage: test_rnn_kernels [--isa scalar|avx2|avx512]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "registry.h"

namespace {

int g_failures = 0, g_checks = 0;
std::mt19937 rng(4242);

#define CHECK(cond, ...)                                \
  do {                                                  \
    ++g_checks;                                         \
    if (!(cond)) {                                      \
      ++g_failures;                                     \
      std::printf("FAIL %s:%d: ", __FILE__, __LINE__);  \
      std::printf(__VA_ARGS__);                         \
      std::printf("\n");                                \
    }                                                   \
  } while (0)

int64_t ri(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }
float rf(float lo = -1.f, float hi = 1.f) {
  return std::uniform_real_distribution<float>(lo, hi)(rng);
}

struct T {
  std::vector<int64_t> shape;
  std::vector<float> v;
  int32_t dtype = ODC_FLOAT32;
  T() {}
  explicit T(std::vector<int64_t> s, float lo = -1.f, float hi = 1.f, bool random = true)
      : shape(std::move(s)) {
    v.resize((size_t)numel());
    for (auto& x : v) x = random ? rf(lo, hi) : 0.f;
  }
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  odc_tensor t() {
    odc_tensor o;
    std::memset(&o, 0, sizeof o);
    o.data = v.empty() ? nullptr : v.data();
    o.dtype = dtype;
    o.ndim = (int32_t)shape.size();
    o.shape = shape.data();
    o.device_type = ODC_DEVICE_CPU;
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
    const double d = std::fabs((double)got[i] - ref[i]);
    const double lim = atol + rtol * std::fabs(ref[i]);
    if (!(d <= lim) && (worst == 0 || d / lim > worst)) worst = std::isnan(d) ? 1e300 : d / lim, wi = i;
  }
  if (worst > 0) {
    ++g_failures;
    std::printf("FAIL %s: element %zu got %.9g ref %.9g (%.3g x tolerance)\n", what, wi,
                (double)got[wi], ref[wi], worst);
    return false;
  }
  return true;
}

void expect_error(const char* what, Call& c, const char* kernel) {
  const int rc = c.run(kernel);
  ++g_checks;
  const bool one_line = std::strchr(c.err, '\n') == nullptr && std::strlen(c.err) > 0;
  if (rc == 0 || !one_line) {
    ++g_failures;
    std::printf("FAIL error case '%s': rc=%d msg='%s'\n", what, rc, c.err);
  } else if (std::getenv("ODC_TEST_VERBOSE")) {
    std::printf("  ok: %-32s -> %s\n", what, c.err);
  }
}

double sig(double x) { return 1 / (1 + std::exp(-x)); }

struct Case {
  bool lstm = true;
  int64_t S = 3, B = 2, I = 4, H = 5;
  int dir = 0, layout = 0;
  bool bias = true, lens = false, lens64 = false, init = false, peep = false;
  double clip = 0;
  int flag = 0;  // input_forget (LSTM) / linear_before_reset (GRU)
  bool y = true, yh = true, yc = true;
  int threads = 1;
  bool plan_ws = false;
};

// Runs one case through the kernel and the reference; returns false on a failure.
void run_case(const Case& k, const char* tag) {
  const int64_t S = k.S, B = k.B, I = k.I, H = k.H, D = k.dir == 2 ? 2 : 1;
  const int64_t G = k.lstm ? 4 : 3, GH = G * H;
  const float wr = 0.5f;
  T X(k.layout ? std::vector<int64_t>{B, S, I} : std::vector<int64_t>{S, B, I});
  T W({D, GH, I}, -wr, wr), R({D, GH, H}, -wr, wr), Bs({D, 2 * GH}, -wr, wr);
  T P({D, 3 * H}, -wr, wr);
  const std::vector<int64_t> sshape =
      k.layout ? std::vector<int64_t>{B, D, H} : std::vector<int64_t>{D, B, H};
  T H0(sshape), C0(sshape);
  std::vector<int64_t> lens((size_t)B);
  for (auto& l : lens) l = k.lens ? ri(0, S) : S;
  T L32({B}), L64({B});
  L32.dtype = ODC_INT32;
  L64.dtype = ODC_INT64;
  L64.v.resize((size_t)B * 2);
  for (int64_t b = 0; b < B; ++b) {
    int32_t v32 = (int32_t)lens[b];
    std::memcpy(&L32.v[b], &v32, 4);
    std::memcpy(reinterpret_cast<char*>(L64.v.data()) + 8 * b, &lens[b], 8);
  }
  // kernel layouts: WT [D, I, GH], RT [D, H, GH]
  T WT({D, I, GH}), RT({D, H, GH});
  for (int64_t d = 0; d < D; ++d)
    for (int64_t g = 0; g < GH; ++g) {
      for (int64_t i = 0; i < I; ++i) WT.v[(d * I + i) * GH + g] = W.v[(d * GH + g) * I + i];
      for (int64_t i = 0; i < H; ++i) RT.v[(d * H + i) * GH + g] = R.v[(d * GH + g) * H + i];
    }
  const std::vector<int64_t> yshape = k.layout ? std::vector<int64_t>{B, S, D, H}
                                               : std::vector<int64_t>{S, D, B, H};
  T Y(yshape, 0, 0, false), Yh(sshape, 0, 0, false), Yc(sshape, 0, 0, false);
  for (auto* t : {&Y, &Yh, &Yc}) std::fill(t->v.begin(), t->v.end(), NAN);  // all written?
  // reference
  std::vector<double> ry((size_t)Y.numel(), 0.0), rh((size_t)Yh.numel()), rc((size_t)Yc.numel());
  auto srow = [&](int64_t d, int64_t b) { return k.layout ? b * D + d : d * B + b; };
  for (int64_t d = 0; d < D; ++d) {
    const bool rev = k.dir == 1 || d == 1;
    for (int64_t b = 0; b < B; ++b) {
      std::vector<double> h((size_t)H, 0.0), c((size_t)H, 0.0);
      if (k.init)
        for (int64_t j = 0; j < H; ++j) {
          h[j] = H0.v[srow(d, b) * H + j];
          c[j] = C0.v[srow(d, b) * H + j];
        }
      for (int64_t s = 0; s < S; ++s) {
        const int64_t t = rev ? S - 1 - s : s;
        const bool live = t < lens[b];
        const float* x = X.v.data() + (k.layout ? b * S + t : t * B + b) * I;
        std::vector<double> gx((size_t)GH), gr((size_t)GH);
        for (int64_t g = 0; g < GH; ++g) {
          double sx = k.bias ? Bs.v[d * 2 * GH + g] : 0.0;
          double sr = k.bias ? Bs.v[d * 2 * GH + GH + g] : 0.0;
          for (int64_t i = 0; i < I; ++i) sx += (double)x[i] * W.v[(d * GH + g) * I + i];
          for (int64_t i = 0; i < H; ++i) sr += h[i] * R.v[(d * GH + g) * H + i];
          gx[g] = sx, gr[g] = sr;
        }
        auto cl = [&](double v) { return k.clip > 0 ? std::min(std::max(v, -k.clip), k.clip) : v; };
        std::vector<double> hn((size_t)H), cn((size_t)H);
        if (k.lstm) {
          const float* p = P.v.data() + d * 3 * H;
          for (int64_t j = 0; j < H; ++j) {
            double gi = gx[j] + gr[j], go = gx[H + j] + gr[H + j];
            double gf = gx[2 * H + j] + gr[2 * H + j], gc = gx[3 * H + j] + gr[3 * H + j];
            if (k.peep) gi += p[j] * c[j], gf += p[2 * H + j] * c[j];
            const double ig = sig(cl(gi));
            const double fg = k.flag ? 1 - ig : sig(cl(gf));
            cn[j] = fg * c[j] + ig * std::tanh(cl(gc));
            if (k.peep) go += p[H + j] * cn[j];
            hn[j] = sig(cl(go)) * std::tanh(cn[j]);
          }
        } else {
          if (!k.flag) {  // linear_before_reset = 0: (r * h) @ Rh^T + Rbh
            std::vector<double> r((size_t)H);
            for (int64_t j = 0; j < H; ++j) r[j] = sig(cl(gx[H + j] + gr[H + j]));
            for (int64_t j = 0; j < H; ++j) {
              double s2 = k.bias ? Bs.v[d * 2 * GH + GH + 2 * H + j] : 0.0;
              for (int64_t i = 0; i < H; ++i) s2 += r[i] * h[i] * R.v[(d * GH + 2 * H + j) * H + i];
              gr[2 * H + j] = s2;
            }
          }
          for (int64_t j = 0; j < H; ++j) {
            const double z = sig(cl(gx[j] + gr[j])), r = sig(cl(gx[H + j] + gr[H + j]));
            const double n = std::tanh(cl(k.flag ? gx[2 * H + j] + r * gr[2 * H + j]
                                                 : gx[2 * H + j] + gr[2 * H + j]));
            hn[j] = (1 - z) * n + z * h[j];
          }
        }
        for (int64_t j = 0; j < H; ++j) {
          if (live) h[j] = hn[j], c[j] = cn[j];
          ry[(k.layout ? (b * S + t) * D + d : (t * D + d) * B + b) * H + j] = live ? hn[j] : 0.0;
        }
      }
      for (int64_t j = 0; j < H; ++j) rh[srow(d, b) * H + j] = h[j], rc[srow(d, b) * H + j] = c[j];
    }
  }
  Call call;
  call.in = {X.t(), WT.t(), RT.t(), k.bias ? Bs.t() : null_tensor(),
             k.lens ? (k.lens64 ? L64.t() : L32.t()) : null_tensor(),
             k.init ? H0.t() : null_tensor()};
  if (k.lstm) {
    call.in.push_back(k.init ? C0.t() : null_tensor());
    call.in.push_back(k.peep ? P.t() : null_tensor());
  }
  while (call.in.size() > 3 && call.in.back().data == nullptr) call.in.pop_back();
  call.out = {k.y ? Y.t() : null_tensor(), k.yh ? Yh.t() : null_tensor()};
  if (k.lstm) call.out.push_back(k.yc ? Yc.t() : null_tensor());
  while (call.out.size() > 1 && call.out.back().data == nullptr) call.out.pop_back();
  call.ip = {k.dir, k.layout, k.flag};
  call.fp = {k.clip};
  call.threads = k.threads;
  std::vector<float> ws;
  if (k.plan_ws) {
    ws.resize((size_t)(D * S * B * GH + D * (GH + H) + D * B * (GH + 3 * H)));
    call.ws = ws.data();
    call.ws_size = (int64_t)ws.size() * 4;
  }
  const char* kernel = k.lstm ? "lstm_f32" : "gru_f32";
  const int rc_ = call.run(kernel);
  CHECK(rc_ == 0, "%s %s: rc=%d %s", kernel, tag, rc_, call.err);
  if (rc_) return;
  char what[300];
  std::snprintf(what, sizeof what,
                "%s %s S=%lld B=%lld I=%lld H=%lld dir=%d layout=%d bias=%d lens=%d init=%d "
                "peep=%d clip=%g flag=%d threads=%d",
                kernel, tag, (long long)S, (long long)B, (long long)I, (long long)H, k.dir,
                k.layout, k.bias, k.lens, k.init, k.peep, k.clip, k.flag, k.threads);
  const double atol = 1e-5 + 1e-7 * (double)(I + H);
  std::string w(what);
  if (k.y) close_all((w + " Y").c_str(), Y.v, ry, atol, 1e-5);
  if (k.yh) close_all((w + " Y_h").c_str(), Yh.v, rh, atol, 1e-5);
  if (k.lstm && k.yc) close_all((w + " Y_c").c_str(), Yc.v, rc, atol, 1e-5);
}

void test_random(bool lstm) {
  for (int it = 0; it < 120; ++it) {
    Case k;
    k.lstm = lstm;
    k.S = ri(1, 7);
    k.B = ri(1, 9);
    k.I = ri(1, 20);
    k.H = it % 5 == 0 ? 16 * ri(1, 3) : ri(1, 37);
    k.dir = (int)ri(0, 2);
    k.layout = (int)ri(0, 1);
    k.bias = ri(0, 3) != 0;
    k.lens = ri(0, 2) == 0;
    k.lens64 = ri(0, 1);
    k.init = ri(0, 1);
    k.peep = lstm && ri(0, 1);
    k.clip = ri(0, 2) == 0 ? 0.3 + rf(0, 1) : 0;
    k.flag = ri(0, lstm ? 4 : 1) == 1;  // input_forget rarer than linear_before_reset
    k.y = ri(0, 4) != 0;
    k.yh = ri(0, 2) != 0;
    k.yc = ri(0, 2) != 0;
    if (!k.y && !k.yh && !k.yc) k.y = true;
    k.threads = (int)ri(1, 2);
    k.plan_ws = ri(0, 1);
    run_case(k, "random");
  }
  // large enough for the threaded recurrence (> 2 x the 2 M multiply-add grain) and input GEMM
  for (int dir = 0; dir < 3; ++dir) {
    Case k;
    k.lstm = lstm;
    k.S = 24, k.B = 11, k.I = 40, k.H = 80, k.dir = dir, k.threads = 2, k.init = true;
    k.lens = dir != 1;
    k.layout = dir == 1;
    k.flag = !lstm;
    run_case(k, "threaded");
  }
  // S = 0: the final states are the initial ones
  Case k;
  k.lstm = lstm;
  k.S = 0, k.init = true, k.y = false;
  run_case(k, "empty sequence");
}

void test_errors() {
  const int64_t S = 3, B = 2, I = 4, H = 5, GH = 4 * H;
  T X({S, B, I}), WT({1, I, GH}), RT({1, H, GH}), Bs({1, 2 * GH}), Y({S, 1, B, H}, 0, 0, false);
  T Yh({1, B, H}, 0, 0, false), L({B});
  L.dtype = ODC_INT32;
  int32_t lv[2] = {3, 4};  // 4 > S
  std::memcpy(L.v.data(), lv, 8);
  auto base = [&]() {
    Call c;
    c.in = {X.t(), WT.t(), RT.t(), Bs.t()};
    c.out = {Y.t(), Yh.t()};
    c.ip = {0, 0, 0};
    c.fp = {0.0};
    return c;
  };
  Call c = base();
  CHECK(c.run("lstm_f32") == 0, "base call failed: %s", c.err);
  c = base(), c.ip = {3, 0, 0}, expect_error("bad direction", c, "lstm_f32");
  c = base(), c.ip = {2, 0, 0}, expect_error("direction vs D", c, "lstm_f32");
  c = base(), c.ip = {0, 2, 0}, expect_error("bad layout", c, "lstm_f32");
  c = base(), c.ip = {0, 0, 2}, expect_error("bad input_forget", c, "lstm_f32");
  c = base(), c.ip = {0, 0}, expect_error("iparam count", c, "lstm_f32");
  c = base(), c.fp = {-1.0}, expect_error("negative clip", c, "lstm_f32");
  c = base(), c.fp = {NAN}, expect_error("nan clip", c, "lstm_f32");
  c = base(), c.in.resize(2), expect_error("too few inputs", c, "lstm_f32");
  c = base(), c.in[1] = RT.t(), expect_error("W shape", c, "lstm_f32");
  c = base(), c.in[2] = WT.t(), expect_error("R shape", c, "lstm_f32");
  c = base(), c.in[3] = Yh.t(), expect_error("B shape", c, "lstm_f32");
  c = base(), c.in.push_back(L.t()), expect_error("sequence_lens > S", c, "lstm_f32");
  c = base(), c.in.push_back(X.t()), expect_error("sequence_lens dtype", c, "lstm_f32");
  c = base(), c.in.push_back(null_tensor()), c.in.push_back(Y.t()),
  expect_error("initial_h shape", c, "lstm_f32");
  c = base(), c.out[0] = Yh.t(), expect_error("Y rank", c, "lstm_f32");
  c = base(), c.out[1] = X.t(), expect_error("Y_h shape", c, "lstm_f32");
  c = base(), c.out[0] = X.t(), expect_error("Y shape/rank", c, "lstm_f32");
  c = base(), c.out.push_back(Y.t()), c.out.push_back(Y.t()),
  expect_error("too many outputs", c, "lstm_f32");
  {  // Y_h over X
    T X2({S, B, I});
    T Yh2({1, B, H});
    c = base();
    odc_tensor alias = Yh2.t();
    alias.data = X2.v.data();
    c.in[0] = X2.t();
    c.out[1] = alias;
    expect_error("output overlaps input", c, "lstm_f32");
  }
  {
    T WTg({1, I, 3 * H}), RTg({1, H, 3 * H});
    Call g;
    g.in = {X.t(), WTg.t(), RTg.t()};
    g.out = {Y.t()};
    g.ip = {0, 0, 1};
    g.fp = {0.0};
    CHECK(g.run("gru_f32") == 0, "gru base call failed: %s", g.err);
    g.in = {X.t(), WT.t(), RT.t()};
    expect_error("gru with LSTM weights", g, "gru_f32");
    g.in = {X.t(), WTg.t(), RTg.t(), null_tensor(), null_tensor(), null_tensor(), null_tensor()};
    expect_error("gru with 7 inputs", g, "gru_f32");
    g.in = {X.t(), WTg.t(), RTg.t()};
    g.out = {Y.t(), Yh.t(), Yh.t()};
    expect_error("gru with 3 outputs", g, "gru_f32");
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], "--isa")) {
      if (!odc_native_force_isa(argv[i + 1])) {
        std::printf("ISA %s not supported on this CPU: skipped\n", argv[i + 1]);
        return 0;
      }
    }
  std::printf("recurrent kernels, ISA %s\n", odc_native_isa());
  struct {
    const char* name;
    void (*fn)();
  } tests[] = {{"lstm", [] { test_random(true); }},
               {"gru", [] { test_random(false); }},
               {"errors", test_errors}};
  for (auto& t : tests) {
    const int f0 = g_failures, c0 = g_checks;
    t.fn();
    std::printf("%-18s %4d checks, %d failures\n", t.name, g_checks - c0, g_failures - f0);
  }
  std::printf("%s: %d checks, %d failures\n", g_failures ? "FAILED" : "PASSED", g_checks,
              g_failures);
  return g_failures ? 1 : 0;
}
