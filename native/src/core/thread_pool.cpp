#include "thread_pool.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "error.h"

namespace moe4j {

namespace {

// How long a worker polls for the next run before it sleeps, and the caller for the workers to finish. A decode step
// makes dozens of parallel calls a few microseconds apart, and waking a sleeping thread costs tens of microseconds
// (more in a VM, where the wake-up exits to the hypervisor: 40 us median, 260 us p99 on a 2-core Zen 4 VM). Some gaps
// within a step (norms, routing, the attention's small kernels, Java) pass 200 us: at 200 us the worker joined the
// first projection of a layer 17 us late on average and the LM head 57 us late; 1.4 and 24 us at 2 ms.
constexpr auto kSpin = std::chrono::microseconds(2000);

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#else
    std::this_thread::yield();
#endif
}

// Polls ready() for up to kSpin; whether it became true.
template <typename Ready>
bool spin_until(Ready &&ready) {
    const auto deadline = std::chrono::steady_clock::now() + kSpin;
    for (int i = 0;; ++i) {
        if (ready()) return true;
        cpu_relax();
        if (i % 64 == 63 && std::chrono::steady_clock::now() > deadline) return ready();
    }
}

constexpr int kPrefetchSerialShift = 32;
constexpr uint64_t kPrefetchPieceMask = (uint64_t{1} << kPrefetchSerialShift) - 1;
// The bytes a worker prefetches between two looks at whether its job is still current: ~1 us of a stream.
constexpr int64_t kPrefetchPiece = int64_t{16} << 10;

uint32_t prefetch_serial(uint64_t state) { return static_cast<uint32_t>(state >> kPrefetchSerialShift); }

void prefetch_lines(const char *begin, const char *end) {
    for (const char *p = begin; p < end; p += 64) {
#if defined(__x86_64__) || defined(__i386__)
        _mm_prefetch(p, _MM_HINT_T0);
#else
        __builtin_prefetch(p);
#endif
    }
}

}  // namespace

ThreadPool::ThreadPool(int threads) : cursors_(static_cast<size_t>(std::max(threads, 1))) {
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_.store(true);
        publish_prefetch(nullptr, 0);
    }
    wake_.notify_all();
    for (auto &worker : workers_) worker.join();
}

void ThreadPool::inject_fault(TaskFault fault, int64_t task) {
    fault_ = task >= 0 ? fault : TaskFault::None;
    fault_task_ = task;
}

int64_t ThreadPool::take_fault(int64_t tasks) {
    if (fault_ == TaskFault::None || fault_task_ >= tasks) return -1;
    fault_ = TaskFault::None;
    return fault_task_;
}

void ThreadPool::run_one(FunctionRef<void(int64_t, int)> task, int64_t i, int worker, int64_t faulty) const {
    if (i != faulty) {
        task(i, worker);
        return;
    }
    const std::string where = "task " + std::to_string(i) + " of a parallel run (injected fault)";
    if (faulty_kind_ == TaskFault::OutOfMemory) throw OutOfMemory("an allocation in " + where + " failed");
    throw std::runtime_error("an exception in " + where);
}

int64_t ThreadPool::next_for(int worker) {
    for (int s = 0; s < shares_; ++s) {
        const int share = (worker + s) % shares_;
        const int64_t end = std::min(task_count_, (share + 1) * share_size_);
        // A cursor past its share's end stays there: once a share is used up, taking from it costs one load.
        if (cursors_[share].next.load(std::memory_order_relaxed) >= end) continue;
        const int64_t i = cursors_[share].next.fetch_add(1);
        if (i < end) return i;
    }
    return task_count_;
}

void ThreadPool::drain(int worker) {
    for (int64_t i = next_for(worker); i < task_count_; i = next_for(worker)) {
        try {
            run_one(*task_, i, worker, faulty_task_);
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!error_) error_ = std::current_exception();
            for (Cursor &c : cursors_) c.next.store(task_count_);  // tasks not yet taken are skipped
            return;
        }
    }
}

void ThreadPool::run(int64_t tasks, FunctionRef<void(int64_t)> task) {
    run_indexed(tasks, [&task](int64_t i, int) { task(i); });
}

void ThreadPool::run_indexed(int64_t tasks, FunctionRef<void(int64_t, int)> task) { run_tasks(tasks, false, task); }

void ThreadPool::run_shares(int64_t tasks, FunctionRef<void(int64_t, int)> task) { run_tasks(tasks, true, task); }

void ThreadPool::run_tasks(int64_t tasks, bool shares, FunctionRef<void(int64_t, int)> task) {
    if (tasks <= 0) return;
    if (workers_.empty() || tasks == 1) {
        const TaskFault kind = fault_;
        const int64_t faulty = take_fault(tasks);
        faulty_kind_ = kind;
        for (int64_t i = 0; i < tasks; ++i) run_one(task, i, 0, faulty);  // an exception ends the loop: the rest skip
        return;
    }
    {
        std::lock_guard<std::mutex> lock(mutex_);
        task_ = &task;
        task_count_ = tasks;
        faulty_kind_ = fault_;
        faulty_task_ = take_fault(tasks);
        error_ = nullptr;
        shares_ = shares ? size() : 1;
        share_size_ = (tasks + shares_ - 1) / shares_;
        for (int share = 0; share < shares_; ++share) cursors_[share].next.store(share * share_size_);
        publish_prefetch(nullptr, 0);  // a run of its own cancels a prefetch that did not end in time
        run_state_.store(0);           // open, no worker inside yet
        generation_.fetch_add(1);      // after the run's fields: a worker that sees it sees them
    }
    wake_.notify_all();
    drain(0);  // catches what the caller's tasks throw, so the join below always happens
    // Every task is taken. Closing the run keeps out the workers that have not joined it yet: one still waking up
    // (tens of microseconds, milliseconds on a VM whose idle vCPU the host has descheduled) would find nothing to do,
    // and the call waits only for the workers that are running its tasks.
    run_state_.fetch_or(kClosed);
    std::exception_ptr error;
    {
        const auto finished = [this] { return run_state_.load() == kClosed; };
        std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
        if (!spin_until(finished)) {
            lock.lock();
            done_.wait(lock, finished);
        } else {
            lock.lock();
        }
        task_ = nullptr;
        error = error_;
        error_ = nullptr;
    }
    if (error) std::rethrow_exception(error);
}

void ThreadPool::worker_loop(int worker) {
    uint64_t seen = 0;
    uint32_t prefetched = 0;  // the serial of the last prefetch job this worker took up
    for (;;) {
        const auto run_due = [&] { return stopping_.load() || generation_.load() != seen; };
        // A worker that sleeps leaves hints alone: waking it costs the hint's caller a system call and the worker
        // tens of microseconds, about a gap's length, while one that is spinning is there at once.
        const auto woken = [&] {
            return run_due() || prefetch_serial(prefetch_state_.load(std::memory_order_relaxed)) != prefetched;
        };
        if (!spin_until(woken)) {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, run_due);
        }
        if (stopping_.load()) return;
        if (generation_.load() == seen) {  // only a prefetch job is new
            prefetched = prefetch_serial(prefetch_state_.load());
            run_prefetch(prefetched);
            continue;
        }
        seen = generation_.load();
        while (workers_held_.load()) std::this_thread::yield();
        if (!join_run()) continue;  // the run closed before this worker woke: its tasks are done
        drain(worker);
        // The caller may sleep on done_: notify under the mutex, so that it either has not checked yet or waits.
        if (run_state_.fetch_sub(1) == (kClosed | 1)) {
            std::lock_guard<std::mutex> lock(mutex_);
            done_.notify_one();
        }
    }
}

void ThreadPool::prefetch(const void *data, int64_t bytes) {
    if (workers_.empty()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    publish_prefetch(static_cast<const char *>(data), std::max<int64_t>(bytes, 0));
}

void ThreadPool::publish_prefetch(const char *data, int64_t bytes) {
    prefetch_data_ = data;
    prefetch_bytes_ = bytes;
    // An empty job (every run's cancellation) starts with its pieces used up, so that a worker drops it unlocked.
    const uint64_t serial = prefetch_serial(prefetch_state_.load()) + uint64_t{1};
    prefetch_state_.store(serial << kPrefetchSerialShift | (bytes > 0 ? 0 : kPrefetchPieceMask));
}

void ThreadPool::run_prefetch(uint32_t serial) {
    if ((prefetch_state_.load() & kPrefetchPieceMask) == kPrefetchPieceMask) return;  // empty, or taken up already
    const char *data;
    int64_t bytes;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (prefetch_serial(prefetch_state_.load()) != serial) return;  // replaced already
        data = prefetch_data_;
        bytes = prefetch_bytes_;
    }
    // Pieces in turn from each share's start: piece i is piece i / shares of share i % shares.
    const int64_t shares = size(), share_bytes = (bytes + shares - 1) / shares;
    const int64_t per_share = (std::min(share_bytes, kPrefetchBytesPerThread) + kPrefetchPiece - 1) / kPrefetchPiece;
    const uint64_t pieces = static_cast<uint64_t>(per_share * shares);
    uint64_t state = prefetch_state_.load();
    for (;;) {
        if (prefetch_serial(state) != serial || (state & kPrefetchPieceMask) >= pieces) return;
        if (!prefetch_state_.compare_exchange_weak(state, state + 1)) continue;
        const int64_t i = static_cast<int64_t>(state & kPrefetchPieceMask);
        const int64_t share = i % shares, begin = share * share_bytes + (i / shares) * kPrefetchPiece;
        const int64_t end = std::min({begin + kPrefetchPiece, (share + 1) * share_bytes, bytes});
        if (begin < end) {
            prefetch_lines(data + begin, data + end);
            prefetched_bytes_.fetch_add(end - begin, std::memory_order_relaxed);
        }
        state = prefetch_state_.load();
    }
}

bool ThreadPool::join_run() {
    uint32_t state = run_state_.load();
    while ((state & kClosed) == 0)
        if (run_state_.compare_exchange_weak(state, state + 1)) return true;
    return false;
}

void parallel_for(ThreadPool &pool, int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t)> body) {
    parallel_for(pool, n, grain, [&](int64_t begin, int64_t end, int) { body(begin, end); });
}

namespace {

// The size of parallel_for's chunks of [0, n) items: at least `grain` items, about four chunks per thread.
int64_t parallel_for_chunk(const ThreadPool &pool, int64_t n, int64_t grain) {
    if (n <= 0) return 1;
    const int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(grain, 1));
    const int64_t chunks = std::min<int64_t>(max_chunks, int64_t{pool.size()} * 4);
    return (n + chunks - 1) / chunks;
}

}  // namespace

void parallel_for(ThreadPool &pool, int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t, int)> body) {
    if (n <= 0) return;
    const int64_t step = parallel_for_chunk(pool, n, grain);
    pool.run_indexed((n + step - 1) / step,
                     [&](int64_t c, int worker) { body(c * step, std::min(n, (c + 1) * step), worker); });
}

void parallel_for_shares(ThreadPool &pool, int64_t n, int64_t max_chunk,
                         FunctionRef<void(int64_t, int64_t, int)> body) {
    if (n <= 0) return;
    max_chunk = std::max<int64_t>(max_chunk, 1);
    const int64_t threads = pool.size(), per_share = (n + threads * max_chunk - 1) / (threads * max_chunk);
    // Work of one chunk or less stays on the caller, as with parallel_for: not worth a wake-up.
    const int64_t chunks = n <= max_chunk ? 1 : std::min(n, threads * per_share);
    const int64_t size = n / chunks, longer = n % chunks;  // the first `longer` chunks take one item more
    const auto begin = [&](int64_t c) { return c * size + std::min(c, longer); };
    pool.run_shares(chunks, [&](int64_t c, int worker) { body(begin(c), begin(c + 1), worker); });
}

}  // namespace moe4j
