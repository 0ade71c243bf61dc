// `moe4j_bench quant`: FP8 quantization throughput against the machine's measured read bandwidth.
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

enum class QuantOp { PerToken, PerBlock };

const char *op_name(QuantOp op) { return op == QuantOp::PerToken ? "per_token" : "per_block"; }

struct QuantCase {
    QuantOp op;
    int64_t rows;
    int64_t cols;
    int32_t dtype;
    bool scalar_baseline;  // also time the scalar path on this case and report the speedup over it
};

struct QuantConfig {
    int threads = 0;
    int32_t isa = MOE4J_ISA_BEST;
    int32_t scale_format = MOE4J_SCALE_FP32;
    RepPolicy reps;
    std::vector<QuantCase> cases;
};

// Inputs and outputs of one case, with their descriptors. x holds fresh random data.
struct QuantBuffers {
    AlignedBuffer x, q, scales;
    moe4j_tensor x_t, q_t, scales_t;

    QuantBuffers(const QuantCase &c, uint64_t seed)
        : x(c.rows * c.cols * dtype_size(c.dtype)),
          q(c.rows * c.cols),
          scales(scale_rows(c) * ceil_div(c.cols, kBlock) * sizeof(float)),
          x_t(host_tensor_2d(x.data(), c.dtype, c.rows, c.cols)),
          q_t(host_tensor_2d(q.data(), MOE4J_E4M3, c.rows, c.cols)),
          scales_t(host_tensor_2d(scales.data(), MOE4J_F32, scale_rows(c), ceil_div(c.cols, kBlock))) {
        const size_t n = static_cast<size_t>(c.rows * c.cols);
        if (c.dtype == MOE4J_F32)
            fill_random_f32(x.as<float>(), n, seed);
        else
            fill_random_bf16(x.as<uint16_t>(), n, seed);
    }

    // Bytes one call moves: x read, q and scales written.
    double traffic() const { return static_cast<double>(x.size() + q.size() + scales.size()); }

    static int64_t scale_rows(const QuantCase &c) {
        return c.op == QuantOp::PerToken ? c.rows : ceil_div(c.rows, kBlock);
    }
};

void quantize(const Context &ctx, QuantOp op, QuantBuffers &b, int32_t scale_format) {
    if (op == QuantOp::PerToken)
        check(moe4j_quantize_fp8_per_token(ctx.get(), &b.x_t, &b.q_t, &b.scales_t, scale_format),
              "moe4j_quantize_fp8_per_token");
    else
        check(moe4j_quantize_fp8_per_block(ctx.get(), &b.x_t, &b.q_t, &b.scales_t, scale_format),
              "moe4j_quantize_fp8_per_block");
}

// Warms up (first touch of q and scales, caches, thread pool) and times repeated calls.
Stats time_case(const Context &ctx, const QuantCase &c, QuantBuffers &b, const QuantConfig &config) {
    for (int i = 0; i < 2; ++i) quantize(ctx, c.op, b, config.scale_format);
    return summarize(time_calls(config.reps, [&] { quantize(ctx, c.op, b, config.scale_format); }));
}

std::vector<int64_t> list_or(const Args &args, const char *name, std::vector<int64_t> fallback) {
    if (!args.has(name)) return fallback;
    return {args.get_int(name, 0, 1, int64_t{1} << 24)};
}

QuantConfig parse_config(const Args &args) {
    QuantConfig config;
    config.threads = static_cast<int>(args.get_int("threads", 0, 0, 1024));
    const std::string isa = args.get_choice("isa", "best", {"scalar", "avx2", "avx512", "avx512_bf16", "best"});
    parse_isa(isa, &config.isa);
    config.scale_format =
        args.get_choice("scale-format", "fp32", {"fp32", "ue8m0"}) == "fp32" ? MOE4J_SCALE_FP32 : MOE4J_SCALE_UE8M0;
    config.reps.fixed_reps = static_cast<int>(args.get_int("reps", 0, 1, 1000000));

    std::vector<int32_t> dtypes{MOE4J_F32, MOE4J_BF16};
    if (args.has("dtype")) dtypes = {args.get_choice("dtype", "", {"f32", "bf16"}) == "f32" ? MOE4J_F32 : MOE4J_BF16};
    const bool custom_shape = args.has("rows") || args.has("cols");
    const std::string op = args.get_choice("op", "", {"per_token", "per_block"});
    const bool baselines = config.isa != MOE4J_ISA_SCALAR;

    if (op != "per_block") {
        for (int64_t m : list_or(args, "rows", {1, 128, 4096}))
            for (int64_t k : list_or(args, "cols", {7168, 2048}))
                for (int32_t dtype : dtypes)
                    config.cases.push_back(
                        {QuantOp::PerToken, m, k, dtype, baselines && (custom_shape || (m == 128 && k == 7168))});
    }
    if (op == "per_block" || (op.empty() && !custom_shape)) {
        for (int64_t n : list_or(args, "rows", {7168}))
            for (int64_t k : list_or(args, "cols", {2048}))
                for (int32_t dtype : dtypes)
                    config.cases.push_back({QuantOp::PerBlock, n, k, dtype, baselines && custom_shape});
    }
    return config;
}

std::vector<std::string> result_row(const QuantCase &c, const moe4j_context_info &info, const Stats &s, double traffic,
                                    const MachineFacts &facts, const std::string &speedup) {
    const double gbps = traffic / s.best * 1e-9;
    return {op_name(c.op),
            shape_text(c.rows, c.cols),
            dtype_name(c.dtype),
            isa_name(info.isa),
            std::to_string(info.threads),
            std::to_string(s.count),
            fixed(s.best * 1e6, 2),
            fixed(s.median * 1e6, 2),
            fixed(traffic * 1e-6, 3),
            fixed(gbps, 2),
            fixed(100.0 * gbps / facts.read_bw.best, 1),
            speedup};
}

}  // namespace

int run_quant(const Args &args) {
    const QuantConfig config = parse_config(args);  // usage errors surface before any measurement
    const MachineFacts facts = measure_machine(config.threads);
    const Context ctx(facts.threads, config.isa);
    const Context scalar_ctx(facts.threads, MOE4J_ISA_SCALAR);
    const moe4j_context_info info = ctx.info(), scalar_info = scalar_ctx.info();

    std::printf("%s\n", machine_summary(facts).c_str());
    std::printf(
        "quant: isa requested=%s context=%s  scale_format=%s  x uniform random in [-4, 4)  "
        "traffic = x read + q, scales written\n\n",
        isa_name(config.isa), isa_name(info.isa), config.scale_format == MOE4J_SCALE_FP32 ? "fp32" : "ue8m0");

    const Table table({{"op", 9, Align::Left},
                       {"shape", 9, Align::Left},
                       {"dtype", 5, Align::Left},
                       {"isa", 11, Align::Left},
                       {"threads", 7, Align::Right},
                       {"reps", 5, Align::Right},
                       {"best_us", 9, Align::Right},
                       {"median_us", 9, Align::Right},
                       {"MB", 7, Align::Right},
                       {"GB/s", 6, Align::Right},
                       {"%read_bw", 8, Align::Right},
                       {"speedup_vs_scalar", 17, Align::Right}});
    table.print_header();
    uint64_t seed = 1;
    for (const QuantCase &c : config.cases) {
        QuantBuffers buffers(c, seed++);
        const Stats s = time_case(ctx, c, buffers, config);
        std::string speedup = "-";
        if (c.scalar_baseline) {
            const Stats scalar = time_case(scalar_ctx, c, buffers, config);
            table.print_row(result_row(c, scalar_info, scalar, buffers.traffic(), facts, "1.00x"));
            speedup = fixed(scalar.best / s.best, 2) + "x";
        }
        table.print_row(result_row(c, info, s, buffers.traffic(), facts, speedup));
    }
    std::printf(
        "\nGB/s and %%read_bw use the best time; %%read_bw compares with read_bw above. "
        "Cases whose data fit in the last-level cache run from cache and can exceed 100%%.\n");
    report_bandwidth_drift(facts);
    return 0;
}

}  // namespace bench
