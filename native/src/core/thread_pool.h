// A context's worker threads. Each context owns one pool; nothing is shared between contexts.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moe4j {

class ThreadPool {
  public:
    // threads counts the caller: a pool of 1 runs everything on the calling thread.
    explicit ThreadPool(int threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool &operator=(const ThreadPool &) = delete;

    int size() const { return static_cast<int>(workers_.size()) + 1; }

    // Calls task(i) for every i in [0, tasks), spread over the pool with the caller taking part,
    // and returns when all have finished. Not re-entrant: a task must not call run().
    void run(int64_t tasks, const std::function<void(int64_t)> &task);
    // run() that also tells each task which thread runs it: worker in [0, size()), 0 for the caller. Tasks that
    // share a worker run one after another, so per-worker scratch needs no locking.
    void run_indexed(int64_t tasks, const std::function<void(int64_t task, int worker)> &task);

  private:
    void worker_loop(int worker);
    void drain(int worker);

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable done_;
    const std::function<void(int64_t, int)> *task_ = nullptr;
    int64_t task_count_ = 0;
    std::atomic<int64_t> next_task_{0};
    uint64_t generation_ = 0;
    int busy_workers_ = 0;
    bool stopping_ = false;
};

// Splits [0, n) into chunks of at least `grain` items, about four per thread, and calls body(begin, end).
void parallel_for(ThreadPool &pool, int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)> &body);

// The grain for items of `work_per_item` units (multiply-adds, bytes) so that a chunk is worth waking a
// thread for: below ~1M units a call runs on the caller alone, since a wake-up costs tens of microseconds.
inline int64_t grain_for(int64_t work_per_item) {
    constexpr int64_t kMinWorkPerChunk = int64_t{1} << 20;
    return work_per_item >= kMinWorkPerChunk ? 1 : kMinWorkPerChunk / (work_per_item > 0 ? work_per_item : 1);
}

}  // namespace moe4j
