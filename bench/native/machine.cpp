#include "machine.h"

#include <algorithm>
#include <cstdio>
#include <thread>
#include <vector>

#include "buffers.h"
#include "moe4j_util.h"
#include "table.h"
#include "timing.h"

namespace bench {

namespace {

// Results land here so the measured loops cannot be optimized away.
volatile float g_sink;

Rate to_rate(SimdWidth width, int threads, const std::vector<double> &seconds, double work_per_rep) {
    const Stats s = summarize(seconds);
    Rate r;
    r.width = width;
    r.threads = threads;
    r.reps = s.count;
    r.best = work_per_rep / s.best * 1e-9;
    r.median = work_per_rep / s.median * 1e-9;
    return r;
}

}  // namespace

namespace {

size_t read_slice_floats(int threads, size_t bytes) {
    constexpr size_t kPageFloats = 4096 / sizeof(float);
    return std::max(kPageFloats, bytes / sizeof(float) / threads / kPageFloats * kPageFloats);
}

}  // namespace

ReadProbe::ReadProbe(int threads, SimdWidth width, size_t bytes)
    : threads_(threads),
      width_(width),
      slice_(read_slice_floats(threads, bytes)),
      buffer_(slice_ * sizeof(float) * threads, 4096) {
    float *base = buffer_.as<float>();
    // First touch by the thread that reads the slice, so its pages are local to it.
    run_threads(threads_, [&](int t) { std::fill(base + t * slice_, base + (t + 1) * slice_, 1.0f); });
}

Rate ReadProbe::measure(int reps) {
    const float *base = buffer_.as<float>();
    std::vector<float> sums(threads_);
    const auto read_all = [&] {
        run_threads(threads_, [&](int t) { sums[t] = sum_floats(width_, base + t * slice_, slice_); });
    };
    read_all();  // warm-up
    RepPolicy policy;
    policy.fixed_reps = reps;
    const std::vector<double> seconds = time_calls(policy, read_all);
    for (float s : sums) g_sink = s;
    return to_rate(width_, threads_, seconds, static_cast<double>(buffer_.size()));
}

Rate measure_read_bandwidth(int threads, SimdWidth width, size_t bytes, int reps) {
    return ReadProbe(threads, width, bytes).measure(reps);
}

namespace {

// Calibrates `chains(rounds)` to about seconds_per_rep on one thread (the second try runs at the clock the loop
// settles to), then times it on `threads` threads at once.
template <typename Chains, typename Flops>
Rate measure_peak(int threads, SimdWidth width, int reps, double seconds_per_rep, Chains chains, Flops flops) {
    int64_t rounds = int64_t{1} << 20;
    for (int attempt = 0; attempt < 2; ++attempt) {
        const Timer t;
        g_sink = chains(rounds);
        rounds = std::max<int64_t>(1024, static_cast<int64_t>(rounds * seconds_per_rep / t.seconds()));
    }
    std::vector<float> results(threads);
    RepPolicy policy;
    policy.fixed_reps = reps;
    const std::vector<double> seconds =
        time_calls(policy, [&] { run_threads(threads, [&](int t) { results[t] = chains(rounds); }); });
    for (float r : results) g_sink = r;
    return to_rate(width, threads, seconds, flops(rounds) * threads);
}

}  // namespace

Rate measure_fma_peak(int threads, SimdWidth width, int reps, double seconds_per_rep) {
    return measure_peak(
        threads, width, reps, seconds_per_rep, [width](int64_t rounds) { return fma_chains(width, rounds); },
        [width](int64_t rounds) { return fma_chain_flops(width, rounds); });
}

Rate measure_bf16_dot_peak(int threads, int reps, double seconds_per_rep) {
    return measure_peak(threads, SimdWidth::Avx512, reps, seconds_per_rep, bf16_dot_chains, bf16_dot_chain_flops);
}

Rate measure_int8_dot_peak(int threads, int reps, double seconds_per_rep) {
    return measure_peak(
        threads, SimdWidth::Avx512, reps, seconds_per_rep,
        [](int64_t rounds) { return static_cast<float>(int8_dot_chains(rounds)); }, int8_dot_chain_ops);
}

MachineFacts measure_machine(int threads) {
    MachineFacts facts;
    facts.caps = query_capabilities();
    facts.threads = threads > 0 ? threads : facts.caps.cpu_threads;
    const SimdWidth widest = widest_simd_width();
    facts.read_bw = measure_read_bandwidth(facts.threads, widest);
    facts.fma_peak = measure_fma_peak(facts.threads, widest);
    return facts;
}

std::string machine_summary(const MachineFacts &f) {
    const moe4j_capabilities &c = f.caps;
    return "moe4j " + std::to_string(c.version_major) + "." + std::to_string(c.version_minor) + "." +
           std::to_string(c.version_patch) + "  cpu_isa=" + isa_name(c.cpu_isa) +
           "  hw_threads=" + std::to_string(c.cpu_threads) + "  threads=" + std::to_string(f.threads) +
           "  read_bw=" + fixed(f.read_bw.best, 1) + " GB/s (" + simd_name(f.read_bw.width) + " loads, " +
           std::to_string(f.read_bw.reps) + " reps)" + "  fma_peak=" + fixed(f.fma_peak.best, 1) + " GFLOP/s (" +
           simd_name(f.fma_peak.width) + ", " + std::to_string(simd_lanes(f.fma_peak.width)) + " lanes)";
}

void report_bandwidth_drift(const MachineFacts &facts) {
    const Rate end_bw = measure_read_bandwidth(facts.threads, facts.read_bw.width);
    const double drift = end_bw.best / facts.read_bw.best - 1.0;
    std::printf("read_bw re-measured at the end: %.1f GB/s (%+.0f%% vs start)%s\n", end_bw.best, 100.0 * drift,
                drift > 0.15 || drift < -0.15 ? "  WARNING: bandwidth drifted, compare rows with care" : "");
}

}  // namespace bench
