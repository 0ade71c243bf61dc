// Machine ceilings that kernel results are compared with: memory read bandwidth and peak FP32 FMA rate.
#pragma once

#include <cstddef>
#include <string>
#include <thread>
#include <vector>

#include "buffers.h"
#include "machine_kernels.h"
#include "moe4j.h"

namespace bench {

// A rate measured over several repetitions: GB/s (10^9 bytes/s) or GFLOP/s.
struct Rate {
    SimdWidth width = SimdWidth::Scalar;
    int threads = 0;
    int reps = 0;
    double best = 0;    // highest rate of any repetition
    double median = 0;  // rate of the median repetition
};

constexpr size_t kReadBandwidthBytes = size_t{1} << 30;

// A buffer of about `bytes` that `threads` threads each first-touch a disjoint slice of, then sum again at every
// measure(): the read bandwidth, as often as asked, without allocating or touching new memory each time.
class ReadProbe {
  public:
    ReadProbe(int threads, SimdWidth width, size_t bytes = kReadBandwidthBytes);
    // One untimed pass, then `reps` timed ones.
    Rate measure(int reps);

  private:
    int threads_;
    SimdWidth width_;
    size_t slice_;  // floats per thread
    AlignedBuffer buffer_;
};

// ReadProbe(threads, width, bytes).measure(reps).
Rate measure_read_bandwidth(int threads, SimdWidth width, size_t bytes = kReadBandwidthBytes, int reps = 7);

// `threads` threads each run independent FMA chains for about `seconds_per_rep` per repetition.
Rate measure_fma_peak(int threads, SimdWidth width, int reps = 5, double seconds_per_rep = 0.1);

// `threads` threads each run independent vdpbf16ps chains (requires has_bf16_dot()).
Rate measure_bf16_dot_peak(int threads, int reps = 5, double seconds_per_rep = 0.1);
// `threads` threads each run independent vpdpbusd chains (requires has_int8_dot()); the rate counts int8 operations.
Rate measure_int8_dot_peak(int threads, int reps = 5, double seconds_per_rep = 0.1);

// What every subcommand prints first: library capabilities and the machine's measured ceilings.
struct MachineFacts {
    moe4j_capabilities caps{};
    int threads = 0;
    Rate read_bw;   // widest loads
    Rate fma_peak;  // widest FMA
};

// threads 0 means all hardware threads.
MachineFacts measure_machine(int threads);

// Measures read bandwidth again and prints it beside the run's first measurement, with a warning when it moved
// more than 15%: on a shared machine the ceiling itself drifts, and this shows whether it held during the run.
void report_bandwidth_drift(const MachineFacts &facts);

// Calls fn(t) for t in [0, threads), t = 0 on the calling thread, and waits for all.
template <typename Fn>
void run_threads(int threads, Fn fn) {
    std::vector<std::thread> workers;
    for (int t = 1; t < threads; ++t) workers.emplace_back(fn, t);
    fn(0);
    for (std::thread &w : workers) w.join();
}

// One line: version, ISA path, threads, read GB/s and FMA GFLOP/s with the widths used.
std::string machine_summary(const MachineFacts &facts);

}  // namespace bench
