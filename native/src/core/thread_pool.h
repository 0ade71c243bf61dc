// A context's worker threads. Each context owns one pool; nothing is shared between contexts.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "function_ref.h"

namespace moe4j {

// A fault a test arms on a pool (moe4j_context_inject_fault): in the next run with more than `task` tasks, that task
// throws instead of running.
enum class TaskFault {
    None,
    OutOfMemory,  // as if an allocation inside the task failed (OutOfMemory, a std::bad_alloc)
    Exception     // an unexpected exception (std::runtime_error)
};

class ThreadPool {
  public:
    // threads counts the caller: a pool of 1 runs everything on the calling thread.
    explicit ThreadPool(int threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool &operator=(const ThreadPool &) = delete;

    int size() const { return static_cast<int>(workers_.size()) + 1; }

    // Calls task(i) for every i in [0, tasks), spread over the pool with the caller taking part, and returns when all
    // have finished. Not re-entrant: a task must not call run().
    //
    // Exceptions: when a task throws (on a worker or on the caller), the first exception is kept, tasks not yet
    // started are skipped (tasks already running finish), every worker goes back to waiting, and the exception is
    // rethrown on the calling thread once no task runs any more. Later exceptions of the same run are dropped. The
    // pool is usable again afterwards. What the skipped tasks would have written is not written.
    void run(int64_t tasks, FunctionRef<void(int64_t)> task);
    // run() that also tells each task which thread runs it: worker in [0, size()), 0 for the caller. Tasks that
    // share a worker run one after another, so per-worker scratch needs no locking.
    void run_indexed(int64_t tasks, FunctionRef<void(int64_t task, int worker)> task);
    // run_indexed with the tasks cut into one run of consecutive tasks per thread (worker w's share first): each
    // thread takes its own share's tasks in order, then those still untaken of the other shares. For tasks that
    // stream consecutive memory, such as weight panels: a thread's reads stay one sequential stream, which the
    // hardware prefetcher follows from task to task, where tasks handed out one at a time leave every thread jumping
    // between pieces; and a thread that finishes early still takes over what the other has not begun. Exceptions as
    // for run().
    void run_shares(int64_t tasks, FunctionRef<void(int64_t task, int worker)> task);

    // Hands the workers a background job and returns at once: while no run is in flight the workers that are awake
    // (spinning for the next run, as they do for 2 ms after one; a sleeping worker is not woken) issue cache prefetches
    // for [data, data + bytes), the first kPrefetchBytesPerThread bytes of each of size() equal shares of it (the
    // pieces a run_shares over the range would start with), the shares' pieces taken in turn. The next run with
    // more than one task, the next prefetch() and the pool's end cancel what is left; a run of one task (which stays
    // on the caller) does not. Prefetch instructions never fault, so the memory may be freed meanwhile. A pool of one
    // thread ignores it. Only the thread that calls run() may call it.
    void prefetch(const void *data, int64_t bytes);
    // Measured on the 2-core Zen 5 VM, decode at batch 1 with and without hints alternating: 4 MiB 0.97-1.05x a run
    // (1.015x on average over fourteen), 1 MiB and 256 KiB nothing measurable (bench/RESULTS.md).
    static constexpr int64_t kPrefetchBytesPerThread = int64_t{4} << 20;
    // Bytes the workers have issued prefetches for since the pool began, for tests.
    int64_t prefetched_bytes() const { return prefetched_bytes_.load(); }

    // Arms a fault for the next run with more than `task` tasks (task >= 0): that run's task `task` throws `fault`
    // instead of running, once. TaskFault::None disarms. For tests of failure handling.
    void inject_fault(TaskFault fault, int64_t task);
    // While held, workers that wake up for a run wait before they join it, as a worker the OS is slow to wake up
    // does. A run whose tasks the caller finishes meanwhile does not wait for them. For tests of that.
    void hold_workers(bool hold) { workers_held_.store(hold); }

  private:
    void worker_loop(int worker);
    void run_tasks(int64_t tasks, bool shares, FunctionRef<void(int64_t, int)> task);
    void drain(int worker);
    // Issues the prefetches of job `serial` (see prefetch_state_) until it is done or another job replaces it.
    void run_prefetch(uint32_t serial);
    // Replaces the prefetch job by [data, data + bytes) (bytes 0: an empty job, a cancellation), under mutex_.
    void publish_prefetch(const char *data, int64_t bytes);
    // Enters the current run unless it is closed; whether it did.
    bool join_run();
    // The next task for `worker`: the next of its own share, else the next untaken one of another share (a run that
    // is not run_shares' has one share, all of its tasks); or task_count_ when none is left.
    int64_t next_for(int worker);
    // Runs task i unless it is the armed fault's task, in which case it throws.
    void run_one(FunctionRef<void(int64_t, int)> task, int64_t i, int worker, int64_t faulty) const;
    // The task the armed fault hits in a run of `tasks` tasks (disarming it), or -1.
    int64_t take_fault(int64_t tasks);

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable done_;
    const FunctionRef<void(int64_t, int)> *task_ = nullptr;
    int64_t task_count_ = 0;
    int64_t faulty_task_ = -1;  // the task of this run that throws, or -1
    TaskFault faulty_kind_ = TaskFault::None;
    // The run's tasks cut into shares_ runs of share_size_ consecutive tasks (one share unless run_shares), and the
    // next untaken task of each. One cache line per cursor, so that a thread taking its own tasks does not slow the
    // other's.
    struct alignas(64) Cursor {
        std::atomic<int64_t> next{0};
    };
    std::vector<Cursor> cursors_;
    int shares_ = 1;
    int64_t share_size_ = 0;
    // Atomic so that a spinning thread sees them change; written under mutex_, for the threads that sleep.
    std::atomic<uint64_t> generation_{0};
    // The current run's kClosed bit (set once every task is taken, and between runs) and the number of workers inside
    // it: a worker joins only an open run, and run() waits for those that joined.
    static constexpr uint32_t kClosed = 1u << 31;
    std::atomic<uint32_t> run_state_{kClosed};
    std::atomic<bool> stopping_{false};
    // The prefetch job: its serial number (high 32 bits) and the next of its pieces to take (low 32 bits), so that one
    // compare-and-swap takes a piece of one job only; the job's range is written under mutex_ with a new serial.
    std::atomic<uint64_t> prefetch_state_{0};
    const char *prefetch_data_ = nullptr;
    int64_t prefetch_bytes_ = 0;
    std::atomic<int64_t> prefetched_bytes_{0};
    std::atomic<bool> workers_held_{false};
    // The first exception of the current run (guarded by mutex_).
    std::exception_ptr error_;
    // The armed fault; only the thread that calls run() touches them.
    TaskFault fault_ = TaskFault::None;
    int64_t fault_task_ = -1;
};

// Splits [0, n) into chunks of at least `grain` items, about four per thread, and calls body(begin, end).
void parallel_for(ThreadPool &pool, int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t)> body);
// The same chunks, with the worker that runs each (as run_indexed gives it), for per-worker scratch.
void parallel_for(ThreadPool &pool, int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t, int)> body);

// Splits [0, n) into chunks of at most max_chunk items, as many as a multiple of the pool's threads and within one
// item of each other in size, and calls body(begin, end, worker) for each through run_shares: each thread works
// through one contiguous run of items in order (equal runs), then helps with what is left of the others'. n of
// max_chunk or less is one chunk, on the caller.
void parallel_for_shares(ThreadPool &pool, int64_t n, int64_t max_chunk, FunctionRef<void(int64_t, int64_t, int)> body);

// Weight bytes of a task that a streaming kernel's thread, done with its own run (parallel_for_shares), takes from
// what is left of another's: small enough that the thread that finishes first idles little at the end of a call (with
// 1 MB it idled ~20 us at the end of each 2-8 MB decode call), large enough to stay one sequential stream.
constexpr int64_t kStealBytes = int64_t{128} << 10;

// The grain for items of `work_per_item` units (multiply-adds, bytes) so that a chunk is worth waking a
// thread for: below ~1M units a call runs on the caller alone, since a wake-up costs tens of microseconds.
inline int64_t grain_for(int64_t work_per_item) {
    constexpr int64_t kMinWorkPerChunk = int64_t{1} << 20;
    return work_per_item >= kMinWorkPerChunk ? 1 : kMinWorkPerChunk / (work_per_item > 0 ? work_per_item : 1);
}

}  // namespace moe4j
