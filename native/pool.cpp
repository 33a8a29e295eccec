// Thread pool with dynamic task claiming. A job is published as one atomic word
// (generation | task count | next task); the caller and the workers claim tasks from it with a
// compare-and-swap, so a worker that is late (asleep, or descheduled because the machine is
// busy) simply finds no task left and the caller does the work itself: a parallel call is never
// slower than the same work on one thread by more than the claiming overhead. The caller waits
// only for tasks that were actually claimed.
#include "pool.h"

#include "platform.h"

#include <stdint.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace rk {
namespace {

constexpr int kTaskBits = 20;
constexpr uint64_t kTaskMask = (1u << kTaskBits) - 1;

inline uint32_t task_count(uint64_t s) { return (uint32_t)((s >> kTaskBits) & kTaskMask); }
inline uint32_t task_next(uint64_t s) { return (uint32_t)(s & kTaskMask); }
inline bool claimable(uint64_t s) { return task_next(s) < task_count(s); }

// Async jobs (native/addon.cpp) running their kernels now, process-wide, and whether this thread
// runs one (pool_job_enter / pool_job_leave).
std::atomic<int> g_jobs{0};
thread_local bool t_in_job = false;
thread_local bool t_pool_worker = false;   // a thread of the pool (Pool::worker)
thread_local int64_t t_last_yield_ns = 0;  // when this thread last yielded (yield_if_due)

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// The least time between two yields of a thread running an async job's kernels (pool_job_step):
// RNNKIT_JOB_YIELD_US (0: never yield), else 300 µs. A yield with no thread waiting for the core
// costs about a microsecond; a thread that waits gets the core within about this time plus a step.
int64_t job_yield_ns() {
  static const int64_t ns = [] {
    const char* e = std::getenv("RNNKIT_JOB_YIELD_US");
    const int64_t us = e && *e ? std::atoll(e) : 300;
    return std::max<int64_t>(0, std::min<int64_t>(us, 1000000)) * 1000;
  }();
  return ns;
}

std::atomic<int64_t> g_yields{0};

// Yields the core when `every` has passed since *last (then *last = now).
void yield_if_due(int64_t* last) {
  const int64_t every = job_yield_ns();
  if (every <= 0) return;
  const int64_t now = now_ns();
  if (now - *last < every) return;
  std::this_thread::yield();
  g_yields.fetch_add(1, std::memory_order_relaxed);
  *last = now_ns();
}

struct Pool {
  std::vector<std::thread> workers;
  std::atomic<int> nworkers{0};  // read by any thread; written under `busy`
  std::atomic<uint64_t> state{0};  // gen << 40 | ntasks << 20 | next
  std::atomic<int> completed{0};
  void (*fn)(void*, int) = nullptr;
  void* ctx = nullptr;
  uint64_t gen = 0;
  std::mutex m;
  std::condition_variable cv;
  std::atomic<int> sleepers{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> busy{false};

  // Claims and runs one task of the current job; false when none is left.
  bool run_one() {
    uint64_t s = state.load(std::memory_order_acquire);
    while (claimable(s)) {
      if (state.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        fn(ctx, (int)task_next(s));
        completed.fetch_add(1, std::memory_order_release);
        return true;
      }
    }
    return false;
  }

  void worker() {
    t_pool_worker = true;
    t_last_yield_ns = now_ns();
    for (;;) {
      int spin = 0;
      while (!claimable(state.load(std::memory_order_acquire))) {
        if (stop.load(std::memory_order_relaxed)) return;
        if (++spin < 3000) {
          cpu_pause();
        } else {
          std::unique_lock<std::mutex> lk(m);
          sleepers.fetch_add(1);
          cv.wait(lk, [&] { return claimable(state.load()) || stop.load(); });
          sleepers.fetch_sub(1);
          spin = 0;
        }
      }
      // serving an async job, as the job's own thread does between steps (pool_job_step): a task
      // left unclaimed meanwhile is run by the job's thread
      if (g_jobs.load(std::memory_order_relaxed) > 0) yield_if_due(&t_last_yield_ns);
      while (run_one()) {
      }
    }
  }

  void start(int n) {
    nworkers = n - 1;
    stop = false;
    for (int w = 0; w < nworkers; w++) workers.emplace_back([this] { worker(); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(m);
      stop = true;
    }
    cv.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
    nworkers = 0;
  }
};

Pool& pool() {
  static Pool* p = [] {
    Pool* q = new Pool();  // intentionally leaked: never joined during static destruction
    unsigned hc = std::thread::hardware_concurrency();
    q->start(hc > 0 ? (int)hc : 1);
    return q;
  }();
  return *p;
}

// Whether a job's parallel call would oversubscribe the cores: the other jobs' threads and the
// pool's together need more cores than there are. Then the tasks run on the job's own thread:
// the pool's threads would only take turns with the jobs (and with the event loop's thread),
// spinning at each fork-join while a partner waits for a core.
bool crowded(const Pool& p) {
  if (!t_in_job) return false;
  static const int cores = (int)std::max(1u, std::thread::hardware_concurrency());
  // the running jobs' threads (this one included) and the pool's workers
  return g_jobs.load(std::memory_order_relaxed) + p.nworkers.load(std::memory_order_relaxed) > cores;
}

bool acquire(Pool& p, bool wait) {
  for (;;) {
    bool expected = false;
    if (p.busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) return true;
    if (!wait) return false;
    std::this_thread::yield();
  }
}

}  // namespace

void pool_set_threads(int n) {
  if (n < 1) n = 1;
  if (n > 256) n = 256;
  Pool& p = pool();
  acquire(p, true);
  if (n != p.nworkers + 1) {
    p.shutdown();
    p.start(n);
  }
  p.busy.store(false, std::memory_order_release);
}

int pool_threads() { return pool().nworkers + 1; }

void pool_job_enter() {
  t_in_job = true;
  t_last_yield_ns = now_ns();
  g_jobs.fetch_add(1, std::memory_order_relaxed);
}

void pool_job_leave() {
  g_jobs.fetch_sub(1, std::memory_order_relaxed);
  t_in_job = false;
}

double pool_job_yields(bool reset) {
  return (double)(reset ? g_yields.exchange(0) : g_yields.load());
}

void pool_job_step() {
  if (t_in_job || (t_pool_worker && g_jobs.load(std::memory_order_relaxed) > 0)) yield_if_due(&t_last_yield_ns);
}

bool pool_available() {
  Pool& p = pool();
  return p.nworkers > 0 && !crowded(p) && !p.busy.load(std::memory_order_relaxed);
}

void parallel_for_raw(int ntasks, void (*fn)(void*, int), void* ctx) {
  Pool& p = pool();
  if (p.nworkers == 0 || (uint64_t)ntasks > kTaskMask || crowded(p) || !acquire(p, false)) {
    for (int i = 0; i < ntasks; i++) fn(ctx, i);
    return;
  }
  p.fn = fn;
  p.ctx = ctx;
  p.completed.store(0, std::memory_order_relaxed);
  p.gen++;
  p.state.store((p.gen << (2 * kTaskBits)) | ((uint64_t)ntasks << kTaskBits), std::memory_order_seq_cst);
  if (p.sleepers.load() > 0) {
    { std::lock_guard<std::mutex> lk(p.m); }
    p.cv.notify_all();
  }
  while (p.run_one()) {
  }
  for (int spin = 0; p.completed.load(std::memory_order_acquire) < ntasks; spin++) {
    if (spin < 20000) cpu_pause();
    else std::this_thread::yield();
  }
  p.busy.store(false, std::memory_order_release);
}

}  // namespace rk
