// Native unit tests that need no GPU, run by `./moe4j test` through ctest: the device guard's logic over a fake device
// API, the structure that makes the guard unavoidable (every CUDA backend function takes a Call that only run_body can
// make), the kernel-variant counts, the thread pool's exception safety and injected faults through the C ABI
// (the entry points are compiled in), and the overflow-free arithmetic validation relies on (extents, ceil_div, row
// views), and that kernel calls allocate nothing once their sizes have been seen (this program replaces operator new
// to count). Usage: moe4j_native_tests NATIVE_SRC_DIR
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <new>
#include <numeric>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../src/core/device_guard.h"
#include "../src/core/thread_pool.h"
#include "../src/core/validate.h"
#include "../src/core/variants.h"
#include "../src/core/views.h"
#include "moe4j.h"

// ---------------------------------------------------------------- counted allocations
// Every operator new of the program (the library's code is compiled in) counts here, on any thread.
namespace {
std::atomic<int64_t> heap_allocations{0};

void *counted_alloc(size_t size, size_t alignment) {
    ++heap_allocations;
    size = std::max<size_t>(size, 1);
    if (alignment <= alignof(std::max_align_t)) return std::malloc(size);
    return std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
}
// Not inlined: GCC would see free() meet a pointer from operator new where a delete is inlined, and warn.
[[gnu::noinline]] void counted_free(void *p) { std::free(p); }
}  // namespace

void *operator new(size_t size) {
    if (void *p = counted_alloc(size, 0)) return p;
    throw std::bad_alloc();
}
void *operator new[](size_t size) { return ::operator new(size); }
void *operator new(size_t size, std::align_val_t alignment) {
    if (void *p = counted_alloc(size, static_cast<size_t>(alignment))) return p;
    throw std::bad_alloc();
}
void *operator new[](size_t size, std::align_val_t alignment) { return ::operator new(size, alignment); }
void *operator new(size_t size, const std::nothrow_t &) noexcept { return counted_alloc(size, 0); }
void *operator new[](size_t size, const std::nothrow_t &) noexcept { return counted_alloc(size, 0); }
void *operator new(size_t size, std::align_val_t alignment, const std::nothrow_t &) noexcept {
    return counted_alloc(size, static_cast<size_t>(alignment));
}
void *operator new[](size_t size, std::align_val_t alignment, const std::nothrow_t &) noexcept {
    return counted_alloc(size, static_cast<size_t>(alignment));
}
void operator delete(void *p) noexcept { counted_free(p); }
void operator delete[](void *p) noexcept { counted_free(p); }
void operator delete(void *p, size_t) noexcept { counted_free(p); }
void operator delete[](void *p, size_t) noexcept { counted_free(p); }
void operator delete(void *p, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void *p, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void *p, size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void *p, size_t, std::align_val_t) noexcept { counted_free(p); }

namespace {

int failures = 0;

void expect(bool ok, const std::string &what) {
    if (ok) return;
    ++failures;
    std::cerr << "FAILED: " << what << "\n";
}

template <typename A, typename B>
void expect_equal(const A &actual, const B &expected, const std::string &what) {
    std::ostringstream message;
    message << what << ": got " << actual << ", expected " << expected;
    expect(actual == expected, message.str());
}

// A device API in memory: the thread's current device, call counts, and errors to inject.
struct FakeDevices {
    using Error = int;
    static constexpr Error kSuccess = 0;
    int current = 0, count = 4;
    int gets = 0, sets = 0;
    Error get_error = 0, set_error = 0;
    int fail_set_to = -1;  // set_device(fail_set_to) fails with set_error
    std::vector<int> history;

    Error get_device(int *device) {
        ++gets;
        if (get_error != 0) return get_error;
        *device = current;
        return kSuccess;
    }
    Error set_device(int device) {
        ++sets;
        if (set_error != 0 && (fail_set_to < 0 || device == fail_set_to)) return set_error;
        if (device < 0 || device >= count) return 101;  // cudaErrorInvalidDevice
        current = device;
        history.push_back(device);
        return kSuccess;
    }
};

using Guard = moe4j::ScopedDevice<FakeDevices>;

void guard_switches_and_restores() {
    FakeDevices api;
    {
        Guard guard(api, 2);
        expect_equal(guard.error(), 0, "switch: no error");
        expect_equal(api.current, 2, "switch: device 2 current inside");
    }
    expect_equal(api.current, 0, "switch: device 0 restored");
    expect_equal(api.gets, 1, "switch: one get");
    expect_equal(api.sets, 2, "switch: set to 2, then back to 0");
}

void guard_skips_a_current_device() {
    FakeDevices api;
    api.current = 3;
    {
        Guard guard(api, 3);
        expect_equal(guard.error(), 0, "same device: no error");
    }
    expect_equal(api.sets, 0, "same device: never set");
    expect_equal(api.current, 3, "same device: unchanged");
}

void guard_reports_a_failed_get() {
    FakeDevices api;
    api.get_error = 3;  // cudaErrorInitializationError
    {
        Guard guard(api, 1);
        expect_equal(guard.error(), 3, "get fails: the error");
    }
    expect_equal(api.sets, 0, "get fails: nothing set, nothing restored");
}

void guard_reports_a_failed_set() {
    FakeDevices api;
    {
        Guard guard(api, 7);  // no such device
        expect_equal(guard.error(), 101, "set fails: the error");
        expect_equal(api.current, 0, "set fails: the previous device stays");
    }
    expect_equal(api.sets, 1, "set fails: no restore of a switch that did not happen");
}

void guards_nest() {
    FakeDevices api;
    api.current = 1;
    {
        Guard outer(api, 2);
        {
            Guard inner(api, 3);
            expect_equal(api.current, 3, "nested: inner device");
        }
        expect_equal(api.current, 2, "nested: outer device after the inner guard");
        {
            Guard same(api, 2);
            expect_equal(api.current, 2, "nested: same device");
        }
        expect_equal(api.current, 2, "nested: still the outer device");
    }
    expect_equal(api.current, 1, "nested: the thread's device restored");
    const std::vector<int> expected{2, 3, 2, 1};
    expect(api.history == expected, "nested: devices set 2, 3, 2, 1 in that order");
}

void explicit_restore_reports_and_happens_once() {
    FakeDevices api;
    Guard guard(api, 2);
    api.set_error = 46;  // cudaErrorDevicesUnavailable on the way back
    api.fail_set_to = 0;
    expect_equal(guard.restore(), 46, "restore: its error is returned");
    api.set_error = 0;
    expect_equal(guard.restore(), 0, "restore: a second restore does nothing");
    const int sets = api.sets;
    { Guard other(api, 1); }
    expect_equal(api.sets, sets + 2, "restore: a new guard still works");
}

int to_status(int error) { return 1000 + error; }

void on_device_runs_the_body_on_the_device() {
    FakeDevices api;
    int seen = -1;
    const int status = moe4j::on_device(
        api, 3,
        [&] {
            seen = api.current;
            return 0;
        },
        to_status);
    expect_equal(status, 0, "on_device: body's status");
    expect_equal(seen, 3, "on_device: the body runs with the device current");
    expect_equal(api.current, 0, "on_device: restored after");
}

void on_device_propagates_errors() {
    FakeDevices api;
    bool ran = false;
    int status = moe4j::on_device(
        api, 9,
        [&] {
            ran = true;
            return 0;
        },
        to_status);
    expect_equal(status, 1101, "on_device: a device that cannot be made current is the call's error");
    expect(!ran, "on_device: the body does not run without its device");

    status = moe4j::on_device(
        api, 2, [] { return 7; }, to_status);
    expect_equal(status, 7, "on_device: the body's own error");
    expect_equal(api.current, 0, "on_device: restored after a failing body");

    api.set_error = 46;
    api.fail_set_to = 0;
    status = moe4j::on_device(
        api, 2, [] { return 0; }, to_status);
    expect_equal(status, 1046, "on_device: a failed restore after a good body is the call's error");
    status = moe4j::on_device(
        api, 2, [] { return 7; }, to_status);
    expect_equal(status, 7, "on_device: a failed restore does not hide the body's error");
}

std::string read(const std::string &path) {
    std::ifstream in(path);
    if (!in) {
        expect(false, "cannot read " + path);
        return "";
    }
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// Every function of the CUDA backend that can issue device work takes `const Call &` first, and Call can be made only
// by run_body (its constructor is private, run_body its only friend): no API-layer call escapes the device guard.
// attach and detach, which run before a Call can exist, use the guard themselves.
void every_cuda_entry_point_is_guarded(const std::string &src) {
    const std::string header = read(src + "/cuda/cuda_backend.h");
    const std::set<std::string> without_call{"device_count", "attach", "detach", "run_body"};
    int guarded = 0;
    std::set<std::string> found;
    // Declarations at namespace scope start a line with their return type (clang-format keeps them unindented).
    for (size_t at = 0; at < header.size();) {
        const size_t end = std::min(header.find('\n', at), header.size());
        const std::string line = header.substr(at, end - at);
        at = end + 1;
        std::string name;
        for (const char *type : {"moe4j_status ", "void ", "int "})
            if (line.rfind(type, 0) == 0) name = line.substr(std::string(type).size());
        const size_t open = name.find('(');
        if (name.empty() || open == std::string::npos) continue;
        const size_t declaration_end = header.find_first_of(";{", at - line.size() - 1);
        if (declaration_end == std::string::npos || header[declaration_end] != ';') continue;  // a definition
        const std::string parameters = name.substr(open + 1);
        name = name.substr(0, open);
        found.insert(name);
        if (without_call.count(name) != 0) continue;
        expect(parameters.rfind("const Call &", 0) == 0,
               "cuda_backend.h: " + name + " must take `const Call &call` first (run() makes one)");
        ++guarded;
    }
    for (const std::string &name : without_call) expect(found.count(name) != 0, "cuda_backend.h declares " + name);
    expect(guarded >= 17,
           "cuda_backend.h: at least the 17 kernel and memory functions take a Call, found " + std::to_string(guarded));

    const size_t class_at = header.find("class Call {");
    const std::string body =
        class_at == std::string::npos ? "" : header.substr(class_at, header.find("};", class_at) - class_at);
    expect(body.find("friend moe4j_status run_body(") != std::string::npos,
           "cuda_backend.h: run_body must be Call's friend");
    expect(body.find("friend") == body.rfind("friend"), "cuda_backend.h: run_body must be Call's only friend");
    const size_t constructor = body.find("Call(const char *function, moe4j_context *ctx)");
    const size_t private_at = body.rfind("private:", constructor);
    expect(constructor != std::string::npos && private_at != std::string::npos &&
               body.find("public:", private_at) > constructor,
           "cuda_backend.h: Call's only constructor must be private");
    expect(body.find("Call(") == constructor, "cuda_backend.h: Call has one constructor");

    const std::string context = read(src + "/cuda/context.cu");
    for (const char *name : {"moe4j_status attach(", "void detach(", "moe4j_status run_body("}) {
        const size_t at = context.find(name);
        expect(at != std::string::npos, std::string("context.cu defines ") + name);
        if (at == std::string::npos) continue;
        const size_t body_end = context.find("\n}\n", at);
        expect(context.substr(at, body_end - at).find("on_device(") != std::string::npos,
               std::string("context.cu: ") + name + "...) runs under on_device (the device guard)");
    }
    // The only CUDA runtime device switch is the guard's.
    for (const char *file : {"context.cu", "memory.cu", "gemm.cu", "expert_ffn.cu", "mla.cu", "quantize.cu",
                             "dispatch.cu", "norm.cu", "rope.cu", "activation.cu"}) {
        const std::string text = read(src + "/cuda/" + file);
        expect(text.find("cudaSetDevice(") == std::string::npos || std::string(file) == "context.cu",
               std::string(file) + " calls cudaSetDevice outside the device guard");
    }
    expect(read(src + "/cuda/cuda_state.h").find("return cudaSetDevice(device)") != std::string::npos,
           "cuda_state.h: CudaDevices::set_device is the guard's cudaSetDevice");
}

void variant_counts() {
    moe4j::VariantCounts counts;
    counts.count("fp8_gemm_nt", "tuned", "");
    counts.count("mla_decode", "simple", "MOE4J_CONTEXT_SIMPLE_KERNELS");
    counts.count("fp8_gemm_nt", "tuned", "");
    counts.count("fp8_gemm_nt", "simple", "rows of 'a' are not 16-byte aligned");
    const auto &e = counts.entries();
    expect_equal(e.size(), size_t{3}, "variants: three distinct entries");
    if (e.size() == 3) {
        expect_equal(e[0].kernel, std::string("fp8_gemm_nt"), "variants: first seen first");
        expect_equal(e[0].calls, int64_t{2}, "variants: repeated calls add up");
        expect_equal(e[1].reason, std::string("MOE4J_CONTEXT_SIMPLE_KERNELS"), "variants: the reason kept");
        expect_equal(e[2].variant, std::string("simple"), "variants: another reason is another entry");
    }
    counts.reset();
    expect(counts.entries().empty(), "variants: reset forgets everything");

    expect_equal(moe4j::kernel_name("moe4j_fp8_gemm_nt").joined(), std::string("fp8_gemm_nt"),
                 "kernel_name strips moe4j_");
    expect_equal(moe4j::kernel_name("moe4j_fp8_expert_ffn_contiguous", "down").joined(),
                 std::string("fp8_expert_ffn_contiguous:down"), "kernel_name adds the stage");
    using moe4j::CpuCode;
    expect_equal(std::string(moe4j::cpu_variant(MOE4J_ISA_AVX512, CpuCode::EveryPath)), std::string("avx512"),
                 "cpu_variant: AVX-512 code of its own");
    expect_equal(std::string(moe4j::cpu_variant(MOE4J_ISA_AVX512, CpuCode::NoAvx512F)), std::string("avx2"),
                 "cpu_variant: the AVX2 path at the avx512 level");
    expect(*moe4j::cpu_fallback_reason(MOE4J_ISA_AVX512, CpuCode::NoAvx512F) != '\0',
           "cpu_fallback_reason: says why avx2 ran");
    expect_equal(std::string(moe4j::cpu_variant(MOE4J_ISA_SCALAR, CpuCode::NoAvx512F)), std::string("scalar"),
                 "cpu_variant: scalar");
    expect_equal(std::string(moe4j::cpu_variant(MOE4J_ISA_AVX512_BF16, CpuCode::NoAvx512F)), std::string("avx512_bf16"),
                 "cpu_variant: avx512_bf16");
}

// ---------------------------------------------------------------- thread pool: exceptions

// Runs `threads` tasks that each wait until all of them have started, so that every thread of a pool of that size
// runs exactly one (no thread can take a second task while its first waits); the task on thread `thrower` then throws.
// Returns what the pool rethrew ("" if nothing) and counts the tasks that ran.
std::string throw_on_thread(moe4j::ThreadPool &pool, int thrower, std::atomic<int> &ran) {
    const int threads = pool.size();
    std::atomic<int> arrived{0};
    try {
        pool.run_indexed(threads, [&](int64_t, int worker) {
            ++arrived;
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
            while (arrived.load() < threads && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
            ++ran;
            if (worker == thrower) throw std::runtime_error("task on thread " + std::to_string(worker));
        });
    } catch (const std::runtime_error &e) {
        return e.what();
    }
    return "";
}

void pool_rethrows_a_task_exception_from_any_thread() {
    moe4j::ThreadPool pool(4);
    for (int thrower = 0; thrower < pool.size(); ++thrower) {
        std::atomic<int> ran{0};
        const std::string what = throw_on_thread(pool, thrower, ran);
        expect_equal(what, "task on thread " + std::to_string(thrower),
                     "pool: the exception of the task on thread " + std::to_string(thrower) + " reaches the caller");
        expect_equal(ran.load(), pool.size(), "pool: tasks already running finish");
        // The pool is usable afterwards: every task of the next run runs once.
        std::vector<std::atomic<int>> hits(1000);
        pool.run(1000, [&](int64_t i) { ++hits[static_cast<size_t>(i)]; });
        int once = 0;
        for (auto &h : hits) once += h.load() == 1;
        expect_equal(once, 1000, "pool: after a failed run every task of the next one runs exactly once");
    }
}

void pool_keeps_the_first_exception_and_skips_the_rest() {
    moe4j::ThreadPool pool(4);
    std::atomic<int> ran{0};
    std::string what;
    try {
        pool.run(100000, [&](int64_t i) {
            ++ran;
            std::this_thread::sleep_for(std::chrono::microseconds(20));
            throw std::runtime_error("task " + std::to_string(i));
        });
    } catch (const std::runtime_error &e) {
        what = e.what();
    }
    expect(what.rfind("task ", 0) == 0, "pool: one of the task exceptions is rethrown, got '" + what + "'");
    expect(ran.load() < 100000,
           "pool: tasks not started when a task failed are skipped (" + std::to_string(ran.load()) + " of 100000 ran)");

    // bad_alloc from a worker arrives as bad_alloc (entry points map it to MOE4J_ERROR_OUT_OF_MEMORY)
    bool out_of_memory = false;
    try {
        pool.run_indexed(64, [&](int64_t, int worker) {
            if (worker != 0) throw std::bad_alloc();
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        });
    } catch (const std::bad_alloc &) {
        out_of_memory = true;
    } catch (...) {
    }
    // (a pool whose workers took no task throws nothing: with 64 tasks of 1 ms the workers always take some)
    expect(out_of_memory, "pool: a worker's std::bad_alloc is rethrown as std::bad_alloc");

    // the single-thread pool and single-task runs: the exception propagates, later tasks do not run
    moe4j::ThreadPool alone(1);
    ran = 0;
    try {
        alone.run(10, [&](int64_t i) {
            ++ran;
            if (i == 3) throw std::runtime_error("three");
        });
    } catch (const std::runtime_error &) {
    }
    expect_equal(ran.load(), 4, "pool of 1: tasks after the failing one are skipped");
}

void pool_injected_task_faults() {
    moe4j::ThreadPool pool(3);
    pool.inject_fault(moe4j::TaskFault::OutOfMemory, 5);
    std::atomic<int> ran{0};
    pool.run(5, [&](int64_t) { ++ran; });  // 5 tasks: task 5 does not exist, the fault stays armed
    expect_equal(ran.load(), 5, "pool fault: a run without the task is not hit");
    std::string what;
    try {
        pool.run(6, [&](int64_t) { ++ran; });
    } catch (const std::bad_alloc &e) {
        what = e.what();
    }
    expect(what.find("task 5") != std::string::npos && what.find("injected") != std::string::npos,
           "pool fault: task 5 fails as an allocation naming the task, got '" + what + "'");
    ran = 0;
    pool.run(6, [&](int64_t) { ++ran; });
    expect_equal(ran.load(), 6, "pool fault: fires once");

    pool.inject_fault(moe4j::TaskFault::Exception, 0);
    bool internal = false;
    try {
        pool.run(1, [&](int64_t) {});
    } catch (const std::runtime_error &) {
        internal = true;
    }
    expect(internal, "pool fault: an exception fault on a single-task run (the caller's inline path)");
    pool.inject_fault(moe4j::TaskFault::Exception, 0);
    pool.inject_fault(moe4j::TaskFault::None, -1);
    pool.run(3, [&](int64_t) {});  // disarmed: nothing thrown
}

// A run does not wait for a worker that has not woken up by the time its tasks are done (a VM may take milliseconds to
// run a woken thread): the caller runs every task, and the late worker stays out of the finished run.
void pool_does_not_wait_for_late_workers() {
    moe4j::ThreadPool pool(2);
    pool.hold_workers(true);
    std::vector<int> ran_by(100, -1);
    auto run = std::async(std::launch::async, [&] {
        pool.run_indexed(100, [&](int64_t i, int worker) { ran_by[static_cast<size_t>(i)] = worker; });
    });
    const bool finished = run.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
    pool.hold_workers(false);
    run.wait();
    expect(finished, "pool: a run finishes while its worker has not joined");
    int on_caller = 0;
    for (int w : ran_by) on_caller += w == 0;
    expect_equal(on_caller, 100, "pool: the caller ran every task of a run its worker missed");
    // The late worker, released, finds the run closed and takes part in the next: two tasks that each wait for the
    // other to start run on both threads.
    std::atomic<int> arrived{0}, on_worker{0};
    pool.run_indexed(2, [&](int64_t, int worker) {
        ++arrived;
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (arrived.load() < 2 && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
        if (worker == 1) ++on_worker;
    });
    expect_equal(on_worker.load(), 1, "pool: the worker takes a task again after a run it missed");
    std::vector<std::atomic<int>> hits(1000);
    pool.run(1000, [&](int64_t i) { ++hits[static_cast<size_t>(i)]; });
    int once = 0;
    for (auto &h : hits) once += h.load() == 1;
    expect_equal(once, 1000, "pool: after a missed run every task of the next one runs exactly once");
}

// ---------------------------------------------------------------- thread pool: shares

// run_shares runs every task once; a thread takes its own share in order; parallel_for_shares covers [0, n) with
// chunks as a multiple of the threads (one where n <= max_chunk), at most max_chunk long and within one of each other;
// a thread whose share is
// used up takes over the other's untaken tasks; an exception skips what is left.
void pool_shares() {
    for (int threads : {1, 2, 3, 4}) {
        moe4j::ThreadPool pool(threads);
        for (int64_t tasks : {1, 2, 3, 7, 64, 1001}) {
            std::vector<std::atomic<int>> hits(static_cast<size_t>(tasks));
            std::vector<std::vector<int64_t>> order(static_cast<size_t>(threads));
            std::mutex lock;
            pool.run_shares(tasks, [&](int64_t i, int worker) {
                ++hits[static_cast<size_t>(i)];
                std::lock_guard<std::mutex> guard(lock);
                order[static_cast<size_t>(worker)].push_back(i);
            });
            int once = 0;
            for (auto &h : hits) once += h.load() == 1;
            const std::string what = std::to_string(tasks) + " tasks on " + std::to_string(threads) + " threads";
            expect_equal(once, static_cast<int>(tasks), "run_shares: every task runs once, " + what);
            // Each thread's tasks of its own share come in increasing order.
            const int64_t share = (tasks + threads - 1) / threads;
            for (int w = 0; w < threads; ++w) {
                int64_t last = -1;
                bool ordered = true;
                for (int64_t i : order[static_cast<size_t>(w)]) {
                    if (i / share != w) continue;
                    ordered &= i > last;
                    last = i;
                }
                expect(ordered, "run_shares: thread " + std::to_string(w) + " takes its share in order, " + what);
            }
        }
        for (int64_t n : {1, 5, 57, 1000}) {
            for (int64_t max_chunk : {1, 3, 8, 2000}) {
                std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
                std::atomic<int64_t> chunks{0}, shortest{n}, longest{0};
                moe4j::parallel_for_shares(pool, n, max_chunk, [&](int64_t begin, int64_t end, int) {
                    ++chunks;
                    for (int64_t i = begin; i < end; ++i) ++hits[static_cast<size_t>(i)];
                    int64_t s = shortest.load(), l = longest.load();
                    while (end - begin < s && !shortest.compare_exchange_weak(s, end - begin)) {
                    }
                    while (end - begin > l && !longest.compare_exchange_weak(l, end - begin)) {
                    }
                });
                int once = 0;
                for (auto &h : hits) once += h.load() == 1;
                const std::string what = "n " + std::to_string(n) + ", max_chunk " + std::to_string(max_chunk) + ", " +
                                         std::to_string(threads) + " threads";
                expect_equal(once, static_cast<int>(n), "parallel_for_shares: every item once, " + what);
                expect(n <= max_chunk ? chunks.load() == 1 : chunks.load() == n || chunks.load() % threads == 0,
                       "parallel_for_shares: a multiple of the threads in chunks, " + what);
                expect(longest.load() <= max_chunk && longest.load() - shortest.load() <= 1,
                       "parallel_for_shares: chunks at most max_chunk, within one of each other, " + what);
            }
        }
    }
    // A thread whose share is done takes over the other's: with thread 1's first task held back until thread 0 has
    // run out of its own, thread 0 runs tasks of share 1.
    moe4j::ThreadPool pool(2);
    std::atomic<bool> own_done{false};
    std::atomic<int> taken_over{0};
    pool.run_shares(40, [&](int64_t i, int worker) {
        if (worker == 1) {
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
            while (!own_done.load() && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
        }
        if (worker == 0 && i == 19) own_done = true;
        if (worker == 0 && i >= 20) ++taken_over;
    });
    expect(taken_over.load() > 0, "run_shares: a thread done with its share takes tasks of the other");
    // An exception skips the untaken tasks of every share.
    std::atomic<int> ran{0};
    bool thrown = false;
    try {
        pool.run_shares(100000, [&](int64_t i, int) {
            ++ran;
            std::this_thread::sleep_for(std::chrono::microseconds(20));
            if (i % 1000 == 3) throw std::runtime_error("task " + std::to_string(i));
        });
    } catch (const std::runtime_error &) {
        thrown = true;
    }
    expect(thrown && ran.load() < 100000, "run_shares: a task's exception is rethrown and the rest skipped");
    std::atomic<int> after{0};
    pool.run_shares(10, [&](int64_t, int) { ++after; });
    expect_equal(after.load(), 10, "run_shares: the pool runs every task again after a failed run");
}

// ---------------------------------------------------------------- thread pool: prefetch

// Gives the pool a hint of `bytes` at `data` and returns the bytes its workers prefetched for it (waiting up to 10 s
// for `expected`). A worker that has gone to sleep (2 ms after its last run) leaves hints alone, so a hint that found
// every worker asleep is given again after a run, which wakes them.
int64_t prefetched_for(moe4j::ThreadPool &pool, const char *data, int64_t bytes, int64_t expected) {
    for (int attempt = 0; attempt < 20; ++attempt) {
        pool.run(pool.size(), [](int64_t) {});
        const int64_t before = pool.prefetched_bytes();
        pool.prefetch(data, bytes);
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(attempt == 19 ? 10 : 1);
        while (pool.prefetched_bytes() - before < expected && std::chrono::steady_clock::now() < give_up)
            std::this_thread::yield();
        if (pool.prefetched_bytes() != before) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));  // anything past `expected` would show now
            return pool.prefetched_bytes() - before;
        }
    }
    return 0;
}

// The workers prefetch a range while no run is in flight: all of a small one, the first kPrefetchBytesPerThread bytes
// of each thread's share of a large one. A run after a prefetch has every thread take part (the worker leaves the
// job), runs every task once, and a pool ends with a job in flight.
void pool_prefetch() {
    const int64_t mib = int64_t{1} << 20, per_thread = moe4j::ThreadPool::kPrefetchBytesPerThread;
    std::vector<char> buffer(static_cast<size_t>(64 * mib));
    moe4j::ThreadPool alone(1);
    alone.prefetch(buffer.data(), 64 * mib);
    expect_equal(alone.prefetched_bytes(), int64_t{0}, "prefetch: a pool of one thread has no worker to do it");

    for (int threads : {2, 3}) {
        const std::string what = std::to_string(threads) + " threads";
        moe4j::ThreadPool pool(threads);
        expect_equal(prefetched_for(pool, buffer.data() + 100, 50000, 50000), int64_t{50000},
                     "prefetch: all of a 50000-byte range, " + what);
        expect_equal(prefetched_for(pool, buffer.data(), 64 * mib, threads * per_thread), threads * per_thread,
                     "prefetch: the first " + std::to_string(per_thread) + " bytes of each share of 64 MiB, " + what);
        pool.prefetch(buffer.data(), 0);  // nothing to do
        for (int round = 0; round < 100; ++round) {
            pool.prefetch(buffer.data(), 64 * mib);
            std::atomic<int> arrived{0}, on_workers{0};
            pool.run_indexed(threads, [&](int64_t, int worker) {
                ++arrived;
                const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
                while (arrived.load() < threads && std::chrono::steady_clock::now() < give_up)
                    std::this_thread::yield();
                on_workers += worker != 0;
            });
            if (on_workers.load() != threads - 1) {
                expect_equal(on_workers.load(), threads - 1, "prefetch: every worker joins the run after it, " + what);
                break;
            }
        }
        std::vector<std::atomic<int>> hits(1000);
        pool.prefetch(buffer.data(), 64 * mib);
        pool.run_shares(1000, [&](int64_t i, int) { ++hits[static_cast<size_t>(i)]; });
        int once = 0;
        for (auto &h : hits) once += h.load() == 1;
        expect_equal(once, 1000, "prefetch: a run after it runs every task once, " + what);
        pool.prefetch(buffer.data(), 64 * mib);  // in flight as the pool ends
    }
}

// ---------------------------------------------------------------- injected faults through the C ABI

moe4j_context *cpu_context(int threads) {
    moe4j_context_options options{MOE4J_BACKEND_CPU, 0, threads, MOE4J_ISA_BEST, 0};
    moe4j_context *ctx = nullptr;
    expect_equal(moe4j_context_create(&options, &ctx), MOE4J_OK, "create a CPU context");
    return ctx;
}

bool contains(const char *text, const std::string &part) { return std::string(text).find(part) != std::string::npos; }

void abi_task_faults_fail_one_call() {
    moe4j_context *ctx = cpu_context(4);
    if (ctx == nullptr) return;
    // a cast of 256 rows spreads over the pool in 16 tasks
    const int64_t rows = 256, cols = 4096;
    std::vector<float> src(static_cast<size_t>(rows * cols));
    for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i % 128) * 0.5f - 20.0f;  // exact in bf16
    std::vector<uint16_t> dst(src.size(), 0xFFFF);
    moe4j_tensor s = moe4j::dense_matrix(src.data(), MOE4J_F32, rows, cols, MOE4J_HOST_MEMORY),
                 d = moe4j::dense_matrix(dst.data(), MOE4J_BF16, rows, cols, MOE4J_HOST_MEMORY);
    const std::vector<float> src_before = src;

    expect_equal(moe4j_context_inject_fault(ctx, MOE4J_FAULT_TASK_OUT_OF_MEMORY, 7), MOE4J_OK, "arm a task fault");
    expect_equal(moe4j_cast(ctx, &s, &d), MOE4J_ERROR_OUT_OF_MEMORY, "cast with task 7 failing: out of memory");
    expect(contains(moe4j_last_error(), "moe4j_cast: out of host memory") && contains(moe4j_last_error(), "task 7") &&
               contains(moe4j_last_error(), "injected fault"),
           std::string("task fault message names the call and the task: ") + moe4j_last_error());
    expect(src == src_before, "a failed cast leaves its input alone");

    expect_equal(moe4j_cast(ctx, &s, &d), MOE4J_OK, "the context works on the next call");
    std::fill(dst.begin(), dst.end(), uint16_t{0xFFFF});
    expect_equal(moe4j_cast(ctx, &s, &d), MOE4J_OK, "and on the one after");
    int wrong = 0;
    for (size_t i = 0; i < src.size(); ++i) {
        uint32_t bits;
        std::memcpy(&bits, &src[i], 4);
        wrong += dst[i] != static_cast<uint16_t>(bits >> 16);  // these values are exact in bf16
    }
    expect_equal(wrong, 0, "cast after a failed call: every element right");

    expect_equal(moe4j_context_inject_fault(ctx, MOE4J_FAULT_TASK_EXCEPTION, 0), MOE4J_OK, "arm an exception fault");
    expect_equal(moe4j_cast(ctx, &s, &d), MOE4J_ERROR_INTERNAL, "cast with task 0 throwing: internal error");
    expect(contains(moe4j_last_error(), "moe4j_cast: internal error"), moe4j_last_error());
    expect_equal(moe4j_cast(ctx, &s, &d), MOE4J_OK, "the context works after an internal error");

    expect_equal(moe4j_context_inject_fault(ctx, MOE4J_FAULT_TASK_OUT_OF_MEMORY, 1), MOE4J_OK, "arm, then");
    expect_equal(moe4j_context_inject_fault(ctx, MOE4J_FAULT_NONE, 0), MOE4J_OK, "disarm");
    expect_equal(moe4j_cast(ctx, &s, &d), MOE4J_OK, "a disarmed fault does not fire");
    moe4j_context_destroy(ctx);
}

void abi_allocation_faults() {
    moe4j_context *ctx = cpu_context(2);
    if (ctx == nullptr) return;
    void *p = nullptr;
    expect_equal(moe4j_context_inject_fault(ctx, MOE4J_FAULT_ALLOCATION, 2), MOE4J_OK, "arm the second allocation");
    expect_equal(moe4j_alloc(ctx, 1000, &p), MOE4J_OK, "first allocation succeeds");
    expect_equal(moe4j_free(ctx, p), MOE4J_OK, "free it");
    p = reinterpret_cast<void *>(1);
    expect_equal(moe4j_alloc(ctx, 1000, &p), MOE4J_ERROR_OUT_OF_MEMORY, "second allocation fails");
    expect(p == reinterpret_cast<void *>(1), "a failed allocation leaves *out as it was");
    expect(contains(moe4j_last_error(), "moe4j_alloc: cannot allocate 1000 bytes of host memory (injected fault)"),
           moe4j_last_error());
    expect_equal(moe4j_alloc(ctx, 1000, &p), MOE4J_OK, "the third succeeds: a fault fires once");
    expect_equal(moe4j_free(ctx, p), MOE4J_OK, "free it");

    expect_equal(moe4j_context_inject_fault(ctx, 9, 1), MOE4J_ERROR_INVALID_ARGUMENT, "unknown fault");
    expect(contains(moe4j_last_error(), "argument 'fault': 9 is not a moe4j_fault"), moe4j_last_error());
    expect_equal(moe4j_context_inject_fault(ctx, MOE4J_FAULT_ALLOCATION, 0), MOE4J_ERROR_INVALID_ARGUMENT,
                 "allocation fault 0");
    expect(contains(moe4j_last_error(), "argument 'n': 0 is not positive"), moe4j_last_error());
    expect_equal(moe4j_context_inject_fault(ctx, MOE4J_FAULT_TASK_EXCEPTION, -1), MOE4J_ERROR_INVALID_ARGUMENT,
                 "task -1");
    expect_equal(moe4j_context_inject_fault(ctx, MOE4J_FAULT_NONE, 3), MOE4J_ERROR_INVALID_ARGUMENT, "none with n");
    expect_equal(moe4j_context_inject_fault(nullptr, MOE4J_FAULT_NONE, 0), MOE4J_ERROR_INVALID_ARGUMENT, "null ctx");
    moe4j_context_destroy(ctx);
}

// moe4j_prefetch checks its tensor like a kernel's operand and takes any dtype, rank and strides in the context's
// memory; a context of one thread takes the hint too (it does nothing with it).
void abi_prefetch() {
    for (int threads : {1, 2}) {
        moe4j_context *ctx = cpu_context(threads);
        if (ctx == nullptr) return;
        std::vector<uint16_t> data(64 * 64);
        moe4j_tensor t = moe4j::dense_matrix(data.data(), MOE4J_BF16, 64, 64, MOE4J_HOST_MEMORY);
        expect_equal(moe4j_prefetch(ctx, &t), MOE4J_OK, "prefetch of a host matrix");
        moe4j_tensor columns = t;
        columns.shape[1] = 8;
        columns.strides[0] = 64;
        expect_equal(moe4j_prefetch(ctx, &columns), MOE4J_OK, "prefetch of a strided view");
        expect_equal(moe4j_prefetch(ctx, nullptr), MOE4J_ERROR_INVALID_ARGUMENT, "prefetch of null");
        expect(contains(moe4j_last_error(), "moe4j_prefetch") && contains(moe4j_last_error(), "argument 't' is null"),
               moe4j_last_error());
        moe4j_tensor on_gpu = t;
        on_gpu.device = 0;
        expect_equal(moe4j_prefetch(ctx, &on_gpu), MOE4J_ERROR_INVALID_ARGUMENT, "prefetch of GPU memory on the CPU");
        expect(contains(moe4j_last_error(), "argument 't'") && contains(moe4j_last_error(), "CUDA device 0"),
               moe4j_last_error());
        moe4j_tensor rank0 = t;
        rank0.rank = 0;
        expect_equal(moe4j_prefetch(ctx, &rank0), MOE4J_ERROR_INVALID_ARGUMENT, "prefetch of rank 0");
        expect(contains(moe4j_last_error(), "argument 't': rank 0"), moe4j_last_error());
        expect_equal(moe4j_prefetch(nullptr, &t), MOE4J_ERROR_INVALID_ARGUMENT, "prefetch without a context");
        moe4j_context_destroy(ctx);
    }
}

// CPU memory from moe4j_alloc is zeroed even where the allocator hands back memory just freed, 64-byte aligned, and
// 2 MiB aligned from 8 MiB on (the blocks advised for huge pages).
void abi_host_allocations() {
    moe4j_context *ctx = cpu_context(2);
    if (ctx == nullptr) return;
    const int64_t mib = int64_t{1} << 20;
    for (const int64_t bytes : {int64_t{1}, int64_t{1000}, 8 * mib - 1, 8 * mib, 9 * mib + 5}) {
        const std::string what = std::to_string(bytes) + " bytes";
        for (int round = 0; round < 2; ++round) {  // the second round may get the first one's dirtied memory back
            void *p = nullptr;
            expect_equal(moe4j_alloc(ctx, bytes, &p), MOE4J_OK, what + ": allocated");
            if (p == nullptr) break;
            const auto address = reinterpret_cast<uintptr_t>(p);
            expect(address % (bytes >= 8 * mib ? 2 * mib : 64) == 0, what + ": aligned");
            const auto *bytes_at = static_cast<const unsigned char *>(p);
            int64_t nonzero = 0;
            for (int64_t i = 0; i < bytes; ++i) nonzero += bytes_at[i] != 0;
            expect_equal(nonzero, int64_t{0}, what + ": zeroed, round " + std::to_string(round));
            std::memset(p, 0xab, static_cast<size_t>(bytes));
            expect_equal(moe4j_free(ctx, p), MOE4J_OK, what + ": freed");
        }
    }
    moe4j_context_destroy(ctx);
}

// ---------------------------------------------------------------- no allocation once warm

// Host buffers of one test from moe4j_alloc (zeroed, 64-byte aligned), freed with it.
struct Buffers {
    moe4j_context *ctx;
    std::vector<void *> held;
    ~Buffers() {
        for (void *p : held) moe4j_free(ctx, p);
    }
    Buffers(const Buffers &) = delete;
    Buffers &operator=(const Buffers &) = delete;

    // A contiguous tensor of zeros.
    moe4j_tensor tensor(int32_t dtype, std::initializer_list<int64_t> shape) {
        moe4j_tensor t{};
        t.dtype = dtype;
        t.rank = static_cast<int32_t>(shape.size());
        t.device = MOE4J_HOST_MEMORY;
        int64_t elements = 1, i = 0;
        for (int64_t e : shape) elements *= t.shape[i++] = e;
        for (int64_t d = t.rank - 1, stride = 1; d >= 0; stride *= t.shape[d--]) t.strides[d] = stride;
        t.size_bytes = elements * moe4j::dtype_size(dtype);
        void *p = nullptr;
        expect_equal(moe4j_alloc(ctx, t.size_bytes, &p), MOE4J_OK, "allocate a test buffer");
        held.push_back(p);
        t.data = p;
        return t;
    }
    moe4j_tensor i32(std::initializer_list<int32_t> values) {
        moe4j_tensor t = tensor(MOE4J_I32, {static_cast<int64_t>(values.size())});
        std::copy(values.begin(), values.end(), static_cast<int32_t *>(t.data));
        return t;
    }
};

// Every kernel a decode step calls, on each CPU path: once its sizes have been seen, a call allocates nothing (the
// context's workspace holds its temporaries, the thread pool takes its tasks by reference), alone or in a round of
// calls of different kernels and shapes as a decode step makes them.
void kernel_calls_allocate_nothing_once_warm() {
    constexpr int64_t kHidden = 1024, kInter = 512, kGroups = 4, kVocab = 32768, kHeads = 16;
    for (const int32_t isa : {int32_t{MOE4J_ISA_BEST}, int32_t{MOE4J_ISA_AVX2}, int32_t{MOE4J_ISA_SCALAR}}) {
        moe4j_context_options options{MOE4J_BACKEND_CPU, 0, 2, isa, 0};
        moe4j_context *ctx = nullptr;
        expect_equal(moe4j_context_create(&options, &ctx), MOE4J_OK, "create a CPU context");
        if (ctx == nullptr) return;
        {
            Buffers b{ctx, {}};
            moe4j_tensor x = b.tensor(MOE4J_F32, {1, kHidden}), residual = b.tensor(MOE4J_F32, {1, kHidden});
            moe4j_tensor norm_weight = b.tensor(MOE4J_F32, {kHidden}), y = b.tensor(MOE4J_BF16, {1, kHidden});
            moe4j_tensor xq = b.tensor(MOE4J_E4M3, {4, kHidden}), xs = b.tensor(MOE4J_F32, {4, kHidden / 128});
            // the LM head's int8 weights, quantized from zeros (scales 0)
            moe4j_tensor head_w = b.tensor(MOE4J_BF16, {kHidden, kHidden});
            moe4j_tensor head = b.tensor(MOE4J_Q8_P16, {kHidden, kHidden}), head_s = b.tensor(MOE4J_F32, {kHidden});
            expect_equal(moe4j_quantize_q8_weights(ctx, &head_w, &head, &head_s), MOE4J_OK, "quantize q8 weights");
            moe4j_tensor head_out = b.tensor(MOE4J_F32, {1, kHidden}), logits = b.tensor(MOE4J_F32, {1, kVocab});
            moe4j_tensor argmax = b.tensor(MOE4J_I32, {1}), sum_exp = b.tensor(MOE4J_F32, {1});
            moe4j_tensor w = b.tensor(MOE4J_E4M3, {kHidden, kHidden}), w_s = b.tensor(MOE4J_F32, {8, 8});
            moe4j_tensor bf16_a = b.tensor(MOE4J_BF16, {kHeads, 1, 128}),
                         bf16_b = b.tensor(MOE4J_BF16, {kHeads, 512, 128});
            moe4j_tensor bf16_d = b.tensor(MOE4J_F32, {kHeads, 1, 512});
            // experts: gate and up packed, down not
            std::vector<moe4j_tensor> gate, up, down, gate_s, up_s, down_s;
            for (int64_t g = 0; g < kGroups; ++g) {
                moe4j_tensor plain = b.tensor(MOE4J_E4M3, {kInter, kHidden});
                gate.push_back(b.tensor(MOE4J_E4M3_P32, {kInter, kHidden}));
                up.push_back(b.tensor(MOE4J_E4M3_P32, {kInter, kHidden}));
                expect_equal(moe4j_pack_fp8_weights(ctx, &plain, &gate.back()), MOE4J_OK, "pack gate weights");
                expect_equal(moe4j_pack_fp8_weights(ctx, &plain, &up.back()), MOE4J_OK, "pack up weights");
                down.push_back(b.tensor(MOE4J_E4M3, {kHidden, kInter}));
                gate_s.push_back(b.tensor(MOE4J_F32, {kInter / 128, kHidden / 128}));
                up_s.push_back(b.tensor(MOE4J_F32, {kInter / 128, kHidden / 128}));
                down_s.push_back(b.tensor(MOE4J_F32, {kHidden / 128, kInter / 128}));
            }
            const moe4j_fp8_weight_groups w_gate{kGroups, gate.data(), gate_s.data()},
                w_up{kGroups, up.data(), up_s.data()}, w_down{kGroups, down.data(), down_s.data()};
            moe4j_tensor three_experts = b.i32({0, 2, 3, -1}), one_expert = b.i32({1, 1, -1, -1});
            moe4j_tensor ffn_out = b.tensor(MOE4J_BF16, {4, kHidden});
            // attention: 100 cached tokens in 2 of 4 blocks
            moe4j_tensor q = b.tensor(MOE4J_BF16, {1, 1, kHeads, 576}), kcache = b.tensor(MOE4J_BF16, {4, 64, 1, 576});
            moe4j_tensor table = b.tensor(MOE4J_I32, {1, 4}), seqlens = b.i32({100}), slot = b.i32({100});
            moe4j_tensor attn = b.tensor(MOE4J_BF16, {1, 1, kHeads, 512}), lse = b.tensor(MOE4J_F32, {1, kHeads, 1});
            std::iota(static_cast<int32_t *>(table.data), static_cast<int32_t *>(table.data) + 4, 0);
            moe4j_tensor kv = b.tensor(MOE4J_BF16, {1, 1, 576});
            moe4j_tensor pe = b.tensor(MOE4J_BF16, {1, kHeads, 64}), position = b.i32({99});
            moe4j_tensor freqs = b.tensor(MOE4J_F32, {32});
            moe4j_tensor mlp = b.tensor(MOE4J_BF16, {1, 2 * kHidden});
            moe4j_tensor mlp_gate = b.tensor(MOE4J_BF16, {1, kHidden}), mlp_up = b.tensor(MOE4J_BF16, {1, kHidden});
            moe4j_tensor rows = b.tensor(MOE4J_F32, {4, kHidden}), picks = b.i32({2, -1});
            moe4j_tensor gathered = b.tensor(MOE4J_F32, {2, kHidden}), combine_index = b.tensor(MOE4J_I32, {1, 2});
            moe4j_tensor combine_weights = b.tensor(MOE4J_F32, {1, 2}), combined = b.tensor(MOE4J_F32, {1, kHidden});
            (void)mlp;

            const std::vector<std::pair<std::string, std::function<moe4j_status()>>> calls = {
                {"rms_norm", [&] { return moe4j_rms_norm(ctx, &x, &residual, &norm_weight, 1e-6f, &residual, &y); }},
                {"cast", [&] { return moe4j_cast(ctx, &x, &y); }},
                {"quantize_fp8_per_token",
                 [&] { return moe4j_quantize_fp8_per_token(ctx, &rows, &xq, &xs, MOE4J_SCALE_FP32); }},
                {"fp8_gemm_nt", [&] { return moe4j_fp8_gemm_nt(ctx, &xq, &xs, &w, &w_s, nullptr, &ffn_out); }},
                {"gemm_nt (batched)", [&] { return moe4j_gemm_nt(ctx, &bf16_a, &bf16_b, nullptr, &bf16_d); }},
                {"rope", [&] { return moe4j_rope(ctx, &pe, &position, &freqs, 1.0f, &pe); }},
                {"mla_cache_append", [&] { return moe4j_mla_cache_append(ctx, &kv, &slot, &kcache); }},
                {"mla_decode",
                 [&] { return moe4j_mla_decode(ctx, &q, &kcache, &table, &seqlens, 0.1f, 0, &attn, &lse); }},
                {"fp8_expert_ffn_contiguous (3 experts)",
                 [&] {
                     return moe4j_fp8_expert_ffn_contiguous(ctx, &xq, &xs, &w_gate, &w_up, &w_down, &three_experts, 1,
                                                            &ffn_out);
                 }},
                {"fp8_expert_ffn_contiguous (1 expert, 2 rows)",
                 [&] {
                     return moe4j_fp8_expert_ffn_contiguous(ctx, &xq, &xs, &w_gate, &w_up, &w_down, &one_expert, 1,
                                                            &ffn_out);
                 }},
                {"silu_mul", [&] { return moe4j_silu_mul(ctx, &mlp_gate, &mlp_up, &mlp_gate); }},
                {"gather_rows", [&] { return moe4j_gather_rows(ctx, &rows, &picks, &gathered); }},
                {"combine_rows",
                 [&] { return moe4j_combine_rows(ctx, &gathered, &combine_index, &combine_weights, &combined, &x); }},
                {"q8_gemm_nt", [&] { return moe4j_q8_gemm_nt(ctx, &x, &head, &head_s, &head_out); }},
                {"logits_stats", [&] { return moe4j_logits_stats(ctx, &logits, &argmax, &sum_exp); }},
            };
            const std::string path = "isa " + std::to_string(isa) + ", ";
            for (const auto &[name, call] : calls) {
                // The first call grows the workspace block by block; the second merges the blocks into one.
                for (int warm = 0; warm < 2; ++warm) {
                    const moe4j_status status = call();
                    expect_equal(status, MOE4J_OK, path + name + ": warm-up call: " + moe4j_last_error());
                }
                const int64_t before = heap_allocations.load();
                const moe4j_status status = call();
                const int64_t allocated = heap_allocations.load() - before;
                expect_equal(status, MOE4J_OK, path + name + ": second call");
                expect_equal(allocated, int64_t{0}, path + name + ": allocations in a call of sizes seen before");
            }
            const int64_t before = heap_allocations.load();
            int64_t failed = 0;
            for (const auto &[name, call] : calls) failed += call() != MOE4J_OK;
            const int64_t allocated = heap_allocations.load() - before;
            expect_equal(failed, int64_t{0}, path + "a round of every call: all succeed");
            expect_equal(allocated, int64_t{0}, path + "a round of every call: allocations");
        }
        moe4j_context_destroy(ctx);
    }
}

moe4j_tensor descriptor(int32_t dtype, std::initializer_list<int64_t> shape, std::initializer_list<int64_t> strides) {
    moe4j_tensor t{};
    t.dtype = dtype;
    t.rank = static_cast<int32_t>(shape.size());
    int i = 0;
    for (int64_t s : shape) t.shape[i++] = s;
    i = 0;
    for (int64_t s : strides) t.strides[i++] = s;
    return t;
}

// Regressions found by the C ABI fuzzer (native/test/abi_fuzz.cpp) in the arithmetic validation relies on.
void validation_arithmetic() {
    constexpr int64_t max = INT64_MAX;
    // extent_bytes summed (shape - 1) * stride in __int128 unchecked: two such terms, or one times the element size,
    // overflowed it (undefined behaviour; in practice a small extent, so an impossible view was accepted).
    expect_equal(moe4j::extent_bytes(descriptor(MOE4J_F32, {max, 22}, {max, 1})), int64_t{-1},
                 "extent_bytes: shape [MAX, 22] strides [MAX, 1] overflows");
    expect_equal(moe4j::extent_bytes(descriptor(MOE4J_I64, {max, max, max, max}, {max, max, max, max})), int64_t{-1},
                 "extent_bytes: four extreme terms overflow");
    expect_equal(moe4j::extent_bytes(descriptor(MOE4J_I64, {max, 2}, {1, 0})), int64_t{-1},
                 "extent_bytes: (MAX - 1) + 1 elements of 8 bytes overflow");
    expect_equal(moe4j::extent_bytes(descriptor(MOE4J_BF16, {3, 5}, {7, 1})), int64_t{2 * (2 * 7 + 4 + 1)},
                 "extent_bytes: a padded view");
    expect_equal(moe4j::extent_bytes(descriptor(MOE4J_F32, {max, 0}, {max, max})), int64_t{0},
                 "extent_bytes: an empty view spans nothing");
    expect_equal(moe4j::extent_bytes(descriptor(MOE4J_F32, {1, 4}, {max, 1})), int64_t{16},
                 "extent_bytes: the stride of an extent-1 dimension does not count");
    // ceil_div(a, b) was (a + b - 1) / b: overflow for the extent of a zero-stride view near INT64_MAX.
    expect_equal(moe4j::ceil_div(max, 128), max / 128 + 1, "ceil_div(INT64_MAX, 128)");
    expect_equal(moe4j::ceil_div(256, 128), int64_t{2}, "ceil_div(256, 128)");
    expect_equal(moe4j::ceil_div(0, 128), int64_t{0}, "ceil_div(0, 128)");
    // RowView multiplied every stride by the element size: INT64_MAX strides of an empty tensor (or of an extent-1
    // dimension) are valid and overflowed.
    const moe4j::RowView empty(descriptor(MOE4J_F32, {3, 0, 28}, {max, 84, 1}));
    expect_equal(empty.rows, int64_t{0}, "RowView: an empty tensor has no rows");
    expect_equal(empty.byte_strides[0], int64_t{0}, "RowView: the strides of an empty tensor are not used");
    const moe4j::RowView single(descriptor(MOE4J_F32, {1, 5, 8}, {max, 8, 1}));
    expect_equal(single.rows, int64_t{5}, "RowView: rows of [1, 5, 8]");
    expect_equal(single.byte_strides[0], int64_t{0}, "RowView: an extent-1 dimension never steps");
    expect_equal(single.byte_strides[1], int64_t{32}, "RowView: byte stride of the row dimension");
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::cerr << "usage: moe4j_native_tests NATIVE_SRC_DIR (native/src)\n";
        return 2;
    }
    guard_switches_and_restores();
    guard_skips_a_current_device();
    guard_reports_a_failed_get();
    guard_reports_a_failed_set();
    guards_nest();
    explicit_restore_reports_and_happens_once();
    on_device_runs_the_body_on_the_device();
    on_device_propagates_errors();
    every_cuda_entry_point_is_guarded(argv[1]);
    variant_counts();
    pool_rethrows_a_task_exception_from_any_thread();
    pool_keeps_the_first_exception_and_skips_the_rest();
    pool_injected_task_faults();
    pool_does_not_wait_for_late_workers();
    pool_shares();
    pool_prefetch();
    abi_task_faults_fail_one_call();
    abi_allocation_faults();
    abi_host_allocations();
    abi_prefetch();
    kernel_calls_allocate_nothing_once_warm();
    validation_arithmetic();
    if (failures != 0) {
        std::cerr << failures << " check(s) failed\n";
        return 1;
    }
    std::cout << "moe4j native tests passed\n";
    return 0;
}
