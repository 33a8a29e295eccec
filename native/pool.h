// A small thread pool (std::thread, no OpenMP). parallel_for(n, f) runs f(0..n-1) on the pool's
// threads plus the calling thread, with a fixed task-to-thread assignment, and returns when all
// tasks are done. If the pool is busy (another job, a nested call, an async worker running at
// the same time), the tasks run inline on the calling thread: results never depend on that,
// because every kernel's arithmetic per output element is independent of how work is split.
#pragma once
#include <utility>

namespace rk {

void pool_set_threads(int n);  // n >= 1 (total, including the caller)
int pool_threads();
// Around an async job's kernels (native/addon.cpp), on its thread: while other jobs run, its
// parallel calls stay on its own thread where the pool's threads would oversubscribe the cores.
void pool_job_enter();
void pool_job_leave();
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

}  // namespace rk
