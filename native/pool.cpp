#include "pool.h"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace rk {
namespace {

struct alignas(64) Slot {
  std::atomic<unsigned long> go{0};
  std::atomic<unsigned long> done{0};
};

struct Pool {
  std::vector<std::thread> workers;
  std::unique_ptr<Slot[]> slots;
  int nworkers = 0;
  std::mutex m;
  std::condition_variable cv;
  std::atomic<int> sleepers{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> busy{false};
  unsigned long gen = 0;
  // current job
  void (*fn)(void*, int) = nullptr;
  void* ctx = nullptr;
  int ntasks = 0;
  int nparts = 1;

  void run_part(int part) {
    for (int i = part; i < ntasks; i += nparts) fn(ctx, i);
  }

  void worker(int w, unsigned long seen) {
    for (;;) {
      unsigned long g = 0;
      for (int spin = 0;; spin++) {
        g = slots[w].go.load(std::memory_order_acquire);
        if (g != seen || stop.load(std::memory_order_relaxed)) break;
        if (spin < 4000) {
          __builtin_ia32_pause();
        } else {
          std::unique_lock<std::mutex> lk(m);
          sleepers.fetch_add(1);
          cv.wait(lk, [&] { return slots[w].go.load() != seen || stop.load(); });
          sleepers.fetch_sub(1);
        }
      }
      if (stop.load()) return;
      seen = g;
      run_part(w + 1);
      slots[w].done.store(g, std::memory_order_release);
    }
  }

  void start(int n) {
    nworkers = n - 1;
    stop = false;
    slots.reset(new Slot[nworkers > 0 ? nworkers : 1]);
    for (int w = 0; w < nworkers; w++) {
      slots[w].go = gen;
      slots[w].done = gen;
    }
    for (int w = 0; w < nworkers; w++) workers.emplace_back([this, w, g = gen] { worker(w, g); });
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

  ~Pool() { shutdown(); }
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

void parallel_for_raw(int ntasks, void (*fn)(void*, int), void* ctx) {
  Pool& p = pool();
  if (p.nworkers == 0 || !acquire(p, false)) {
    for (int i = 0; i < ntasks; i++) fn(ctx, i);
    return;
  }
  const int nparts = ntasks < p.nworkers + 1 ? ntasks : p.nworkers + 1;
  const int used = nparts - 1;  // workers that get a part
  p.fn = fn;
  p.ctx = ctx;
  p.ntasks = ntasks;
  p.nparts = nparts;
  const unsigned long g = ++p.gen;
  for (int w = 0; w < used; w++) p.slots[w].go.store(g, std::memory_order_release);
  if (p.sleepers.load() > 0) {
    { std::lock_guard<std::mutex> lk(p.m); }
    p.cv.notify_all();
  }
  p.run_part(0);
  for (int w = 0; w < used; w++) {
    for (int spin = 0; p.slots[w].done.load(std::memory_order_acquire) != g; spin++) {
      if (spin < 20000) __builtin_ia32_pause();
      else std::this_thread::yield();
    }
  }
  p.busy.store(false, std::memory_order_release);
}

}  // namespace rk
