// `moe4j_bench machine`: the machine's read bandwidth and FP32 FMA peak, in detail.
#include <cstdio>
#include <string>
#include <vector>

#include "machine.h"
#include "moe4j_util.h"
#include "subcommands.h"
#include "table.h"

namespace bench {

namespace {

// The buffer of --read-bw-per-line: far larger than the last-level cache, and read three times in about 25 ms at
// 30 GB/s, short beside the decode steps between two readings.
constexpr size_t kProbeBytes = size_t{256} << 20;

void print_rate(const Table &table, const char *measure, const Rate &r, const char *unit) {
    table.print_row({measure, simd_name(r.width), std::to_string(r.threads), std::to_string(r.reps), fixed(r.best, 1),
                     fixed(r.median, 1), fixed(r.best / r.threads, 1), unit});
}

}  // namespace

int run_machine(const Args &args) {
    const int thread_arg = static_cast<int>(args.get_int("threads", 0, 0, 1024));
    const int threads = thread_arg > 0 ? thread_arg : query_capabilities().cpu_threads;
    if (args.has("read-bw-per-line")) {
        // ./moe4j bench generate keeps this running beside its decode steps and asks for a reading every few steps:
        // one line in, one reading out, from a buffer allocated and touched once.
        ReadProbe probe(threads, widest_simd_width(), kProbeBytes);
        std::printf("ready threads=%d bytes=%zu\n", threads, kProbeBytes);
        std::fflush(stdout);
        for (int c = std::getchar(); c != EOF; c = std::getchar()) {
            if (c != '\n') continue;
            std::printf("read_bw_gbs=%.2f\n", probe.measure(3).best);
            std::fflush(stdout);
        }
        return 0;
    }
    if (args.has("read-bw")) {
        // One reading from fresh memory, for a person or a script between timed runs (bench generate reads
        // --read-bw-per-line between its decode steps instead).
        const Rate bw = measure_read_bandwidth(threads, widest_simd_width());
        std::printf("read_bw_gbs=%.2f threads=%d\n", bw.best, threads);
        return 0;
    }
    const MachineFacts facts = measure_machine(threads);
    // The ceiling of bf16 matrix products: vdpbf16ps where the CPU has it, else the fp32 FMAs the kernels widen
    // bf16 into.
    const bool native_bf16 = has_bf16_dot();
    const Rate bf16_dot = native_bf16 ? measure_bf16_dot_peak(facts.threads) : facts.fma_peak;
    if (args.has("brief")) {
        // One line of key=value for programs (./moe4j bench generate reads it). int8_dot_peak_gops: vpdpbusd, the
        // int8 GEMM's instruction, where the CPU has it (0 where not: the int8 GEMM then has no peak of its own here).
        const double int8_dot = has_int8_dot() ? measure_int8_dot_peak(facts.threads).best : 0.0;
        std::printf(
            "read_bw_gbs=%.2f fma_peak_gflops=%.1f bf16_dot_peak_gflops=%.1f bf16_dot=%s int8_dot_peak_gops=%.1f "
            "threads=%d\n",
            facts.read_bw.best, facts.fma_peak.best, bf16_dot.best, native_bf16 ? "vdpbf16ps" : "fp32_fma", int8_dot,
            facts.threads);
        return 0;
    }
    std::printf("%s\n\n", machine_summary(facts).c_str());

    const Table table({{"measure", 8, Align::Left},
                       {"simd", 6, Align::Left},
                       {"threads", 7, Align::Right},
                       {"reps", 5, Align::Right},
                       {"best", 8, Align::Right},
                       {"median", 8, Align::Right},
                       {"per_thread", 10, Align::Right},
                       {"unit", 7, Align::Left}});
    table.print_header();
    const SimdWidth widest = facts.read_bw.width;
    print_rate(table, "read_bw", facts.read_bw, "GB/s");
    if (threads > 1) print_rate(table, "read_bw", measure_read_bandwidth(1, widest), "GB/s");
    for (SimdWidth width : supported_simd_widths()) {
        if (width == facts.fma_peak.width) continue;
        print_rate(table, "fma_peak", measure_fma_peak(threads, width), "GFLOP/s");
    }
    print_rate(table, "fma_peak", facts.fma_peak, "GFLOP/s");
    if (threads > 1) print_rate(table, "fma_peak", measure_fma_peak(1, facts.fma_peak.width), "GFLOP/s");
    if (native_bf16) print_rate(table, "bf16_dot", bf16_dot, "GFLOP/s");
    std::printf(
        "\nread_bw: %zu MiB buffer, each thread sums its own first-touched slice; "
        "fma_peak: %d independent FMA chains per thread, 2 flops per lane (scalar: multiply + add); bf16_dot: the\n"
        "same chains of vdpbf16ps (64 flops each), %s.\n",
        kReadBandwidthBytes >> 20, kFmaChains,
        native_bf16 ? "measured" : "absent on this CPU (bf16 products run as fp32 FMAs: the fma_peak row)");
    return 0;
}

}  // namespace bench
