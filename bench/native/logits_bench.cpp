// `moe4j_bench logits`: moe4j_logits_stats (what sampling needs of each row of logits) at the LM head's vocabularies,
// against the same call on one thread and the machine's read bandwidth.
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

struct LogitsConfig {
    int threads = 0;
    int32_t isa = MOE4J_ISA_BEST;
    RepPolicy reps;
    std::vector<int64_t> rows{1, 2, 8, 64};
    std::vector<int64_t> vocabs{102400, 129280};  // DeepSeek-V2(-Lite) and V3
};

LogitsConfig parse_config(const Args &args) {
    LogitsConfig config;
    config.threads = static_cast<int>(args.get_int("threads", 0, 0, 1024));
    parse_isa(args.get_choice("isa", "best", {"scalar", "avx2", "avx512", "avx512_bf16", "best"}), &config.isa);
    config.reps.fixed_reps = static_cast<int>(args.get_int("reps", 0, 1, 1000000));
    if (args.has("rows")) config.rows = {args.get_int("rows", 1, 1, 65536)};
    if (args.has("vocab")) config.vocabs = {args.get_int("vocab", 1, 1, int64_t{1} << 24)};
    return config;
}

// The logits (random, as a sampled step's are), their outputs and descriptors.
struct LogitsBuffers {
    AlignedBuffer logits, argmax, sum_exp;
    moe4j_tensor logits_t, argmax_t, sum_exp_t;

    LogitsBuffers(int64_t rows, int64_t vocab, uint64_t seed)
        : logits(static_cast<size_t>(rows * vocab) * sizeof(float)),
          argmax(static_cast<size_t>(rows) * sizeof(int32_t)),
          sum_exp(static_cast<size_t>(rows) * sizeof(float)),
          logits_t(host_tensor_2d(logits.data(), MOE4J_F32, rows, vocab)),
          argmax_t(host_tensor(argmax.data(), MOE4J_I32, {rows})),
          sum_exp_t(host_tensor(sum_exp.data(), MOE4J_F32, {rows})) {
        fill_random_f32(logits.as<float>(), static_cast<size_t>(rows * vocab), seed, 16.0f);
    }
};

Stats time_stats(const Context &ctx, LogitsBuffers &b, const RepPolicy &reps) {
    const auto call = [&] {
        check(moe4j_logits_stats(ctx.get(), &b.logits_t, &b.argmax_t, &b.sum_exp_t), "moe4j_logits_stats");
    };
    for (int i = 0; i < 3; ++i) call();  // warm-up: caches (the LM head has just written the logits), thread pool
    return summarize(time_calls(reps, call));
}

}  // namespace

int run_logits(const Args &args) {
    const LogitsConfig config = parse_config(args);  // usage errors surface before any measurement
    const MachineFacts facts = measure_machine(config.threads);
    const Context ctx(facts.threads, config.isa);
    const Context one(1, config.isa);
    const moe4j_context_info info = ctx.info();
    std::printf("%s\n", machine_summary(facts).c_str());
    std::printf(
        "logits: moe4j_logits_stats, logits F32 [rows, V] uniform in [-16, 16), warm in cache; isa requested=%s "
        "context=%s; baseline: the same call on a context of 1 thread\n\n",
        isa_name(config.isa), isa_name(info.isa));
    const Table table({{"rows", 5, Align::Right},
                       {"V", 7, Align::Right},
                       {"threads", 7, Align::Right},
                       {"reps", 6, Align::Right},
                       {"best_us", 9, Align::Right},
                       {"median_us", 9, Align::Right},
                       {"GB/s", 6, Align::Right},
                       {"%read_bw", 8, Align::Right},
                       {"1thr_us", 9, Align::Right},
                       {"vs_1thr", 7, Align::Right}});
    table.print_header();
    uint64_t seed = 1;
    for (int64_t v : config.vocabs)
        for (int64_t rows : config.rows) {
            LogitsBuffers b(rows, v, seed++);
            const Stats s = time_stats(ctx, b, config.reps);
            const Stats single = time_stats(one, b, config.reps);
            const double gbps = static_cast<double>(b.logits.size()) / s.best * 1e-9;
            table.print_row({std::to_string(rows), std::to_string(v), std::to_string(info.threads),
                             std::to_string(s.count), fixed(s.best * 1e6, 1), fixed(s.median * 1e6, 1), fixed(gbps, 1),
                             fixed(100.0 * gbps / facts.read_bw.best, 1), fixed(single.best * 1e6, 1),
                             fixed(single.best / s.best, 2) + "x"});
        }
    std::printf(
        "\nGB/s: logits bytes / best_us, %%read_bw against read_bw above (the logits come from cache, so it can pass "
        "100%%; the exponentials, in double, bound the call). vs_1thr = 1thr_us / best_us, best of each.\n");
    report_bandwidth_drift(facts);
    return 0;
}

}  // namespace bench
