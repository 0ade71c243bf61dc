// `moe4j_bench q8`: the int8 GEMM (moe4j_q8_gemm_nt) at the LM head's shape against the FP8 GEMM on the same weight
// bytes (E4M3 packed in panels as models hold them, activations quantized per token as Linear does: the head a user
// would otherwise run), the read bandwidth measured right after each row, and both results' error against a
// double-precision product of the unquantized bf16 weights.
#include <algorithm>
#include <cmath>
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

constexpr size_t kPoolMinBytes = size_t{256} << 20;  // weights cycled through at least this much memory
constexpr size_t kBandwidthBytes = size_t{256} << 20;
constexpr int64_t kErrorColumns = 4096;  // outputs of row 0 checked against the float64 product

struct Shape {
    int64_t m, n, k;
};

std::vector<Shape> shapes(const Args &args) {
    const int64_t n = args.get_int("n", 102400, 16, int64_t{1} << 22), k = args.get_int("k", 2048, kBlock, 65536);
    if (n % 16 != 0) throw UsageError("--n must be a multiple of 16");
    if (k % kBlock != 0) throw UsageError("--k must be a multiple of 128");
    if (args.has("m")) return {{args.get_int("m", 1, 1, 65536), n, k}};
    std::vector<Shape> out;
    for (int64_t m : {1, 8, 16, 64}) out.push_back({m, n, k});
    return out;
}

// Relative RMS error of got[j] against want[j], j < count.
double rms_error(const float *got, const std::vector<double> &want) {
    double diff = 0, ref = 0;
    for (size_t j = 0; j < want.size(); ++j) {
        diff += (got[j] - want[j]) * (got[j] - want[j]);
        ref += want[j] * want[j];
    }
    return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

}  // namespace

int run_q8(const Args &args) {
    const int threads = static_cast<int>(args.get_int("threads", 0, 0, 1024));
    int32_t isa = MOE4J_ISA_BEST;
    parse_isa(args.get_choice("isa", "best", {"scalar", "avx2", "avx512", "avx512_bf16", "best"}), &isa);
    const int fixed_reps = static_cast<int>(args.get_int("reps", 0, 1, 1000000));
    const MachineFacts facts = measure_machine(threads);
    const Context ctx(facts.threads, isa, MOE4J_CONTEXT_REPRODUCIBLE);
    // the path's own ceiling for many rows: int8 dot products where it runs them, else fp32 FMAs
    const bool vnni = has_int8_dot() && ctx.info().isa == MOE4J_ISA_AVX512_BF16;
    const Rate peak = vnni ? measure_int8_dot_peak(facts.threads) : facts.fma_peak;
    std::printf("%s\n", machine_summary(facts).c_str());
    std::printf(
        "q8: moe4j_q8_gemm_nt (int8 weights, one scale per row; activations int8 per 128) against "
        "moe4j_quantize_fp8_per_token + moe4j_fp8_gemm_nt on E4M3_P32 weights (the FP8 head), context=%s threads=%d, "
        "f32 out; weights cycled from a pool of %zu MiB or more; path peak (%s) %.1f GOP/s\n",
        isa_name(ctx.info().isa), facts.threads, kPoolMinBytes >> 20, vnni ? "vpdpbusd" : "fp32 FMA", peak.best);
    const Table table({{"M", 5, Align::Right},
                       {"N", 6, Align::Right},
                       {"K", 5, Align::Right},
                       {"reps", 5, Align::Right},
                       {"q8_us", 9, Align::Right},
                       {"q8_med", 9, Align::Right},
                       {"wGB/s", 6, Align::Right},
                       {"%bw", 5, Align::Right},
                       {"GOP/s", 6, Align::Right},
                       {"%peak", 5, Align::Right},
                       {"fp8_us", 9, Align::Right},
                       {"fp8_med", 9, Align::Right},
                       {"vs_fp8", 6, Align::Right},
                       {"q8_err", 7, Align::Right},
                       {"fp8_err", 7, Align::Right}});
    table.print_header();
    for (const Shape &s : shapes(args)) {
        const int64_t weight_elems = s.n * s.k, blocks = s.k / kBlock;
        const int64_t copies = std::max<int64_t>(1, static_cast<int64_t>(kPoolMinBytes) / weight_elems + 1);
        AlignedBuffer source(static_cast<size_t>(weight_elems * 2)), x(static_cast<size_t>(s.m * s.k * 4));
        AlignedBuffer q8(static_cast<size_t>(copies * weight_elems)), q8_scales(static_cast<size_t>(copies * s.n * 4));
        AlignedBuffer fp8(static_cast<size_t>(copies * weight_elems)), e4m3(static_cast<size_t>(weight_elems));
        AlignedBuffer fp8_scales(static_cast<size_t>(copies * ((s.n + kBlock - 1) / kBlock) * blocks * 4));
        AlignedBuffer xq(static_cast<size_t>(s.m * s.k)), xs(static_cast<size_t>(s.m * blocks * 4));
        AlignedBuffer d(static_cast<size_t>(s.m * s.n * 4));
        fill_random_bf16(source.as<uint16_t>(), static_cast<size_t>(weight_elems), 21, 0.05f);
        fill_random_f32(x.as<float>(), static_cast<size_t>(s.m * s.k), 22, 2.0f);

        const moe4j_tensor w_t = host_tensor_2d(source.data(), MOE4J_BF16, s.n, s.k);
        const int64_t fp8_scale_count = ((s.n + kBlock - 1) / kBlock) * blocks;
        for (int64_t c = 0; c < copies; ++c) {  // every copy quantized from the same weights (and first touched)
            moe4j_tensor q_t = host_tensor_2d(q8.as<uint8_t>() + c * weight_elems, MOE4J_Q8_P16, s.n, s.k);
            moe4j_tensor qs_t = host_tensor(q8_scales.as<float>() + c * s.n, MOE4J_F32, {s.n});
            check(moe4j_quantize_q8_weights(ctx.get(), &w_t, &q_t, &qs_t), "moe4j_quantize_q8_weights");
            moe4j_tensor e_t = host_tensor_2d(e4m3.data(), MOE4J_E4M3, s.n, s.k);
            moe4j_tensor es_t = host_tensor_2d(fp8_scales.as<float>() + c * fp8_scale_count, MOE4J_F32,
                                               (s.n + kBlock - 1) / kBlock, blocks);
            check(moe4j_quantize_fp8_per_block(ctx.get(), &w_t, &e_t, &es_t, MOE4J_SCALE_FP32),
                  "moe4j_quantize_fp8_per_block");
            moe4j_tensor p_t = host_tensor_2d(fp8.as<uint8_t>() + c * weight_elems, MOE4J_E4M3_P32, s.n, s.k);
            check(moe4j_pack_fp8_weights(ctx.get(), &e_t, &p_t), "moe4j_pack_fp8_weights");
        }
        const moe4j_tensor x_t = host_tensor_2d(x.data(), MOE4J_F32, s.m, s.k);
        moe4j_tensor xq_t = host_tensor_2d(xq.data(), MOE4J_E4M3, s.m, s.k);
        moe4j_tensor xs_t = host_tensor_2d(xs.data(), MOE4J_F32, s.m, blocks);
        moe4j_tensor d_t = host_tensor_2d(d.data(), MOE4J_F32, s.m, s.n);
        int64_t next = 0;
        const auto q8_call = [&] {
            const moe4j_tensor q_t = host_tensor_2d(q8.as<uint8_t>() + next * weight_elems, MOE4J_Q8_P16, s.n, s.k);
            const moe4j_tensor qs_t = host_tensor(q8_scales.as<float>() + next * s.n, MOE4J_F32, {s.n});
            check(moe4j_q8_gemm_nt(ctx.get(), &x_t, &q_t, &qs_t, &d_t), "moe4j_q8_gemm_nt");
            next = (next + 1) % copies;
        };
        const auto fp8_call = [&] {
            const moe4j_tensor p_t = host_tensor_2d(fp8.as<uint8_t>() + next * weight_elems, MOE4J_E4M3_P32, s.n, s.k);
            const moe4j_tensor ps_t = host_tensor_2d(fp8_scales.as<float>() + next * fp8_scale_count, MOE4J_F32,
                                                     (s.n + kBlock - 1) / kBlock, blocks);
            check(moe4j_quantize_fp8_per_token(ctx.get(), &x_t, &xq_t, &xs_t, MOE4J_SCALE_FP32),
                  "moe4j_quantize_fp8_per_token");
            check(moe4j_fp8_gemm_nt(ctx.get(), &xq_t, &xs_t, &p_t, &ps_t, nullptr, &d_t), "moe4j_fp8_gemm_nt");
            next = (next + 1) % copies;
        };

        // Errors of row 0 against the float64 product of the bf16 weights, on the first outputs.
        const int64_t checked = std::min(kErrorColumns, s.n);
        std::vector<double> want(static_cast<size_t>(checked));
        for (int64_t j = 0; j < checked; ++j) {
            double sum = 0;
            for (int64_t i = 0; i < s.k; ++i)
                sum += static_cast<double>(bf16_to_f32(source.as<uint16_t>()[j * s.k + i])) * x.as<float>()[i];
            want[static_cast<size_t>(j)] = sum;
        }
        next = 0;
        q8_call();
        const double q8_error = rms_error(d.as<float>(), want);
        next = 0;
        fp8_call();
        const double fp8_error = rms_error(d.as<float>(), want);

        RepPolicy policy;
        policy.fixed_reps = fixed_reps;
        policy.min_reps = static_cast<int>(std::max<int64_t>(5, copies));
        policy.min_seconds = 0.3;
        next = 0;
        const Stats fp8_stats = summarize(time_calls(policy, fp8_call));
        next = 0;
        const Stats q8_stats = summarize(time_calls(policy, q8_call));
        const Rate bw = measure_read_bandwidth(facts.threads, facts.read_bw.width, kBandwidthBytes, 3);
        const double gbs = static_cast<double>(weight_elems + 4 * s.n) / q8_stats.best / 1e9;
        const double gops = 2.0 * static_cast<double>(s.m * weight_elems) / q8_stats.best / 1e9;
        char q8_err[16], fp8_err[16];
        std::snprintf(q8_err, sizeof q8_err, "%.1e", q8_error);
        std::snprintf(fp8_err, sizeof fp8_err, "%.1e", fp8_error);
        table.print_row({std::to_string(s.m), std::to_string(s.n), std::to_string(s.k), std::to_string(q8_stats.count),
                         fixed(q8_stats.best * 1e6, 1), fixed(q8_stats.median * 1e6, 1), fixed(gbs, 2),
                         fixed(100.0 * gbs / bw.best, 1), fixed(gops, 1), fixed(100.0 * gops / peak.best, 1),
                         fixed(fp8_stats.best * 1e6, 1), fixed(fp8_stats.median * 1e6, 1),
                         fixed(fp8_stats.best / q8_stats.best, 2) + "x", q8_err, fp8_err});
    }
    std::printf(
        "\nwGB/s: Q8 weight and scale bytes per call / q8_us (best); %%bw against the read bandwidth measured right "
        "after "
        "each row (best of 3); GOP/s = 2*M*N*K / q8_us, %%peak against the path peak above; vs_fp8 = fp8_us / q8_us "
        "(best of each; the FP8 head reads the same weight bytes plus "
        "its block scales); q8_err, fp8_err: relative RMS error of row 0's first %lld outputs against the float64 "
        "product of the bf16 weights and f32 activations.\n",
        static_cast<long long>(kErrorColumns));
    report_bandwidth_drift(facts);
    return 0;
}

}  // namespace bench
