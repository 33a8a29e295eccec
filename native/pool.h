// A small thread pool (std::thread, no OpenMP). parallel_for(n, f) runs f(0..n-1) on the pool's
// threads plus the calling thread, with a fixed task-to-thread assignment, and returns when all
// tasks are done. If the pool is busy (another job, a nested call, an async worker running at
// the same time), the tasks run inline on the calling thread: results never depend on that,
// because every kernel's arithmetic per output element is independent of how work is split.
#pragma once
#include <stdint.h>

#include <algorithm>
#include <utility>

namespace rk {

void pool_set_threads(int n);  // n >= 1 (total, including the caller)
int pool_threads();
// The threads a parallel call may use: pool_threads(), at most cap when cap > 0 (a sequence call
// asked to run its steps on fewer threads, e.g. 1, see SeqFwdIn::stepThreads).
inline int pool_threads_capped(int cap) { return cap > 0 ? std::min(cap, pool_threads()) : pool_threads(); }
// Around an async job's kernels (native/addon.cpp), on its thread: while other jobs run, its
// parallel calls stay on its own thread where the pool's threads would oversubscribe the cores.
void pool_job_enter();
void pool_job_leave();
// Called by the sequence kernels between time steps. On an async job's thread, or on a pool thread
// while a job runs, at most once per RNNKIT_JOB_YIELD_US (300 µs by default), yields the core to a thread that waits for one (the event
// loop's thread, woken by a timer or I/O while the jobs fill the cores), rather than making it wait
// for the job's time slice to end.
void pool_job_step();
// Yields made for async jobs (pool_job_step and the pool's threads while a job runs), process-wide,
// since the last reset.
double pool_job_yields(bool reset);
// Whether a parallel call made now from this thread would run on the pool's threads: false when
// the pool has no workers, is taken (another job, or this thread runs inside one of its tasks),
// or the cores are crowded with async jobs; a hint (another thread may take the pool meanwhile).
bool pool_available();
void parallel_for_raw(int ntasks, void (*fn)(void*, int), void* ctx);

template <class F>
void parallel_for(int ntasks, F&& f) {
  if (ntasks <= 0) return;
  if (ntasks == 1) {
    f(0);
    return;
  }
  using Fn = typename std::remove_reference<F>::type;
  parallel_for_raw(ntasks, [](void* c, int i) { (*static_cast<Fn*>(c))(i); }, (void*)&f);
}

// Minimum work (items * workPerItem, in units of about one multiply-add or element update) for
// parallel_range to split over the pool; smaller calls run on the calling thread.
constexpr int64_t kParallelMinWork = 32768;

// Runs f(i0, i1) over [0, n) in contiguous parts [n*t/nt, n*(t+1)/nt), one per pool thread
// (nt = min(threads, n), threads at most maxThreads when it is > 0), when n * workPerItem reaches
// kParallelMinWork; otherwise f(0, n) on the calling thread. Every item's result must be
// independent of the split (results never depend on the thread count).
template <class F>
void parallel_range(int64_t n, int64_t workPerItem, F&& f, int maxThreads = 0) {
  const int nt = n * workPerItem < kParallelMinWork ? 1 : (int)std::min<int64_t>(pool_threads_capped(maxThreads), n);
  if (nt <= 1) {
    if (n > 0) f((int64_t)0, n);
    return;
  }
  parallel_for(nt, [&](int t) { f(n * t / nt, n * (t + 1) / nt); });
}

}  // namespace rk
