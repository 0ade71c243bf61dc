// `moe4j_bench expert`: decode-shaped MoE expert work, E active experts with a few token rows each, against the
// read bandwidth measured right before each row. Times the grouped FP8 GEMM (contiguous layout, the gate projection
// [I, H]) and the fused expert FFN (gate, up, down) over a pool of distinct experts larger than the last-level
// cache, cycled through so that every call streams its weights from memory, as decode does.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "buffers.h"
#include "expert_pool.h"
#include "machine.h"
#include "moe4j_util.h"
#include "subcommands.h"
#include "table.h"
#include "timing.h"

namespace bench {

namespace {

constexpr int64_t kPoolMinMib = 256;  // several times any last-level cache of the machines we use
constexpr size_t kBandwidthBytes = size_t{256} << 20;

struct ExpertConfig {
    int threads = 0;
    int32_t isa = MOE4J_ISA_BEST;
    int32_t flags = MOE4J_CONTEXT_REPRODUCIBLE;
    int fixed_reps = 0;
    ModelShape model = kV2Lite;
    std::vector<int64_t> experts = {1, 6, 8, 64};
    std::vector<int64_t> rows = {1, 2, 4, 8};
    bool gemm = true, ffn = true;
    bool packed = false;                  // the experts packed in panels (moe4j_pack_fp8_weights) before timing
    int64_t shared = 0, shared_rows = 8;  // experts appended to every call's groups, each with shared_rows rows
    int64_t pool_mib = kPoolMinMib;       // the least weight bytes the calls cycle through
};

ExpertConfig parse_config(const Args &args) {
    ExpertConfig config;
    config.threads = static_cast<int>(args.get_int("threads", 0, 0, 1024));
    parse_isa(args.get_choice("isa", "best", {"scalar", "avx2", "avx512", "avx512_bf16", "best"}), &config.isa);
    config.fixed_reps = static_cast<int>(args.get_int("reps", 0, 1, 1000000));
    const std::string model = args.get_choice("model", "v2lite", {"v2lite", "v3", "v2lite-dense"});
    if (model == "v3") config.model = kV3;
    if (model == "v2lite-dense") config.model = kV2LiteDense;
    if (args.has("experts")) config.experts = {args.get_int("experts", 0, 1, config.model.experts)};
    if (args.has("rows")) config.rows = {args.get_int("rows", 0, 1, 4096)};
    const std::string op = args.get_choice("op", "both", {"gemm", "ffn", "both"});
    config.gemm = op != "ffn";
    config.ffn = op != "gemm";
    if (args.has("fast")) config.flags = 0;
    config.packed = args.has("packed");
    config.shared = args.get_int("shared", 0, 0, 16);
    config.shared_rows = args.get_int("shared-rows", 8, 1, 4096);
    config.pool_mib = args.get_int("pool-mib", kPoolMinMib, 1, int64_t{1} << 20);
    return config;
}

// The weight-group descriptors of every call in one cycle over the pool: call c uses experts c*E, c*E + 1, ...
// (mod the pool size), all distinct within a call; a cycle reads the whole pool, several times the last-level cache.
// With e counting a layer's shared experts too (as the library's MoE layer appends them to the routed groups), the
// last ones of a call stand for them.
struct CallGroups {
    std::vector<std::vector<moe4j_tensor>> gate, up, down, gate_s, up_s, down_s;
    std::vector<moe4j_fp8_weight_groups> g_gate, g_up, g_down;

    CallGroups(const ExpertPool &pool, int64_t e) {
        const int64_t calls = (pool.count + e - 1) / e;  // together they touch every expert of the pool
        for (int64_t c = 0; c < calls; ++c) {
            gate.emplace_back();
            up.emplace_back();
            down.emplace_back();
            gate_s.emplace_back();
            up_s.emplace_back();
            down_s.emplace_back();
            for (int64_t i = 0; i < e; ++i) {
                const ExpertWeights &w = pool.experts[static_cast<size_t>((c * e + i) % pool.count)];
                gate.back().push_back(w.gate);
                up.back().push_back(w.up);
                down.back().push_back(w.down);
                gate_s.back().push_back(w.gate_s);
                up_s.back().push_back(w.up_s);
                down_s.back().push_back(w.down_s);
            }
        }
        for (int64_t c = 0; c < calls; ++c) {
            g_gate.push_back({e, gate[c].data(), gate_s[c].data()});
            g_up.push_back({e, up[c].data(), up_s[c].data()});
            g_down.push_back({e, down[c].data(), down_s[c].data()});
        }
    }
    int64_t calls() const { return static_cast<int64_t>(g_gate.size()); }
};

// Activations of E experts with r rows each, then S shared experts with rs rows each, contiguous layout with
// alignment 1 (what the library's MoE layer passes on CPUs): x [E*r + S*rs, H] e4m3 with sfx, layout [rows], outputs
// [rows, I] (GEMM) and [rows, H] (FFN) in bf16.
struct Activations {
    int64_t rows;
    AlignedBuffer x, sfx, layout, d_gemm, d_ffn;
    moe4j_tensor x_t, sfx_t, layout_t, d_gemm_t, d_ffn_t;

    Activations(const ModelShape &m, int64_t e, int64_t r, int64_t s, int64_t rs)
        : rows(e * r + s * rs),
          x(static_cast<size_t>(rows * m.hidden)),
          sfx(static_cast<size_t>(rows * (m.hidden / kBlock)) * sizeof(float)),
          layout(static_cast<size_t>(rows) * sizeof(int32_t)),
          d_gemm(static_cast<size_t>(rows * m.inter) * sizeof(uint16_t)),
          d_ffn(static_cast<size_t>(rows * m.hidden) * sizeof(uint16_t)),
          x_t(host_tensor(x.data(), MOE4J_E4M3, {rows, m.hidden})),
          sfx_t(host_tensor(sfx.data(), MOE4J_F32, {rows, m.hidden / kBlock})),
          layout_t(host_tensor(layout.data(), MOE4J_I32, {rows})),
          d_gemm_t(host_tensor(d_gemm.data(), MOE4J_BF16, {rows, m.inter})),
          d_ffn_t(host_tensor(d_ffn.data(), MOE4J_BF16, {rows, m.hidden})) {
        fill_random_e4m3(x.as<uint8_t>(), x.size(), 11);
        fill_random_range_f32(sfx.as<float>(), sfx.size() / sizeof(float), 12, kScaleLo, kScaleHi);
        for (int64_t i = 0; i < rows; ++i)
            layout.as<int32_t>()[i] = static_cast<int32_t>(i < e * r ? i / r : e + (i - e * r) / rs);
    }
};

// Times calls cycling through the pool: one untimed cycle first (page faults, thread wake-up, code), then timed
// calls, each on the next experts of the cycle, at least 10 and 0.3 s unless fixed_reps is set.
template <typename Fn>
Stats time_cycling(int fixed_reps, int64_t calls, Fn &&fn) {
    for (int64_t c = 0; c < calls; ++c) fn(c);
    RepPolicy policy;
    policy.fixed_reps = fixed_reps;
    policy.min_reps = static_cast<int>(std::max<int64_t>(10, calls));
    policy.min_seconds = 0.3;
    int64_t next = 0;
    const auto call = [&] {
        fn(next);
        next = (next + 1) % calls;
    };
    return summarize(time_calls(policy, call));
}

}  // namespace

int run_expert(const Args &args) {
    const ExpertConfig config = parse_config(args);
    const MachineFacts facts = measure_machine(config.threads);
    const Context ctx(facts.threads, config.isa, config.flags);
    const moe4j_context_info info = ctx.info();
    const ModelShape &m = config.model;
    const ExpertPool pool(m, *std::max_element(config.experts.begin(), config.experts.end()) + config.shared,
                          config.pool_mib << 20, config.packed ? &ctx : nullptr);

    std::printf("%s\n", machine_summary(facts).c_str());
    std::printf(
        "expert: model=%s (hidden %lld, moe_intermediate %lld)  isa requested=%s context=%s  threads=%d  %s  "
        "pool of %lld distinct experts (%.0f MiB of weights), cycled so weights come from memory\n",
        m.name, static_cast<long long>(m.hidden), static_cast<long long>(m.inter), isa_name(config.isa),
        isa_name(info.isa), info.threads, config.flags != 0 ? "reproducible" : "not reproducible (--fast)",
        static_cast<long long>(pool.count), static_cast<double>(pool.weights.size()) / (1 << 20));

    const Table table({{"op", 10, Align::Left},
                       {"E", 3, Align::Right},
                       {"rows/E", 6, Align::Right},
                       {"reps", 5, Align::Right},
                       {"best_us", 9, Align::Right},
                       {"median_us", 9, Align::Right},
                       {"wMB/call", 8, Align::Right},
                       {"wGB/s", 6, Align::Right},
                       {"med_wGB/s", 9, Align::Right},
                       {"bw_GB/s", 7, Align::Right},
                       {"%bw", 5, Align::Right},
                       {"med_%bw", 7, Align::Right}});
    if (config.shared > 0)
        std::printf(
            "every call also runs %lld shared experts of %lld rows each after the routed ones (E counts "
            "the routed)\n",
            static_cast<long long>(config.shared), static_cast<long long>(config.shared_rows));
    table.print_header();
    const SimdWidth width = facts.read_bw.width;
    for (int64_t e : config.experts) {
        const CallGroups groups(pool, e + config.shared);
        for (int64_t r : config.rows) {
            Activations act(m, e, r, config.shared, config.shared_rows);
            const auto report = [&](const char *op, double bytes, const Stats &s) {
                const Rate bw = measure_read_bandwidth(facts.threads, width, kBandwidthBytes, 3);
                const double gbps = bytes / s.best * 1e-9, med = bytes / s.median * 1e-9;
                table.print_row({op, std::to_string(e), std::to_string(r), std::to_string(s.count),
                                 fixed(s.best * 1e6, 1), fixed(s.median * 1e6, 1), fixed(bytes * 1e-6, 2),
                                 fixed(gbps, 1), fixed(med, 1), fixed(bw.best, 1), fixed(100 * gbps / bw.best, 1),
                                 fixed(100 * med / bw.best, 1)});
                std::fflush(stdout);
            };
            const double scale_bytes = sizeof(float) * static_cast<double>(pool.scale_floats_gu);
            if (config.gemm) {
                const Stats s = time_cycling(config.fixed_reps, groups.calls(), [&](int64_t c) {
                    check(moe4j_grouped_fp8_gemm_contiguous(ctx.get(), &act.x_t, &act.sfx_t, &groups.g_gate[c],
                                                            &act.layout_t, 1, &act.d_gemm_t),
                          "moe4j_grouped_fp8_gemm_contiguous");
                });
                report("gemm.gate",
                       static_cast<double>(e + config.shared) * (static_cast<double>(pool.matrix_bytes) + scale_bytes),
                       s);
            }
            if (config.ffn) {
                const Stats s = time_cycling(config.fixed_reps, groups.calls(), [&](int64_t c) {
                    check(moe4j_fp8_expert_ffn_contiguous(ctx.get(), &act.x_t, &act.sfx_t, &groups.g_gate[c],
                                                          &groups.g_up[c], &groups.g_down[c], &act.layout_t, 1,
                                                          &act.d_ffn_t),
                          "moe4j_fp8_expert_ffn_contiguous");
                });
                report("ffn", static_cast<double>(e + config.shared) * pool.expert_bytes(), s);
            }
        }
    }
    std::printf(
        "\nwMB/call: e4m3 weight and scale bytes one call reads (gemm.gate: E x [I, H]; ffn: E x (gate, up, down), "
        "shared experts included).\n"
        "wGB/s = wMB/call / best_us (med_: / median_us). bw_GB/s: read bandwidth measured (%zu MiB, best of 3) right\n"
        "after each row's calls; %%bw and med_%%bw compare with it. Every call reads experts no earlier call of its\n"
        "cycle read, from a pool larger than the last-level cache.\n",
        kBandwidthBytes >> 20);
    report_bandwidth_drift(facts);
    return 0;
}

}  // namespace bench
