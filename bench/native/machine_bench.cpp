// `moe4j_bench machine`: the machine's read bandwidth and FP32 FMA peak, in detail.
#include <cstdio>
#include <string>
#include <vector>

#include "machine.h"
#include "subcommands.h"
#include "table.h"

namespace bench {

namespace {

void print_rate(const Table &table, const char *measure, const Rate &r, const char *unit) {
    table.print_row({measure, simd_name(r.width), std::to_string(r.threads), std::to_string(r.reps), fixed(r.best, 1),
                     fixed(r.median, 1), fixed(r.best / r.threads, 1), unit});
}

}  // namespace

int run_machine(const Args &args) {
    const MachineFacts facts = measure_machine(static_cast<int>(args.get_int("threads", 0, 0, 1024)));
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
    const int threads = facts.threads;
    const SimdWidth widest = facts.read_bw.width;
    print_rate(table, "read_bw", facts.read_bw, "GB/s");
    if (threads > 1) print_rate(table, "read_bw", measure_read_bandwidth(1, widest), "GB/s");
    for (SimdWidth width : supported_simd_widths()) {
        if (width == facts.fma_peak.width) continue;
        print_rate(table, "fma_peak", measure_fma_peak(threads, width), "GFLOP/s");
    }
    print_rate(table, "fma_peak", facts.fma_peak, "GFLOP/s");
    if (threads > 1) print_rate(table, "fma_peak", measure_fma_peak(1, facts.fma_peak.width), "GFLOP/s");
    std::printf(
        "\nread_bw: %zu MiB buffer, each thread sums its own first-touched slice; "
        "fma_peak: %d independent FMA chains per thread, 2 flops per lane (scalar: multiply + add).\n",
        kReadBandwidthBytes >> 20, kFmaChains);
    return 0;
}

}  // namespace bench
