// `moe4j_bench absorb`: the unquantized GEMM (moe4j_gemm_nt) as MLA runs it, one strided-batched call per head
// group: absorption q_nope [H, M, 128] x W_uk [H, 512, 128] and un-absorption o [H, M, 512] x W_uv [H, 128, 512],
// bf16 in, bf16 out as MLA writes them (--out f32 for fp32), V2-Lite's 16 heads. Few rows (decode) stream the weights:
// their rate is compared with the read bandwidth measured right after each row, over a pool of weight copies larger
// than the last-level cache. Many rows (prefill) are compute: compared with the peak of the context's path measured at
// the start (bf16 dot products on AVX512_BF16, else fp32 FMAs).
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "buffers.h"
#include "machine.h"
#include "moe4j_util.h"
#include "subcommands.h"
#include "table.h"
#include "timing.h"

namespace bench {

namespace {

constexpr size_t kPoolMinBytes = size_t{256} << 20;
constexpr size_t kBandwidthBytes = size_t{256} << 20;

struct Shape {
    const char *op;
    int64_t heads, m, n, k;
};

std::vector<Shape> shapes(const Args &args) {
    if (args.has("m") || args.has("n") || args.has("k") || args.has("heads")) {
        return {{"custom", args.get_int("heads", 16, 1, 1024), args.get_int("m", 1, 1, 65536),
                 args.get_int("n", 512, 1, 65536), args.get_int("k", 128, 1, 65536)}};
    }
    std::vector<Shape> out;
    for (int64_t m : {1, 16, 512}) {
        out.push_back({"absorb", 16, m, 512, 128});
        out.push_back({"unabsorb", 16, m, 128, 512});
    }
    return out;
}

}  // namespace

int run_absorb(const Args &args) {
    const int threads = static_cast<int>(args.get_int("threads", 0, 0, 1024));
    int32_t isa = MOE4J_ISA_BEST;
    parse_isa(args.get_choice("isa", "best", {"scalar", "avx2", "avx512", "avx512_bf16", "best"}), &isa);
    const int fixed_reps = static_cast<int>(args.get_int("reps", 0, 1, 1000000));
    const bool f32_out = args.get_choice("out", "bf16", {"bf16", "f32"}) == "f32";
    const MachineFacts facts = measure_machine(threads);
    const Context ctx(facts.threads, isa, MOE4J_CONTEXT_REPRODUCIBLE);
    const bool pairs = ctx.info().isa == MOE4J_ISA_AVX512_BF16;
    const Rate peak = pairs ? measure_bf16_dot_peak(facts.threads) : facts.fma_peak;
    std::printf("%s\n", machine_summary(facts).c_str());
    std::printf(
        "absorb: moe4j_gemm_nt, bf16 x bf16 -> %s, context=%s threads=%d, weights cycled from a pool of %zu "
        "MiB or more; path peak (%s) %.1f GFLOP/s\n",
        f32_out ? "f32" : "bf16", isa_name(ctx.info().isa), facts.threads, kPoolMinBytes >> 20,
        pairs ? "vdpbf16ps" : "fp32 FMA", peak.best);
    const Table table({{"op", 9, Align::Left},
                       {"heads", 5, Align::Right},
                       {"M", 5, Align::Right},
                       {"N", 5, Align::Right},
                       {"K", 5, Align::Right},
                       {"reps", 6, Align::Right},
                       {"best_us", 10, Align::Right},
                       {"median_us", 10, Align::Right},
                       {"wGB/s", 7, Align::Right},
                       {"%bw", 6, Align::Right},
                       {"GFLOP/s", 8, Align::Right},
                       {"%peak", 6, Align::Right}});
    table.print_header();
    for (const Shape &s : shapes(args)) {
        const int64_t weight_elems = s.heads * s.n * s.k, weight_bytes = weight_elems * 2;
        const int64_t copies = std::max<int64_t>(2, static_cast<int64_t>(kPoolMinBytes) / weight_bytes + 1);
        AlignedBuffer weights(static_cast<size_t>(copies * weight_bytes)),
            a(static_cast<size_t>(s.heads * s.m * s.k * 2));
        AlignedBuffer d(static_cast<size_t>(s.heads * s.m * s.n * 4));
        fill_random_bf16(weights.as<uint16_t>(), static_cast<size_t>(copies * weight_elems), 11, 0.1f);
        fill_random_bf16(a.as<uint16_t>(), static_cast<size_t>(s.heads * s.m * s.k), 12);
        const moe4j_tensor at = host_tensor(a.data(), MOE4J_BF16, {s.heads, s.m, s.k});
        moe4j_tensor dt = host_tensor(d.data(), f32_out ? MOE4J_F32 : MOE4J_BF16, {s.heads, s.m, s.n});
        int64_t next = 0;
        const auto call = [&] {
            const moe4j_tensor bt =
                host_tensor(weights.as<uint16_t>() + next * weight_elems, MOE4J_BF16, {s.heads, s.n, s.k});
            check(moe4j_gemm_nt(ctx.get(), &at, &bt, nullptr, &dt), "moe4j_gemm_nt");
            next = (next + 1) % copies;
        };
        for (int64_t c = 0; c < copies; ++c) call();  // first touch and warm-up
        RepPolicy policy;
        policy.fixed_reps = fixed_reps;
        policy.min_reps = static_cast<int>(std::max<int64_t>(10, copies));
        policy.min_seconds = 0.3;
        const Stats st = summarize(time_calls(policy, call));
        const Rate bw = measure_read_bandwidth(facts.threads, facts.read_bw.width, kBandwidthBytes, 3);
        const double gbs = weight_bytes / st.best / 1e9, gflops = 2.0 * s.heads * s.m * s.n * s.k / st.best / 1e9;
        table.print_row({s.op, std::to_string(s.heads), std::to_string(s.m), std::to_string(s.n), std::to_string(s.k),
                         std::to_string(st.count), fixed(st.best * 1e6, 1), fixed(st.median * 1e6, 1), fixed(gbs, 2),
                         fixed(100.0 * gbs / bw.best, 1), fixed(gflops, 1), fixed(100.0 * gflops / peak.best, 1)});
    }
    std::printf(
        "\nwGB/s: bf16 weight bytes per call / best_us; %%bw against the read bandwidth measured right after each "
        "row (best of 3); GFLOP/s = 2*heads*M*N*K / best_us; %%peak against the path peak above.\n");
    report_bandwidth_drift(facts);
    return 0;
}

}  // namespace bench
