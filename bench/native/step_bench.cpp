// `moe4j_bench step`: the weight-streaming calls of V2-Lite decode steps at batch 1, back to back with nothing else
// between them, against the read bandwidth measured after each repetition. Per layer: the int8 attention projections
// (q and kv_a fused [3648, 2048], o [2048, 2048]), MLA's absorption and un-absorption (bf16, 16 heads of [512, 128]
// and [128, 512]), then layer 0's dense MLP (int8 [22016, 2048] and [2048, 11008]) or a MoE layer's two shared
// experts (int8 [5632, 2048] and [2048, 2816]) and its fused expert FFN on 6 of its 64 packed FP8 experts, drawn at
// random each step; after the layers the int8 LM head [102400, 2048]. These are the calls that read a step's weights
// as the library's model runs them on a CPU (`./moe4j bench generate --quantize`), without Java, the small kernels
// (norms, RoPE, attention over the cache, routing) and their effect on caches in between: the native ceiling of a
// decode step. `bench generate`'s decode GB/s over this one's, at the same read bandwidth, is what the model loses
// outside these calls. Step by step, the same calls' bytes are also read as plain streams with the same boundaries
// (StreamBaseline): the kernels' time over theirs, per kind of call, is what the kernels lose to reading alone, and the
// streams' rate over the read bandwidth what a step's structure (many matrices, a wait between calls) costs.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
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

constexpr int64_t kHidden = 2048, kHeads = 16, kLatent = 512, kHeadDim = 128, kVocab = 102400;
constexpr int64_t kDenseInter = 11008, kSharedInter = 2 * 1408, kRouted = 6;
constexpr size_t kBandwidthBytes = size_t{256} << 20;

struct StepConfig {
    int threads = 0;
    int32_t isa = MOE4J_ISA_BEST;
    int64_t layers = 4, steps = 16, reps = 5;
};

StepConfig parse_config(const Args &args) {
    StepConfig config;
    config.threads = static_cast<int>(args.get_int("threads", 0, 0, 1024));
    parse_isa(args.get_choice("isa", "best", {"scalar", "avx2", "avx512", "avx512_bf16", "best"}), &config.isa);
    config.layers = args.get_int("layers", 4, 1, 64);
    config.steps = args.get_int("steps", 16, 1, 100000);
    config.reps = args.get_int("reps", 5, 1, 1000);
    return config;
}

// What a step's time and bytes are counted under.
enum Family { kProjections, kAbsorption, kMlp, kExperts, kHead, kFamilies };
constexpr const char *kFamilyNames[kFamilies] = {"int8 attention projections", "bf16 absorption",
                                                 "int8 dense/shared MLP", "fp8 expert FFN", "int8 LM head"};

// Int8 weights [N, K] in Q8_P16 panels with a scale per row: random codes 1..255 (q in [-127, 127]).
struct Q8Weight {
    int64_t n, k;
    AlignedBuffer codes, scales;
    moe4j_tensor codes_t, scales_t;

    Q8Weight(int64_t rows, int64_t cols, uint64_t seed)
        : n(rows),
          k(cols),
          codes(static_cast<size_t>(rows * cols)),
          scales(static_cast<size_t>(rows) * sizeof(float)),
          codes_t(host_tensor(codes.data(), MOE4J_Q8_P16, {rows, cols})),
          scales_t(host_tensor(scales.data(), MOE4J_F32, {rows})) {
        uint8_t *c = codes.as<uint8_t>();
        fill_random_e4m3(c, codes.size(), seed);  // any bytes but 0x7F and 0xFF; 0 (q = -128) is moved to 1
        for (size_t i = 0; i < codes.size(); ++i) c[i] = std::max<uint8_t>(c[i], 1);
        fill_random_range_f32(scales.as<float>(), static_cast<size_t>(rows), seed + 1, 1e-3f, 2e-3f);
    }
};

// MLA's absorption weights of one layer, bf16: W_UK per head as [512, 128] rows, W_UV per head as [128, 512].
struct AbsorbWeights {
    AlignedBuffer uk, uv;
    moe4j_tensor uk_t, uv_t;
    explicit AbsorbWeights(uint64_t seed)
        : uk(static_cast<size_t>(kHeads * kLatent * kHeadDim) * 2),
          uv(static_cast<size_t>(kHeads * kHeadDim * kLatent) * 2),
          uk_t(host_tensor(uk.data(), MOE4J_BF16, {kHeads, kLatent, kHeadDim})),
          uv_t(host_tensor(uv.data(), MOE4J_BF16, {kHeads, kHeadDim, kLatent})) {
        fill_random_bf16(uk.as<uint16_t>(), uk.size() / 2, seed, 0.05f);
        fill_random_bf16(uv.as<uint16_t>(), uv.size() / 2, seed + 1, 0.05f);
    }
};

// One decoder layer's streamed weights. Layer 0 is dense; the others are MoE layers with 64 routed experts.
struct Layer {
    Q8Weight qkv, o, up, down;  // up/down: the dense MLP's gate and up fused, and down; or the shared experts'
    AbsorbWeights absorb;
    std::unique_ptr<ExpertPool> experts;
    std::vector<moe4j_tensor> gate_w, up_w, down_w, gate_s, up_s, down_s;
    moe4j_fp8_weight_groups gate_g{}, up_g{}, down_g{};

    Layer(int64_t index, const Context &ctx)
        : qkv(3072 + 576, kHidden, 100 * index + 1),
          o(kHidden, kHidden, 100 * index + 3),
          up(index == 0 ? 2 * kDenseInter : 2 * kSharedInter, kHidden, 100 * index + 5),
          down(kHidden, index == 0 ? kDenseInter : kSharedInter, 100 * index + 7),
          absorb(100 * index + 9) {
        if (index == 0) return;
        experts = std::make_unique<ExpertPool>(kV2Lite, kV2Lite.experts, 0, &ctx);
        for (const ExpertWeights &e : experts->experts) {
            gate_w.push_back(e.gate);
            up_w.push_back(e.up);
            down_w.push_back(e.down);
            gate_s.push_back(e.gate_s);
            up_s.push_back(e.up_s);
            down_s.push_back(e.down_s);
        }
        gate_g = {experts->count, gate_w.data(), gate_s.data()};
        up_g = {experts->count, up_w.data(), up_s.data()};
        down_g = {experts->count, down_w.data(), down_s.data()};
    }
};

// The activations every call reads and the outputs it writes (one token).
struct Activations {
    AlignedBuffer x, x_bf16, out, xq, sfx, layout, ys;
    moe4j_tensor absorb_in, absorb_out, unabsorb_in, unabsorb_out, xq_t, sfx_t, layout_t, ys_t;

    Activations()
        : x(static_cast<size_t>(2 * kDenseInter) * 4),
          x_bf16(static_cast<size_t>(kHeads * kLatent) * 2),
          out(static_cast<size_t>(kVocab) * 4),
          xq(static_cast<size_t>(kRouted * kHidden)),
          sfx(static_cast<size_t>(kRouted * (kHidden / kBlock)) * 4),
          layout(static_cast<size_t>(kRouted) * 4),
          ys(static_cast<size_t>(kRouted * kHidden) * 4),
          absorb_in(host_tensor(x_bf16.data(), MOE4J_BF16, {kHeads, 1, kHeadDim})),
          absorb_out(host_tensor(out.data(), MOE4J_F32, {kHeads, 1, kLatent})),
          unabsorb_in(host_tensor(x_bf16.data(), MOE4J_BF16, {kHeads, 1, kLatent})),
          unabsorb_out(host_tensor(out.data(), MOE4J_F32, {kHeads, 1, kHeadDim})),
          xq_t(host_tensor(xq.data(), MOE4J_E4M3, {kRouted, kHidden})),
          sfx_t(host_tensor(sfx.data(), MOE4J_F32, {kRouted, kHidden / kBlock})),
          layout_t(host_tensor(layout.data(), MOE4J_I32, {kRouted})),
          ys_t(host_tensor(ys.data(), MOE4J_F32, {kRouted, kHidden})) {
        fill_random_f32(x.as<float>(), x.size() / 4, 31, 1.0f);
        fill_random_bf16(x_bf16.as<uint16_t>(), x_bf16.size() / 2, 32, 1.0f);
        fill_random_e4m3(xq.as<uint8_t>(), xq.size(), 33);
        fill_random_range_f32(sfx.as<float>(), sfx.size() / 4, 34, kScaleLo, kScaleHi);
    }

    // x [1, K] as the input of an int8 GEMM, and its [1, N] output.
    moe4j_tensor q8_in(int64_t k) const { return host_tensor(x.data(), MOE4J_F32, {1, k}); }
    moe4j_tensor q8_out(int64_t n) const { return host_tensor(out.data(), MOE4J_F32, {1, n}); }
};

// One weight-streaming call of a step: an int8 GEMM, a bf16 GEMM (absorption) or a MoE layer's expert FFN.
struct Op {
    enum Kind { kQ8, kGemm, kExperts } kind;
    Family family;
    const Q8Weight *q8 = nullptr;
    const moe4j_tensor *a = nullptr, *b = nullptr, *d = nullptr;  // kGemm
    const Layer *layer = nullptr;                                 // kExperts
    std::array<int32_t, kRouted> experts{};                       // kExperts: ascending, as the model lays them out
};

// A run of bytes that a call reads, and the runs of one call (or of one pass of a call that waits between passes).
struct Span {
    const void *p;
    size_t bytes;
};
struct Pass {
    Family family;
    std::vector<Span> spans;
};

// The calls of decode steps, and each family's time spent running them.
class StepRunner {
  public:
    StepRunner(const Context &ctx, std::vector<std::unique_ptr<Layer>> &layers, const Q8Weight &head)
        : ctx_(ctx), layers_(layers), head_(head) {}

    // The calls of one step; `draw` picks each MoE layer's routed experts.
    void plan(std::mt19937_64 &draw, std::vector<Op> &ops) {
        for (auto &layer : layers_) {
            ops.push_back(q8(layer->qkv, kProjections));
            ops.push_back(gemm(act_.absorb_in, layer->absorb.uk_t, act_.absorb_out));
            ops.push_back(gemm(act_.unabsorb_in, layer->absorb.uv_t, act_.unabsorb_out));
            ops.push_back(q8(layer->o, kProjections));
            // the routed experts, then the shared ones, as MoeLayer runs them
            if (layer->experts) ops.push_back(experts(*layer, draw));
            ops.push_back(q8(layer->up, kMlp));
            ops.push_back(q8(layer->down, kMlp));
        }
        ops.push_back(q8(head_, kHead));
    }

    void run(const Op &op) {
        const Timer t;
        switch (op.kind) {
            case Op::kQ8: q8_gemm(*op.q8); break;
            case Op::kGemm: {
                moe4j_tensor d = *op.d;
                check(moe4j_gemm_nt(ctx_.get(), op.a, op.b, nullptr, &d), "moe4j_gemm_nt");
                break;
            }
            case Op::kExperts: {
                std::copy(op.experts.begin(), op.experts.end(), act_.layout.as<int32_t>());
                const Layer &l = *op.layer;
                check(moe4j_fp8_expert_ffn_contiguous(ctx_.get(), &act_.xq_t, &act_.sfx_t, &l.gate_g, &l.up_g,
                                                      &l.down_g, &act_.layout_t, 1, &act_.ys_t),
                      "moe4j_fp8_expert_ffn_contiguous");
                break;
            }
        }
        seconds_[op.family] += t.seconds();
    }

    // The weight bytes `op` reads, in the passes it reads them in: the expert FFN reads every expert's gate and up
    // weights before any down weight (the down pass needs the whole intermediate row).
    static void passes(const Op &op, std::vector<Pass> &out) {
        switch (op.kind) {
            case Op::kQ8: out.push_back({op.family, {span(op.q8->codes), span(op.q8->scales)}}); break;
            case Op::kGemm: out.push_back({op.family, {span(*op.b)}}); break;
            case Op::kExperts: {
                Pass gate_up{op.family, {}}, down{op.family, {}};
                for (int32_t e : op.experts) {
                    const ExpertWeights &w = op.layer->experts->experts[static_cast<size_t>(e)];
                    for (const moe4j_tensor *t : {&w.gate, &w.gate_s, &w.up, &w.up_s})
                        gate_up.spans.push_back(span(*t));
                    down.spans.push_back(span(w.down));
                    down.spans.push_back(span(w.down_s));
                }
                out.push_back(std::move(gate_up));
                out.push_back(std::move(down));
                break;
            }
        }
    }

    // An untimed call on a small weight (512 KB, which stays in cache): its tasks wake the context's worker, asleep
    // after the stream baseline, so that a timed step starts as one in a decode loop does, the worker polling.
    void wake() { q8_gemm(wake_); }

    double seconds(Family f) const { return seconds_[f]; }
    void reset() { std::fill(std::begin(seconds_), std::end(seconds_), 0.0); }

  private:
    // The int8 GEMM of the token's activations with `w`.
    void q8_gemm(const Q8Weight &w) {
        const moe4j_tensor a = act_.q8_in(w.k);
        moe4j_tensor d = act_.q8_out(w.n);
        check(moe4j_q8_gemm_nt(ctx_.get(), &a, &w.codes_t, &w.scales_t, &d), "moe4j_q8_gemm_nt");
    }

    static Span span(const AlignedBuffer &b) { return {b.data(), b.size()}; }
    static Span span(const moe4j_tensor &t) { return {t.data, static_cast<size_t>(t.size_bytes)}; }

    static Op q8(const Q8Weight &w, Family f) {
        Op op{Op::kQ8, f};
        op.q8 = &w;
        return op;
    }

    static Op gemm(const moe4j_tensor &a, const moe4j_tensor &b, const moe4j_tensor &d) {
        Op op{Op::kGemm, kAbsorption};
        op.a = &a;
        op.b = &b;
        op.d = &d;
        return op;
    }

    Op experts(const Layer &layer, std::mt19937_64 &draw) {
        ids_.resize(static_cast<size_t>(layer.experts->count));
        std::iota(ids_.begin(), ids_.end(), 0);
        std::shuffle(ids_.begin(), ids_.end(), draw);
        std::sort(ids_.begin(), ids_.begin() + kRouted);  // one row each, in expert order as the model lays them out
        Op op{Op::kExperts, kExperts};
        op.layer = &layer;
        std::copy(ids_.begin(), ids_.begin() + kRouted, op.experts.begin());
        return op;
    }

    const Context &ctx_;
    std::vector<std::unique_ptr<Layer>> &layers_;
    const Q8Weight &head_;
    Activations act_;
    const Q8Weight wake_{256, kHidden, 99};
    std::vector<int32_t> ids_;
    double seconds_[kFamilies] = {};
};

// The stream baseline: the steps' passes as plain read streams (xor_bytes, the read-bandwidth probe's kind of loop),
// each pass's bytes split evenly over the threads, which wait for each other between passes as the threads of a
// parallel call do. The same bytes in the same calls as the kernels read them, with nothing computed: how close the
// call structure alone lets a step come to the probe, which streams 256 MiB in one go.
class StreamBaseline {
  public:
    StreamBaseline(int threads, SimdWidth width) : threads_(threads), width_(width) {}

    // Seconds to stream `passes` once; each pass's time (the first thread's, barrier to barrier) is added to its
    // family's.
    double seconds(const std::vector<Pass> &passes) {
        // The context's worker polls for its next call for 2 ms after the last one: let it go to sleep first, so
        // that it does not take a core from these threads.
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        std::atomic<int> arrived{0};
        std::atomic<int64_t> generation{0};
        const auto barrier = [&] {
            const int64_t g = generation.load();
            if (arrived.fetch_add(1) + 1 == threads_) {
                arrived.store(0);
                generation.fetch_add(1);
            } else {
                while (generation.load() == g) {
                }
            }
        };
        std::vector<uint64_t> sinks(static_cast<size_t>(threads_));
        double seconds = 0;
        run_threads(threads_, [&](int thread) {
            // All threads started and busy for a moment (an idle vCPU of a VM may come back slowly), the time counts
            // from here, as a call's does once its worker polls.
            barrier();
            for (const Timer busy; busy.seconds() < 200e-6;) {
            }
            barrier();
            const Timer t;
            Timer pass_timer;
            uint64_t sink = 0;
            for (const Pass &pass : passes) {
                sink ^= stream_share(pass, thread);
                barrier();
                if (thread == 0) {
                    family_seconds_[pass.family] += pass_timer.seconds();
                    pass_timer = Timer();
                }
            }
            if (thread == 0) seconds = t.seconds();
            sinks[static_cast<size_t>(thread)] = sink;
        });
        for (uint64_t s : sinks) sink_ ^= s;
        return seconds;
    }

    double seconds(Family f) const { return family_seconds_[f]; }

  private:
    // Streams the thread's share of the pass: bytes [thread * total / threads, ...) of its spans laid end to end.
    uint64_t stream_share(const Pass &pass, int thread) const {
        size_t total = 0;
        for (const Span &s : pass.spans) total += s.bytes;
        const size_t begin = total * static_cast<size_t>(thread) / static_cast<size_t>(threads_),
                     end = total * static_cast<size_t>(thread + 1) / static_cast<size_t>(threads_);
        uint64_t sink = 0;
        size_t at = 0;
        for (const Span &s : pass.spans) {
            const size_t lo = std::max(begin, at), hi = std::min(end, at + s.bytes);
            if (lo < hi) sink ^= stream(static_cast<const uint8_t *>(s.p) + (lo - at), hi - lo);
            at += s.bytes;
        }
        return sink;
    }

    // Reads [p, p + n): whole 512-byte blocks of 64-byte aligned memory with xor_bytes, the ragged ends byte by byte.
    uint64_t stream(const uint8_t *p, size_t n) const {
        const auto address = reinterpret_cast<uintptr_t>(p);
        const size_t head = std::min(n, static_cast<size_t>((64 - address % 64) % 64));
        const size_t body = (n - head) / kXorBlockBytes * kXorBlockBytes;
        uint64_t sink = 0;
        for (size_t i = 0; i < head; ++i) sink += p[i];
        sink ^= xor_bytes(width_, p + head, body);
        for (size_t i = head + body; i < n; ++i) sink += p[i];
        return sink;
    }

    int threads_;
    SimdWidth width_;
    uint64_t sink_ = 0;
    double family_seconds_[kFamilies] = {};
};

}  // namespace

int run_step(const Args &args) {
    const StepConfig config = parse_config(args);
    const MachineFacts facts = measure_machine(config.threads);
    const Context ctx(facts.threads, config.isa, MOE4J_CONTEXT_REPRODUCIBLE);
    std::vector<std::unique_ptr<Layer>> layers;
    for (int64_t l = 0; l < config.layers; ++l) layers.push_back(std::make_unique<Layer>(l, ctx));
    const Q8Weight head(kVocab, kHidden, 7);

    StepRunner runner(ctx, layers, head);
    StreamBaseline baseline(facts.threads, facts.read_bw.width);
    std::mt19937_64 draw(2024);
    // Each step's calls, and the passes the stream baseline reads for them: drawn before a repetition, outside the
    // timing. The steps and their streams alternate, one step each, so that both meet the same bandwidth, which on a
    // shared machine can move by half within seconds.
    std::vector<std::vector<Op>> ops(static_cast<size_t>(config.steps));
    std::vector<std::vector<Pass>> passes(static_cast<size_t>(config.steps));
    const auto plan_steps = [&] {
        for (size_t s = 0; s < ops.size(); ++s) {
            ops[s].clear();
            runner.plan(draw, ops[s]);
            passes[s].clear();
            for (const Op &op : ops[s]) StepRunner::passes(op, passes[s]);
        }
    };
    plan_steps();
    // Every step reads as many bytes (its experts differ, not their sizes): those of the first, per kind of call.
    double family_bytes[kFamilies] = {};
    for (const Pass &pass : passes[0])
        for (const Span &span : pass.spans) family_bytes[pass.family] += static_cast<double>(span.bytes);
    const double step_bytes = std::accumulate(std::begin(family_bytes), std::end(family_bytes), 0.0);

    std::printf("%s\n", machine_summary(facts).c_str());
    std::printf(
        "step: V2-Lite decode at batch 1, %lld layers (layer 0 dense), %d routed of 64 packed experts per MoE layer "
        "drawn at random, context=%s threads=%d reproducible; %.1f MB of weights a step, %lld steps per repetition\n",
        static_cast<long long>(config.layers), static_cast<int>(kRouted), isa_name(ctx.info().isa), ctx.info().threads,
        step_bytes * 1e-6, static_cast<long long>(config.steps));

    for (const auto &step : ops)
        for (const Op &op : step) runner.run(op);  // warm-up: code, thread wake-up, first touches
    runner.reset();

    const Table table({{"rep", 4, Align::Right},
                       {"ms/step", 8, Align::Right},
                       {"GB/s", 6, Align::Right},
                       {"stream", 6, Align::Right},
                       {"bw_GB/s", 7, Align::Right},
                       {"%stream", 7, Align::Right},
                       {"%bw", 6, Align::Right}});
    table.print_header();
    std::vector<double> fractions, stream_fractions;
    double total_seconds = 0;
    for (int64_t r = 0; r < config.reps; ++r) {
        plan_steps();
        double seconds = 0, stream_seconds = 0;
        for (size_t s = 0; s < ops.size(); ++s) {
            runner.wake();
            const Timer t;
            for (const Op &op : ops[s]) runner.run(op);
            seconds += t.seconds();
            stream_seconds += baseline.seconds(passes[s]);
        }
        total_seconds += seconds;
        seconds /= static_cast<double>(config.steps);
        stream_seconds /= static_cast<double>(config.steps);
        const Rate bw = measure_read_bandwidth(facts.threads, facts.read_bw.width, kBandwidthBytes, 3);
        const double gbps = step_bytes / seconds * 1e-9, stream_gbps = step_bytes / stream_seconds * 1e-9;
        fractions.push_back(gbps / bw.best);
        stream_fractions.push_back(gbps / stream_gbps);
        table.print_row({std::to_string(r + 1), fixed(seconds * 1e3, 2), fixed(gbps, 1), fixed(stream_gbps, 1),
                         fixed(bw.best, 1), fixed(100 * gbps / stream_gbps, 1) + "%",
                         fixed(100 * gbps / bw.best, 1) + "%"});
        std::fflush(stdout);
    }
    const auto median_line = [](const char *what, std::vector<double> v) {
        std::sort(v.begin(), v.end());
        std::printf("median %s %.1f%% (range %.1f-%.1f%%)\n", what, 100 * v[v.size() / 2], 100 * v.front(),
                    100 * v.back());
    };
    median_line("%stream", stream_fractions);
    median_line("%bw", fractions);
    std::printf("\n");

    const Table families({{"family", 28, Align::Left},
                          {"ms/step", 8, Align::Right},
                          {"share", 6, Align::Right},
                          {"MB/step", 8, Align::Right},
                          {"GB/s", 6, Align::Right},
                          {"stream", 6, Align::Right},
                          {"%stream", 7, Align::Right}});
    families.print_header();
    const double steps = static_cast<double>(config.steps * config.reps);
    for (int f = 0; f < kFamilies; ++f) {
        const double per_step = runner.seconds(static_cast<Family>(f)) / steps;
        const double stream_per_step = baseline.seconds(static_cast<Family>(f)) / steps;
        families.print_row(
            {kFamilyNames[f], fixed(per_step * 1e3, 3), fixed(100 * per_step * steps / total_seconds, 1) + "%",
             fixed(family_bytes[f] * 1e-6, 1), fixed(family_bytes[f] / per_step * 1e-9, 1),
             fixed(family_bytes[f] / stream_per_step * 1e-9, 1), fixed(100 * stream_per_step / per_step, 1) + "%"});
    }
    std::printf(
        "\nGB/s: the step's weight bytes (codes and scales) over its time; stream: the same bytes of the same steps "
        "read\n"
        "as plain streams with the calls' boundaries (each call's bytes split over the threads, which wait for each "
        "other\n"
        "between calls), right after each repetition; bw_GB/s: read bandwidth (%zu MiB in one go, best of 3) measured "
        "after\n"
        "that; %%stream and %%bw compare GB/s with them. Families: time inside each kind of call over all repetitions "
        "(what\n"
        "is left of the step is the timer), and the stream's time in their passes.\n",
        kBandwidthBytes >> 20);
    report_bandwidth_drift(facts);
    return 0;
}

}  // namespace bench
