// `moe4j_bench mla`: moe4j_mla_decode over a paged bf16 latent cache against the machine's measured read bandwidth
// and FP32 FMA peak, and against a naive decode over a decompressed per-head cache (DeepSeek-V2 style attention,
// written here in plain C++ as the baseline; it is no part of the library).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "buffers.h"
#include "cache_flusher.h"
#include "machine.h"
#include "moe4j_util.h"
#include "subcommands.h"
#include "table.h"
#include "timing.h"

namespace bench {

namespace {

constexpr int64_t kDim = 576;         // latent K per token and kv head: 512 compressed kv + 64 rope dims
constexpr int64_t kDimV = 512;        // V = the first 512 dims of the latent K
constexpr int64_t kBlockTokens = 64;  // tokens per paged cache block
constexpr int64_t kNaiveQk = 192;     // naive per-head K: 128 nope + 64 rope dims
constexpr int64_t kNaiveV = 128;      // naive per-head V
constexpr float kQRange = 1.0f;       // q uniform in [-1, 1)
constexpr float kKRange = 4.0f;       // cache uniform in [-4, 4): a peaked softmax, outputs of order 0.5
constexpr double kErrorLimit = 1e-2;  // max_err above this marks the row BAD
// With the FP8 cache the reference stays the bf16 cache, so the check also carries FP8's rounding: the output
// is a convex combination of V values, each rounded by at most 2^-4 of its 128-group's max |V| <= kKRange.
constexpr double kFp8ErrorLimit = kKRange / 16;
constexpr int64_t kFp8TokenBytes = 656;  // 512 e4m3 + 4 fp32 scales + 64 bf16
// The naive cache of one case may take at most this much memory (and a quarter of the machine's); above it the
// naive path runs on a batch halved until it fits and its times are scaled up to the full batch.
constexpr double kNaiveCacheCapBytes = 4.0 * (int64_t{1} << 30);
// DeepSeek's 1/sqrt(qk_head_dim) with qk_head_dim = 128 + 64 (yarn's mscale left out), for both paths.
const float kSoftmaxScale = 1.0f / std::sqrt(static_cast<float>(kNaiveQk));

struct MlaCase {
    int64_t b, s_q, s_k, h_q, h_kv;
};

struct MlaConfig {
    int threads = 0;
    int32_t isa = MOE4J_ISA_BEST;
    int fixed_reps = 0;
    bool cold = true;
    bool fp8 = false;  // decode from the FP8 cache (656 B per token), written from the bf16 one by the append kernel
    std::vector<MlaCase> cases;
};

MlaConfig parse_config(const Args &args) {
    MlaConfig config;
    config.threads = static_cast<int>(args.get_int("threads", 0, 0, 1024));
    parse_isa(args.get_choice("isa", "best", {"scalar", "avx2", "avx512", "avx512_bf16", "best"}), &config.isa);
    config.fixed_reps = static_cast<int>(args.get_int("reps", 0, 1, 1000000));
    config.cold = args.get_choice("cache", "cold", {"cold", "warm"}) == "cold";
    config.fp8 = args.has("fp8");

    const int64_t s_q = args.get_int("sq", 1, 1, 64), h_kv = args.get_int("hkv", 1, 1, 1024);
    // (b, s_k): the DeepSeek decode shape, then a small one for quick comparisons.
    std::vector<std::pair<int64_t, int64_t>> lengths = {{64, 4096}, {8, 1024}};
    if (args.has("b") || args.has("sk"))
        lengths = {{args.get_int("b", 64, 1, 4096), args.get_int("sk", 4096, 1, int64_t{1} << 20)}};
    std::vector<int64_t> heads = {16, 128};
    if (args.has("hq")) heads = {args.get_int("hq", 0, 1, 1024)};
    for (const auto &[b, s_k] : lengths) {
        for (int64_t h_q : heads) {
            if (h_q % h_kv != 0) throw UsageError("--hq must be a multiple of --hkv");
            if (s_q > s_k) throw UsageError("--sq must not exceed --sk");
            config.cases.push_back({b, s_q, s_k, h_q, h_kv});
        }
    }
    return config;
}

double physical_memory_bytes() {
    return static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
}

// Tokens query j (of s_q) of a sequence of length s_k sees; all of them for s_q = 1 (causal when s_q > 1).
int64_t visible_tokens(const MlaCase &c, int64_t j) { return c.s_k - c.s_q + j + 1; }

// Largest |got - want| over the pairs added, where two +inf count as equal.
struct ErrorMeter {
    double max_diff = 0;
    void add(double got, double want) {
        if (got == want) return;  // +inf == +inf included
        max_diff = std::max(max_diff, std::isfinite(got - want) ? std::fabs(got - want) : 1e30);
    }
};

// Softmax attention of one query in double precision: scores[t] = scale * q·k_t, then
// out = sum_t p_t v_t and lse = log(sum_t exp(scores[t])), with key / value rows found by row(t).
template <typename Row>
double reference_row(const uint16_t *q, int64_t dim, int64_t dim_v, int64_t tokens, Row row, std::vector<double> *out) {
    std::vector<double> scores(static_cast<size_t>(tokens));
    double max = -std::numeric_limits<double>::infinity();
    for (int64_t t = 0; t < tokens; ++t) {
        const uint16_t *k = row(t).first;
        double s = 0;
        for (int64_t i = 0; i < dim; ++i) s += static_cast<double>(bf16_to_f32(q[i])) * bf16_to_f32(k[i]);
        scores[static_cast<size_t>(t)] = static_cast<double>(kSoftmaxScale) * s;
        max = std::max(max, scores[static_cast<size_t>(t)]);
    }
    double sum = 0;
    out->assign(static_cast<size_t>(dim_v), 0.0);
    for (int64_t t = 0; t < tokens; ++t) {
        const double p = std::exp(scores[static_cast<size_t>(t)] - max);
        sum += p;
        const uint16_t *v = row(t).second;
        for (int64_t i = 0; i < dim_v; ++i) (*out)[static_cast<size_t>(i)] += p * bf16_to_f32(v[i]);
    }
    for (double &o : *out) o /= sum;
    return max + std::log(sum);
}

// ---------------------------------------------------------------- moe4j_mla_decode

// q [b, s_q, h_q, 576] bf16; kcache [b * blocks_per_seq, 64, h_kv, 576] bf16; block_table [b, blocks_per_seq]
// i32, a random permutation of all blocks; cache_seqlens [b] = s_k; out [b, s_q, h_q, 512] bf16;
// lse [b, h_q, s_q] f32.
struct MlaOperands {
    const MlaCase &c;
    int64_t blocks_per_seq;
    AlignedBuffer q, kcache, block_table, seqlens, out, lse;
    std::optional<AlignedBuffer> fp8_cache;
    moe4j_tensor q_t, kcache_t, block_table_t, seqlens_t, out_t, lse_t;

    MlaOperands(const MlaCase &mla_case, uint64_t seed)
        : c(mla_case),
          blocks_per_seq((c.s_k + kBlockTokens - 1) / kBlockTokens),
          q(c.b * c.s_q * c.h_q * kDim * sizeof(uint16_t)),
          kcache(c.b * blocks_per_seq * kBlockTokens * c.h_kv * kDim * sizeof(uint16_t)),
          block_table(c.b * blocks_per_seq * sizeof(int32_t)),
          seqlens(c.b * sizeof(int32_t)),
          out(c.b * c.s_q * c.h_q * kDimV * sizeof(uint16_t)),
          lse(c.b * c.h_q * c.s_q * sizeof(float)),
          q_t(host_tensor(q.data(), MOE4J_BF16, {c.b, c.s_q, c.h_q, kDim})),
          kcache_t(host_tensor(kcache.data(), MOE4J_BF16, {c.b * blocks_per_seq, kBlockTokens, c.h_kv, kDim})),
          block_table_t(host_tensor_2d(block_table.data(), MOE4J_I32, c.b, blocks_per_seq)),
          seqlens_t(host_tensor(seqlens.data(), MOE4J_I32, {c.b})),
          out_t(host_tensor(out.data(), MOE4J_BF16, {c.b, c.s_q, c.h_q, kDimV})),
          lse_t(host_tensor(lse.data(), MOE4J_F32, {c.b, c.h_q, c.s_q})) {
        fill_random_bf16(q.as<uint16_t>(), q.size() / sizeof(uint16_t), seed, kQRange);
        fill_random_bf16(kcache.as<uint16_t>(), kcache.size() / sizeof(uint16_t), seed + 1, kKRange);
        int32_t *table = block_table.as<int32_t>();
        std::iota(table, table + c.b * blocks_per_seq, 0);
        std::shuffle(table, table + c.b * blocks_per_seq, std::mt19937_64(seed + 2));
        std::fill(seqlens.as<int32_t>(), seqlens.as<int32_t>() + c.b, static_cast<int32_t>(c.s_k));
    }

    // Rewrites the cache in the FP8 layout with moe4j_mla_cache_append and decodes from it from now on; the
    // bf16 cache stays as the correctness reference.
    void use_fp8_cache(const Context &ctx) {
        const int64_t blocks = c.b * blocks_per_seq, tokens = blocks * kBlockTokens;
        fp8_cache.emplace(static_cast<size_t>(tokens * c.h_kv * kFp8TokenBytes));
        AlignedBuffer slots(static_cast<size_t>(tokens) * sizeof(int32_t));
        std::iota(slots.as<int32_t>(), slots.as<int32_t>() + tokens, 0);
        const moe4j_tensor kv = host_tensor(kcache.data(), MOE4J_BF16, {tokens, c.h_kv, kDim});
        const moe4j_tensor slots_t = host_tensor(slots.data(), MOE4J_I32, {tokens});
        kcache_t = host_tensor(fp8_cache->data(), MOE4J_U8, {blocks, kBlockTokens, c.h_kv, kFp8TokenBytes});
        check(moe4j_mla_cache_append(ctx.get(), &kv, &slots_t, &kcache_t), "moe4j_mla_cache_append");
    }

    void decode(const Context &ctx) {
        check(moe4j_mla_decode(ctx.get(), &q_t, &kcache_t, &block_table_t, &seqlens_t, kSoftmaxScale, c.s_q > 1 ? 1 : 0,
                               &out_t, &lse_t),
              "moe4j_mla_decode");
    }

    // Max abs error of one output row (the last sequence, query and head) and its lse against double precision.
    double check_row() const {
        const int64_t seq = c.b - 1, j = c.s_q - 1, h = c.h_q - 1, kv_head = h / (c.h_q / c.h_kv);
        const uint16_t *cache = kcache.as<uint16_t>();
        const int32_t *table = block_table.as<int32_t>() + seq * blocks_per_seq;
        const auto row = [&](int64_t t) {
            const uint16_t *k =
                cache + ((table[t / kBlockTokens] * kBlockTokens + t % kBlockTokens) * c.h_kv + kv_head) * kDim;
            return std::make_pair(k, k);  // V = the first 512 dims of K
        };
        std::vector<double> want;
        const double want_lse = reference_row(q.as<uint16_t>() + ((seq * c.s_q + j) * c.h_q + h) * kDim, kDim, kDimV,
                                              visible_tokens(c, j), row, &want);
        const uint16_t *got = out.as<uint16_t>() + ((seq * c.s_q + j) * c.h_q + h) * kDimV;
        ErrorMeter error;
        for (int64_t i = 0; i < kDimV; ++i) error.add(bf16_to_f32(got[i]), want[static_cast<size_t>(i)]);
        error.add(lse.as<float>()[(seq * c.h_q + h) * c.s_q + j], want_lse);
        return error.max_diff;
    }
};

// ---------------------------------------------------------------- naive baseline

// A decompressed per-head cache, contiguous per sequence: q [b, s_q, h_q, 192], k [b, h_q, s_k, 192] and
// v [b, h_q, s_k, 128] bf16; out [b, s_q, h_q, 128] f32.
struct NaiveOperands {
    const MlaCase &c;
    int64_t b;  // the batch this baseline runs, c.b or fewer
    AlignedBuffer q, k, v, out;

    NaiveOperands(const MlaCase &mla_case, int64_t batch, uint64_t seed)
        : c(mla_case),
          b(batch),
          q(b * c.s_q * c.h_q * kNaiveQk * sizeof(uint16_t)),
          k(b * c.h_q * c.s_k * kNaiveQk * sizeof(uint16_t)),
          v(b * c.h_q * c.s_k * kNaiveV * sizeof(uint16_t)),
          out(b * c.s_q * c.h_q * kNaiveV * sizeof(float)) {
        fill_random_bf16(q.as<uint16_t>(), q.size() / sizeof(uint16_t), seed, kQRange);
        fill_random_bf16(k.as<uint16_t>(), k.size() / sizeof(uint16_t), seed + 1, kKRange);
        fill_random_bf16(v.as<uint16_t>(), v.size() / sizeof(uint16_t), seed + 2, kKRange);
    }

    const uint16_t *q_row(int64_t seq, int64_t j, int64_t h) const {
        return q.as<uint16_t>() + ((seq * c.s_q + j) * c.h_q + h) * kNaiveQk;
    }
    const uint16_t *k_head(int64_t seq, int64_t h) const {
        return k.as<uint16_t>() + (seq * c.h_q + h) * c.s_k * kNaiveQk;
    }
    const uint16_t *v_head(int64_t seq, int64_t h) const {
        return v.as<uint16_t>() + (seq * c.h_q + h) * c.s_k * kNaiveV;
    }
    float *out_row(int64_t seq, int64_t j, int64_t h) const {
        return out.as<float>() + ((seq * c.s_q + j) * c.h_q + h) * kNaiveV;
    }

    // Max abs error of one output row (the last sequence, query and head) against double precision.
    double check_row() const {
        const int64_t seq = b - 1, j = c.s_q - 1, h = c.h_q - 1;
        const auto row = [&](int64_t t) {
            return std::make_pair(k_head(seq, h) + t * kNaiveQk, v_head(seq, h) + t * kNaiveV);
        };
        std::vector<double> want;
        reference_row(q_row(seq, j, h), kNaiveQk, kNaiveV, visible_tokens(c, j), row, &want);
        const float *got = out_row(seq, j, h);
        ErrorMeter error;
        for (int64_t i = 0; i < kNaiveV; ++i) error.add(got[i], want[static_cast<size_t>(i)]);
        return error.max_diff;
    }
};

// sum_i a[i] * b[i] over the 192 dims of a naive key, b converted from bf16, in 32 partial sums that the compiler
// keeps in vector registers, then added pairwise.
float dot_qk(const float *a, const uint16_t *b) {
    constexpr int kLanes = 32;
    float acc[kLanes] = {};
    for (int64_t i = 0; i < kNaiveQk; i += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * bf16_to_f32(b[i + l]);
    for (int width = kLanes / 2; width >= 1; width /= 2)
        for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
    return acc[0];
}

// One query of one head over its first `tokens` cached tokens: scores, softmax, then out = sum p v, in fp32.
void naive_attend(const uint16_t *q_bf16, const uint16_t *k, const uint16_t *v, int64_t tokens, float *scores,
                  float *out) {
    float q[kNaiveQk];
    for (int64_t i = 0; i < kNaiveQk; ++i) q[i] = bf16_to_f32(q_bf16[i]);
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t t = 0; t < tokens; ++t) {
        scores[t] = kSoftmaxScale * dot_qk(q, k + t * kNaiveQk);
        max = std::max(max, scores[t]);
    }
    float sum = 0.0f;
    for (int64_t t = 0; t < tokens; ++t) {
        scores[t] = std::exp(scores[t] - max);
        sum += scores[t];
    }
    float acc[kNaiveV] = {};
    for (int64_t t = 0; t < tokens; ++t) {
        const float p = scores[t];
        const uint16_t *row = v + t * kNaiveV;
        for (int64_t i = 0; i < kNaiveV; ++i) acc[i] += p * bf16_to_f32(row[i]);
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < kNaiveV; ++i) out[i] = acc[i] * inv;
}

// The whole batch: `threads` threads each take a contiguous range of the (sequence, head) pairs.
void naive_decode(NaiveOperands &op, int threads) {
    const MlaCase &c = op.c;
    const int64_t units = op.b * c.h_q;
    run_threads(threads, [&](int t) {
        std::vector<float> scores(static_cast<size_t>(c.s_k));
        for (int64_t u = units * t / threads; u < units * (t + 1) / threads; ++u) {
            const int64_t seq = u / c.h_q, h = u % c.h_q;
            for (int64_t j = 0; j < c.s_q; ++j)
                naive_attend(op.q_row(seq, j, h), op.k_head(seq, h), op.v_head(seq, h), visible_tokens(c, j),
                             scores.data(), op.out_row(seq, j, h));
        }
    });
}

// ---------------------------------------------------------------- one row of the table

double latent_bytes(const MlaCase &c, bool fp8) {
    return static_cast<double>(c.b * c.s_k * c.h_kv) * (fp8 ? kFp8TokenBytes : 2 * kDim);
}
double naive_bytes(const MlaCase &c, int64_t b) { return 2.0 * b * c.s_k * c.h_q * (kNaiveQk + kNaiveV); }
double mla_flops(const MlaCase &c) { return 2.0 * c.b * c.s_q * c.h_q * c.s_k * (kDim + kDimV); }

// The batch the naive path runs for case c: c.b, or c.b halved until its cache fits the cap; 0 when even one
// sequence does not fit.
int64_t naive_batch(const MlaCase &c) {
    const double cap = std::min(kNaiveCacheCapBytes, physical_memory_bytes() / 4);
    int64_t b = c.b;
    while (b > 1 && naive_bytes(c, b) > cap) b /= 2;
    return naive_bytes(c, b) > cap ? 0 : b;
}

struct MlaMeasured {
    Stats moe4j;
    double error = 0;
    int64_t naive_b = 0;  // the batch the naive path ran; 0: skipped
    Stats naive;          // scaled to the full batch when naive_b < b
    double naive_error = 0;
};

MlaMeasured measure(const Context &ctx, const MlaConfig &config, const CacheFlusher &flush, const MlaCase &c,
                    int threads, uint64_t seed) {
    MlaMeasured r;
    {
        MlaOperands op(c, seed);
        if (config.fp8) op.use_fp8_cache(ctx);
        r.moe4j = time_cold(config.fixed_reps, flush, [&] { op.decode(ctx); });
        r.error = op.check_row();
    }
    r.naive_b = naive_batch(c);
    if (r.naive_b == 0) return r;
    NaiveOperands op(c, r.naive_b, seed + 8);
    r.naive = time_cold(config.fixed_reps, flush, [&] { naive_decode(op, threads); });
    r.naive_error = op.check_row();
    const double scale = static_cast<double>(c.b) / static_cast<double>(r.naive_b);
    r.naive.best *= scale;
    r.naive.median *= scale;
    return r;
}

std::string error_cell(double error, double limit) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1e%s", error, error > limit ? " BAD" : "");
    return text;
}

std::vector<std::string> result_row(const MlaCase &c, const MlaMeasured &r, const MachineFacts &facts, bool fp8) {
    const double gbps = latent_bytes(c, fp8) / r.moe4j.best * 1e-9, gflops = mla_flops(c) / r.moe4j.best * 1e-9;
    std::vector<std::string> cells = {std::to_string(c.b),
                                      std::to_string(c.s_q),
                                      std::to_string(c.s_k),
                                      std::to_string(c.h_q),
                                      std::to_string(c.h_kv),
                                      std::to_string(r.moe4j.count),
                                      fixed(r.moe4j.best * 1e6, 1),
                                      fixed(r.moe4j.median * 1e6, 1),
                                      fixed(gbps, 2),
                                      fixed(100.0 * gbps / facts.read_bw.best, 1),
                                      fixed(gflops * 1e-3, 4),
                                      fixed(100.0 * gflops / facts.fma_peak.best, 1),
                                      error_cell(r.error, fp8 ? kFp8ErrorLimit : kErrorLimit)};
    if (r.naive_b == 0) {
        cells.insert(cells.end(), {"skip", "-", "-", "-", "-", "-"});
        return cells;
    }
    const double naive_gbps = naive_bytes(c, c.b) / r.naive.best * 1e-9;
    cells.insert(cells.end(),
                 {r.naive_b == c.b ? std::to_string(c.b)
                                   : std::to_string(r.naive_b) + " (x" + std::to_string(c.b / r.naive_b) + ")",
                  fixed(r.naive.best * 1e6, 1), fixed(naive_gbps, 2), fixed(100.0 * naive_gbps / facts.read_bw.best, 1),
                  fixed(r.naive.best / r.moe4j.best, 2) + "x", error_cell(r.naive_error, kErrorLimit)});
    return cells;
}

// One line per kv-head count: latent bytes per token against the naive cache's at every h_q of the run.
void print_cache_per_token(const std::vector<MlaCase> &cases) {
    std::vector<std::pair<int64_t, int64_t>> seen;  // (h_kv, h_q)
    for (const MlaCase &c : cases)
        if (std::find(seen.begin(), seen.end(), std::make_pair(c.h_kv, c.h_q)) == seen.end())
            seen.push_back({c.h_kv, c.h_q});
    std::sort(seen.begin(), seen.end());
    for (size_t i = 0; i < seen.size(); ++i) {
        const int64_t h_kv = seen[i].first, latent = 2 * kDim * h_kv;
        if (i > 0 && seen[i - 1].first == h_kv) continue;
        std::string line = "cache per token: latent " + std::to_string(latent) +
                           " B (576 bf16 x h_kv=" + std::to_string(h_kv) + ") vs naive";
        for (size_t n = i; n < seen.size() && seen[n].first == h_kv; ++n) {
            const int64_t naive = 2 * (kNaiveQk + kNaiveV) * seen[n].second;
            line += std::string(n > i ? "," : "") + " " + std::to_string(naive) +
                    " B at h_q=" + std::to_string(seen[n].second) + " (" +
                    fixed(static_cast<double>(naive) / latent, 1) + "x)";
        }
        std::printf("%s\n", line.c_str());
    }
}

}  // namespace

int run_mla(const Args &args) {
    const MlaConfig config = parse_config(args);  // usage errors surface before any measurement
    const MachineFacts facts = measure_machine(config.threads);
    const Context ctx(facts.threads, config.isa);
    const moe4j_context_info info = ctx.info();
    const CacheFlusher flush(config.cold);

    std::printf("%s\n", machine_summary(facts).c_str());
    const std::string cache =
        config.cold ? "cold (" + std::to_string(flush.bytes() >> 20) + " MiB read before each timed call)" : "warm";
    std::printf(
        "mla: isa requested=%s context=%s  threads=%d  q uniform in [-%.0f, %.0f), caches uniform in [-%.0f, %.0f), "
        "softmax_scale=1/sqrt(192)  cache=%s\n",
        isa_name(config.isa), isa_name(info.isa), info.threads, kQRange, kQRange, kKRange, kKRange, cache.c_str());
    std::printf(
        "\nmoe4j_mla_decode, %s: q [b, s_q, h_q, 576] bf16, paged latent cache [b*ceil(s_k/64), 64, h_kv, 576] bf16 "
        "(V = first 512 dims), block tables a random\npermutation of the blocks, every sequence s_k tokens, "
        "out [b, s_q, h_q, 512] bf16.  naive: per-head K [s_k, 192] and V [s_k, 128] bf16, fp32 math, "
        "%d std::threads\n",
        config.fp8 ? "FP8 cache (656 B/token, written from the bf16 cache below by moe4j_mla_cache_append)"
                   : "bf16 cache",
        facts.threads);
    const Table table({{"b", 3, Align::Right},
                       {"s_q", 3, Align::Right},
                       {"s_k", 5, Align::Right},
                       {"h_q", 3, Align::Right},
                       {"h_kv", 4, Align::Right},
                       {"reps", 4, Align::Right},
                       {"best_us", 9, Align::Right},
                       {"median_us", 9, Align::Right},
                       {"cGB/s", 6, Align::Right},
                       {"%read_bw", 8, Align::Right},
                       {"TFLOP/s", 7, Align::Right},
                       {"%fma", 5, Align::Right},
                       {"max_err", 7, Align::Right},
                       {"naive_b", 7, Align::Right},
                       {"naive_us", 9, Align::Right},
                       {"naive_cGB/s", 6, Align::Right},
                       {"naive_%bw", 8, Align::Right},
                       {"speedup", 7, Align::Right},
                       {"naive_err", 7, Align::Right}});
    table.print_header();
    bool all_good = true;
    uint64_t seed = 1;
    std::vector<std::string> skipped;
    for (const MlaCase &c : config.cases) {
        const MlaMeasured r = measure(ctx, config, flush, c, facts.threads, seed);
        seed += 16;
        const double limit = config.fp8 ? kFp8ErrorLimit : kErrorLimit;
        all_good = all_good && r.error <= limit && (r.naive_b == 0 || r.naive_error <= kErrorLimit);
        table.print_row(result_row(c, r, facts, config.fp8));
        if (r.naive_b == 0)
            skipped.push_back("b=" + std::to_string(c.b) + " s_k=" + std::to_string(c.s_k) +
                              " h_q=" + std::to_string(c.h_q) + ": one sequence's naive cache is " +
                              fixed(naive_bytes(c, 1) * 1e-9, 2) + " GB");
    }

    std::printf(
        "\nbest_us/median_us: over `reps` timed calls after warm-up. cGB/s = latent cache bytes read "
        "(b*s_k*h_kv*576*2, or *656 with --fp8) / best_us; %%read_bw compares it with read_bw above.\n"
        "TFLOP/s = 2*b*s_q*h_q*s_k*(576+512) / best_us (FlashMLA's count); %%fma compares it with fma_peak above. "
        "max_err = max abs error of one\n"
        "output row (last sequence, query and head: 512 bf16 outputs and its lse) against float64 from the same bf16 "
        "inputs (above %.0e: BAD).\n"
        "naive_*: DeepSeek-V2-style attention over the decompressed cache, best time; naive_cGB/s = "
        "b*s_k*h_q*(192+128)*2 bytes / naive_us, naive_%%bw its %%read_bw;\n"
        "speedup = naive_us / best_us. naive_err: the same float64 check of the naive path. naive_b 'n (xk)': the "
        "naive cache of the full batch exceeds\n"
        "%.1f GiB (the smaller of 4 GiB and a quarter of this machine's %.1f GiB), so the naive path ran n "
        "sequences and its time is scaled by k\n"
        "(sequences are independent, so its time is linear in b); its GB/s is unaffected by the scaling.\n",
        kErrorLimit, std::min(kNaiveCacheCapBytes, physical_memory_bytes() / 4) / static_cast<double>(int64_t{1} << 30),
        physical_memory_bytes() / static_cast<double>(int64_t{1} << 30));
    for (const std::string &s : skipped) std::printf("naive skipped for %s\n", s.c_str());
    print_cache_per_token(config.cases);
    if (config.cold)
        std::printf(
            "cache=cold: a read of %zu MiB evicts the last-level cache before every timed call (either path); "
            "--cache warm times back-to-back calls instead.\n",
            flush.bytes() >> 20);
    report_bandwidth_drift(facts);
    if (!all_good) {
        std::printf("ERROR: some rows differ from the float64 reference beyond %.0e (marked BAD)\n", kErrorLimit);
        return 1;
    }
    return 0;
}

}  // namespace bench
