// Argument checking, the worker pool, per-thread scratch and ISA dispatch.
#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "internal.h"

namespace odc_native {

int Err::fail(const char* fmt, ...) {
  if (buf && size > 0) {
    int n = std::snprintf(buf, (size_t)size, "%s: ", kernel ? kernel : "kernel");
    if (n < 0) n = 0;
    if (n < size) {
      va_list ap;
      va_start(ap, fmt);
      std::vsnprintf(buf + n, (size_t)(size - n), fmt, ap);
      va_end(ap);
    }
    for (char* p = buf; *p; ++p)
      if (*p == '\n' || *p == '\r') *p = ' ';  // one line
  }
  return 1;
}

int check_counts(const odc_kernel_args* a, int min_in, int max_in, int min_out, int max_out,
                 int n_ip, int n_fp, Err& e) {
  if (a->num_inputs < min_in || a->num_inputs > max_in) {
    if (min_in == max_in) return e.fail("expected %d inputs, got %d", min_in, a->num_inputs);
    return e.fail("expected %d..%d inputs, got %d", min_in, max_in, a->num_inputs);
  }
  if (a->num_outputs < min_out || a->num_outputs > max_out) {
    if (min_out == max_out) return e.fail("expected %d outputs, got %d", min_out, a->num_outputs);
    return e.fail("expected %d..%d outputs, got %d", min_out, max_out, a->num_outputs);
  }
  if (a->num_inputs > 0 && !a->inputs) return e.fail("inputs is NULL");
  if (a->num_outputs > 0 && !a->outputs) return e.fail("outputs is NULL");
  if (a->num_iparams != n_ip) return e.fail("expected %d iparams, got %d", n_ip, a->num_iparams);
  if (a->num_fparams != n_fp) return e.fail("expected %d fparams, got %d", n_fp, a->num_fparams);
  if (n_ip > 0 && !a->iparams) return e.fail("iparams is NULL");
  if (n_fp > 0 && !a->fparams) return e.fail("fparams is NULL");
  if (a->num_threads < 1) return e.fail("num_threads must be >= 1, got %d", a->num_threads);
  return 0;
}

const char* shape_str(const View& v, char* buf, size_t n) {
  size_t p = 0;
  p += (size_t)std::snprintf(buf + p, n - p, "[");
  for (int i = 0; i < v.ndim && p < n; ++i)
    p += (size_t)std::snprintf(buf + p, n - p, i ? ", %lld" : "%lld", (long long)v.shape[i]);
  if (p < n) std::snprintf(buf + p, n - p, "]");
  return buf;
}

int get_view(const odc_tensor& t, const char* what, int min_rank, int max_rank, bool optional,
             View* out, Err& e) {
  *out = View();
  if (!t.data && optional) return 0;
  if (t.dtype != ODC_FLOAT32) return e.fail("%s: dtype %d is not float32 (1)", what, t.dtype);
  if (t.device_type != ODC_DEVICE_CPU)
    return e.fail("%s: device_type %d is not CPU", what, t.device_type);
  if (t.ndim < min_rank || t.ndim > max_rank) {
    if (min_rank == max_rank) return e.fail("%s: rank %d, expected %d", what, t.ndim, min_rank);
    return e.fail("%s: rank %d, expected %d..%d", what, t.ndim, min_rank, max_rank);
  }
  if (t.ndim > 0 && !t.shape) return e.fail("%s: shape is NULL", what);
  int64_t numel = 1;
  for (int i = 0; i < t.ndim; ++i) {
    int64_t d = t.shape[i];
    if (d < 0) return e.fail("%s: negative dimension %lld", what, (long long)d);
    if (d > 0 && numel > (int64_t(1) << 46) / d) return e.fail("%s: too many elements", what);
    numel *= d;
    out->shape[i] = d;
  }
  if (t.strides) {
    int64_t s = 1;
    for (int i = t.ndim - 1; i >= 0; --i) {
      if (t.shape[i] != 1 && t.strides[i] != s)
        return e.fail("%s: non-contiguous strides are not supported", what);
      s *= t.shape[i];
    }
  }
  if (!t.data && numel > 0) return e.fail("%s: data is NULL", what);
  out->data = static_cast<float*>(t.data);
  out->ndim = t.ndim;
  out->numel = numel;
  return 0;
}

int check_no_overlap(const View& a, const char* an, const View& b, const char* bn,
                     bool allow_same, Err& e) {
  if (!a.data || !b.data || a.numel == 0 || b.numel == 0) return 0;
  if (allow_same && a.data == b.data && a.numel == b.numel) return 0;
  const float *a0 = a.data, *a1 = a.data + a.numel, *b0 = b.data, *b1 = b.data + b.numel;
  if (a0 < b1 && b0 < a1) return e.fail("%s and %s overlap in memory", an, bn);
  return 0;
}

int parse_act(int64_t code, const char* what, Err& e) {
  if (code < 0 || code >= ACT_COUNT)
    return e.fail("%s: activation code %lld not in 0..%d", what, (long long)code, ACT_COUNT - 1);
  return 0;
}

// ---------------------------------------------------------------- worker pool
namespace {

// Workers spin briefly (~tens of microseconds) for the next region before sleeping on a condition
// variable: back-to-back kernel calls then start without a futex wake-up, and an idle process
// does not burn CPU.
constexpr int kSpinIters = 4000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

struct Pool {
  std::mutex region_mu;  // one parallel region at a time; others run serially
  std::mutex mu;
  std::condition_variable cv_start, cv_done;
  std::vector<std::thread> workers;
  std::atomic<uint64_t> generation{0};
  const std::function<void(int)>* job = nullptr;
  int job_threads = 0;
  std::atomic<int> pending{0};
  std::atomic<bool> failed{false};
  // Per region, slot t (1..job_threads-1) is claimed by worker t (kClaimed) or, if that worker
  // has not started when the caller finishes its own share, taken over by the caller (kStolen):
  // a descheduled worker (an oversubscribed machine) never stalls the region.
  static constexpr int kOpen = 0, kClaimed = 1, kStolen = 2;
  std::atomic<int> slot[256];

  void worker(int idx, uint64_t seen) {  // idx >= 1
    for (;;) {
      for (int i = 0; i < kSpinIters && generation.load(std::memory_order_acquire) == seen; ++i)
        cpu_relax();
      const std::function<void(int)>* fn;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv_start.wait(lk, [&] { return generation.load(std::memory_order_acquire) != seen; });
        seen = generation.load(std::memory_order_acquire);
        if (idx >= job_threads) continue;
        int open = kOpen;
        if (!slot[idx].compare_exchange_strong(open, kClaimed, std::memory_order_acq_rel))
          continue;  // the caller ran this share
        fn = job;
      }
      try {
        (*fn)(idx);
      } catch (...) {
        failed = true;
      }
      if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mu);
        cv_done.notify_one();
      }
    }
  }
};

Pool* g_pool = nullptr;
std::mutex g_pool_mu;

void after_fork_child() {
  // The workers do not exist in the child; abandon the old pool (its mutexes may be held).
  new (&g_pool_mu) std::mutex();
  g_pool = nullptr;
}

Pool* pool() {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  if (!g_pool) {
    static bool registered = false;
    if (!registered) {
      pthread_atfork(nullptr, nullptr, after_fork_child);
      registered = true;
    }
    g_pool = new Pool();  // intentionally never destroyed (workers live until exit)
  }
  return g_pool;
}

bool run_serial(int nthreads, const std::function<void(int)>& fn) {
  try {
    for (int t = 0; t < nthreads; ++t) fn(t);
  } catch (...) {
    return false;
  }
  return true;
}

thread_local bool t_in_region = false;

}  // namespace

bool parallel_run(int nthreads, const std::function<void(int)>& fn) {
  if (nthreads <= 1 || t_in_region) return run_serial(nthreads, fn);
  if (nthreads > 256) nthreads = 256;
  Pool* p = pool();
  std::unique_lock<std::mutex> region(p->region_mu, std::try_to_lock);
  if (!region.owns_lock()) return run_serial(nthreads, fn);
  {
    std::lock_guard<std::mutex> lk(p->mu);
    try {
      while ((int)p->workers.size() < nthreads - 1) {
        int idx = (int)p->workers.size() + 1;
        uint64_t gen = p->generation.load();
        p->workers.emplace_back([p, idx, gen] { p->worker(idx, gen); });
        p->workers.back().detach();
      }
    } catch (...) {
      // could not start threads: run on the caller alone
      return run_serial(nthreads, fn);
    }
    p->job = &fn;
    p->job_threads = nthreads;
    for (int t = 1; t < nthreads; ++t) p->slot[t].store(Pool::kOpen, std::memory_order_relaxed);
    p->pending.store(nthreads - 1);
    p->failed = false;
    p->generation.fetch_add(1, std::memory_order_release);
  }
  p->cv_start.notify_all();
  bool ok = true;
  t_in_region = true;
  try {
    fn(0);
  } catch (...) {
    ok = false;
  }
  // shares whose worker has not started yet: run them here
  for (int t = 1; t < nthreads; ++t) {
    int open = Pool::kOpen;
    if (!p->slot[t].compare_exchange_strong(open, Pool::kStolen, std::memory_order_acq_rel))
      continue;
    try {
      fn(t);
    } catch (...) {
      ok = false;
    }
    p->pending.fetch_sub(1, std::memory_order_acq_rel);
  }
  t_in_region = false;
  for (int i = 0; i < kSpinIters && p->pending.load(std::memory_order_acquire) != 0; ++i)
    cpu_relax();
  {
    std::unique_lock<std::mutex> lk(p->mu);
    p->cv_done.wait(lk, [&] { return p->pending.load(std::memory_order_acquire) == 0; });
    p->job = nullptr;
  }
  return ok && !p->failed;
}

// ---------------------------------------------------------------- scratch
namespace {
struct Scratch {
  float* p[8] = {};  // slots 0..7 (internal.h)
  int64_t n[8] = {};
  ~Scratch() {
    for (auto q : p) std::free(q);
  }
};
thread_local Scratch t_scratch;
}  // namespace

float* thread_scratch(int slot, int64_t nfloats) {
  Scratch& s = t_scratch;
  if (nfloats < 16) nfloats = 16;
  if (s.n[slot] < nfloats) {
    std::free(s.p[slot]);
    s.p[slot] = nullptr;
    s.n[slot] = 0;
    size_t bytes = ((size_t)nfloats * sizeof(float) + 63) / 64 * 64;
    void* q = std::aligned_alloc(64, bytes);
    if (!q) throw std::bad_alloc();
    s.p[slot] = static_cast<float*>(q);
    s.n[slot] = nfloats;
  }
  return s.p[slot];
}

// ---------------------------------------------------------------- ISA dispatch
namespace {
bool cpu_has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("fma");
}
bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

const RowOps* pick(const char* name) {
  if (!name) return nullptr;
  if (!std::strcmp(name, "avx512")) return cpu_has_avx512() ? &kAvx512Ops : nullptr;
  if (!std::strcmp(name, "avx2")) return cpu_has_avx2() ? &kAvx2Ops : nullptr;
  if (!std::strcmp(name, "scalar")) return &kScalarOps;
  return nullptr;
}

std::atomic<const RowOps*> g_ops{nullptr};
}  // namespace

const RowOps& ops() {
  const RowOps* o = g_ops.load(std::memory_order_acquire);
  if (o) return *o;
  __builtin_cpu_init();
  o = pick(std::getenv("ODC_NATIVE_ISA"));
  if (!o) o = cpu_has_avx512() ? &kAvx512Ops : cpu_has_avx2() ? &kAvx2Ops : &kScalarOps;
  g_ops.store(o, std::memory_order_release);
  return *o;
}

int force_isa(const char* name) {
  __builtin_cpu_init();
  const RowOps* o = pick(name);
  if (!o) return 0;
  g_ops.store(o, std::memory_order_release);
  return 1;
}

}  // namespace odc_native

extern "C" const char* odc_native_isa() { return odc_native::ops().isa; }
extern "C" int32_t odc_native_force_isa(const char* name) { return odc_native::force_isa(name); }
