// moe4j_bench: argument parsing and dispatch to the subcommands.
// To add a subcommand: write its run_* function in its own file, declare it in subcommands.h,
// and add one entry to kSubcommands below.
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "args.h"
#include "subcommands.h"

namespace {

struct Subcommand {
    const char *name;
    const char *summary;
    std::vector<std::string> options;  // names accepted after the subcommand, without "--"
    std::vector<std::string> flags;    // names of options that take no value, without "--"
    const char *option_help;           // one line per option, already indented
    int (*run)(const bench::Args &);
};

const std::vector<Subcommand> &subcommands() {
    static const std::vector<Subcommand> kSubcommands = {
        {"machine",
         "measure memory read bandwidth (GB/s) and peak FP32 FMA throughput (GFLOP/s)",
         {"threads"},
         {"brief", "read-bw", "read-bw-per-line"},
         "    --threads N        threads to measure with (default: all hardware threads)\n"
         "    --brief            one line of key=value: read_bw_gbs, fma_peak_gflops, bf16_dot_peak_gflops,\n"
         "                       int8_dot_peak_gops\n"
         "    --read-bw          one line of key=value: read_bw_gbs alone (a quick probe between timed runs)\n"
         "    --read-bw-per-line after a line 'ready ...', one line read_bw_gbs=X (256 MiB, best of 3) for\n"
         "                       each line read from stdin, until end of input (a probe between timed steps)\n",
         bench::run_machine},
        {"quant",
         "time moe4j_quantize_fp8_per_token / _per_block against the measured read bandwidth",
         {"threads", "isa", "rows", "cols", "dtype", "reps", "op", "scale-format"},
         {},
         "    --threads N        context threads (default: all hardware threads)\n"
         "    --isa NAME         scalar | avx2 | avx512 | avx512_bf16 | best (default: best)\n"
         "    --rows M           rows (tokens, or weight rows N) (default: a table of 1, 128, 4096)\n"
         "    --cols K           columns (default: a table of 7168, 2048)\n"
         "    --dtype T          f32 | bf16 input (default: both)\n"
         "    --op OP            per_token | per_block (default: per_token; the default table also\n"
         "                       times per_block on a 7168x2048 weight)\n"
         "    --scale-format F   fp32 | ue8m0 (default: fp32)\n"
         "    --reps R           timed calls per row (default: >= 10 and >= 0.25 s)\n",
         bench::run_quant},
        {"logits",
         "time moe4j_logits_stats (sampling's argmax and sum of exponentials) against one thread and read bandwidth",
         {"threads", "isa", "rows", "vocab", "reps"},
         {},
         "    --threads N        context threads (default: all hardware threads)\n"
         "    --isa NAME         scalar | avx2 | avx512 | avx512_bf16 | best (default: best)\n"
         "    --rows B           rows of logits (default: a table of 1, 2, 8, 64)\n"
         "    --vocab V          logits per row (default: 102400 and 129280, V2 and V3)\n"
         "    --reps R           timed calls per row (default: >= 10 and >= 0.25 s)\n",
         bench::run_logits},
        {"gemm",
         "time moe4j_fp8_gemm_nt and the grouped FP8 GEMMs against read bandwidth, FMA peak and OpenBLAS sgemm",
         {"threads", "isa", "m", "n", "k", "reps", "cache"},
         {"all", "grouped", "packed"},
         "    --threads N        context and OpenBLAS threads (default: all hardware threads)\n"
         "    --isa NAME         scalar | avx2 | avx512 | avx512_bf16 | best (default: best)\n"
         "    --m M              tokens; alone: M against the six DeepGEMM weights (N, K)\n"
         "    --n N --k K        one weight shape (K a multiple of 128); without --m: M in 1, 16, 64, 128, 4096\n"
         "    --all              the full grid: M in 1, 16, 64, 128, 4096 x six (N, K), then the grouped table\n"
         "    --grouped          only the grouped table (DeepSeek-V2-Lite experts, V3 experts over 8 devices)\n"
         "                       default: decode M 1, 16 on all six (N, K); M 64, 128 on two; M 4096 on one;\n"
         "                       then the grouped table\n"
         "    --cache MODE       cold | warm: evict the last-level cache before each timed call or not\n"
         "                       (default: cold)\n"
         "    --reps R           timed calls per row (default: >= 10 and >= 0.25 s; >= 3 for calls over 50 ms)\n"
         "    --packed           moe4j_fp8_gemm_nt on weights packed in panels (moe4j_pack_fp8_weights)\n",
         bench::run_gemm},
        {"mla",
         "time moe4j_mla_decode against read bandwidth, FMA peak and a naive decompressed-cache decode",
         {"threads", "isa", "b", "sk", "hq", "hkv", "sq", "reps", "cache"},
         {"fp8"},
         "    --threads N        context and naive-baseline threads (default: all hardware threads)\n"
         "    --isa NAME         scalar | avx2 | avx512 | avx512_bf16 | best (default: best)\n"
         "    --b B --sk S       batch and tokens per sequence (default: b=64 s_k=4096, then b=8 s_k=1024;\n"
         "                       either alone: the other from the first pair)\n"
         "    --hq H             query heads (default: 16, then 128)\n"
         "    --hkv H            latent kv heads, dividing every h_q (default: 1)\n"
         "    --sq S             queries per sequence, causal when above 1 (default: 1)\n"
         "    --cache MODE       cold | warm: evict the last-level cache before each timed call or not\n"
         "                       (default: cold)\n"
         "    --fp8              decode from the FP8 latent cache (656 B per token) instead of bf16\n"
         "    --reps R           timed calls per row (default: >= 10 and >= 0.25 s; >= 3 for calls over 50 ms)\n",
         bench::run_mla},
        {"expert",
         "time the grouped FP8 GEMM and the fused expert FFN with a few rows per expert (decode) against read "
         "bandwidth",
         {"threads", "isa", "model", "experts", "rows", "shared", "shared-rows", "op", "pool-mib", "reps"},
         {"fast", "packed"},
         "    --threads N        context threads (default: all hardware threads)\n"
         "    --isa NAME         scalar | avx2 | avx512 | avx512_bf16 | best (default: best)\n"
         "    --model M          v2lite | v3 | v2lite-dense expert shapes (default: v2lite: hidden 2048,\n"
         "                       moe_intermediate 1408; v2lite-dense: layer 0's MLP padded to 11008, 1 expert)\n"
         "    --experts E        active experts per call (default: a table of 1, 6, 8, 64)\n"
         "    --rows R           token rows per expert (default: a table of 1, 2, 4, 8)\n"
         "    --shared S         S more experts in every call after the routed ones, as a MoE layer runs its\n"
         "                       shared experts (default: 0)\n"
         "    --shared-rows R    token rows of each shared expert (default: 8)\n"
         "    --op OP            gemm | ffn | both (default: both)\n"
         "    --fast             a context without MOE4J_CONTEXT_REPRODUCIBLE (default: reproducible, as the\n"
         "                       library's models run)\n"
         "    --packed           the experts packed in panels first (moe4j_pack_fp8_weights), as models on the\n"
         "                       AVX-512 paths hold them (default: as stored)\n"
         "    --pool-mib M       at least M MiB of distinct experts to cycle through (default: 256; a whole\n"
         "                       model's experts, some GiB, show what a larger footprint costs)\n"
         "    --reps R           timed calls per row (default: >= 10, >= one pool cycle and >= 0.3 s)\n",
         bench::run_expert},
        {"absorb",
         "time moe4j_gemm_nt (bf16, batched over heads) at MLA's absorption shapes against read bandwidth and the "
         "path's "
         "peak",
         {"threads", "isa", "heads", "m", "n", "k", "out", "reps"},
         {},
         "    --threads N        context threads (default: all hardware threads)\n"
         "    --isa NAME         scalar | avx2 | avx512 | avx512_bf16 | best (default: best)\n"
         "    --heads H --m M --n N --k K\n"
         "                       one shape [H, M, K] x [H, N, K] (defaults 16, 1, 512, 128); default: a table of\n"
         "                       V2-Lite's absorption (N 512, K 128) and un-absorption (N 128, K 512) at M 1, 16, 512\n"
         "    --out bf16|f32     the output's dtype (default: bf16, as MLA writes it)\n"
         "    --reps R           timed calls per row (default: >= 10, >= one pool cycle and >= 0.3 s)\n",
         bench::run_absorb},
        {"q8",
         "time moe4j_q8_gemm_nt at the LM head's shape against the FP8 head on the same weight bytes, the read "
         "bandwidth and a float64 product",
         {"threads", "isa", "m", "n", "k", "reps"},
         {},
         "    --threads N        context threads (default: all hardware threads)\n"
         "    --isa NAME         scalar | avx2 | avx512 | avx512_bf16 | best (default: best)\n"
         "    --m M              activation rows (default: a table of 1, 8, 16, 64)\n"
         "    --n N --k K        weight shape (default: V2-Lite's LM head, 102400 x 2048)\n"
         "    --reps R           timed calls per row (default: >= 5, >= one pool cycle and >= 0.3 s)\n",
         bench::run_q8},
        {"step",
         "time a V2-Lite decode step's weight-streaming calls back to back (int8 projections and LM head, bf16 "
         "absorption, fused expert FFN): the native ceiling of bench generate's decode, against plain streams of the "
         "same calls' bytes",
         {"threads", "isa", "layers", "steps", "reps"},
         {},
         "    --threads N        context threads (default: all hardware threads)\n"
         "    --isa NAME         scalar | avx2 | avx512 | avx512_bf16 | best (default: best)\n"
         "    --layers L         decoder layers, layer 0 dense (default: 4, as the 4-layer bench checkpoint)\n"
         "    --steps S          timed steps per repetition (default: 16)\n"
         "    --reps R           repetitions, the read bandwidth measured after each (default: 5)\n",
         bench::run_step},
    };
    return kSubcommands;
}

void print_usage(std::FILE *out) {
    std::fprintf(out, "usage: moe4j_bench <subcommand> [options]\n       moe4j_bench --help\n\nsubcommands:\n");
    for (const Subcommand &s : subcommands()) std::fprintf(out, "  %-9s %s\n", s.name, s.summary);
    for (const Subcommand &s : subcommands()) std::fprintf(out, "\nmoe4j_bench %s options:\n%s", s.name, s.option_help);
}

bool is_help(const char *arg) { return std::strcmp(arg, "--help") == 0 || std::strcmp(arg, "-h") == 0; }

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2 || is_help(argv[1])) {
        print_usage(stdout);
        return 0;
    }
    const Subcommand *chosen = nullptr;
    for (const Subcommand &s : subcommands())
        if (s.name == std::string(argv[1])) chosen = &s;
    if (chosen == nullptr) {
        std::fprintf(stderr, "moe4j_bench: unknown subcommand '%s'\n\n", argv[1]);
        print_usage(stderr);
        return 2;
    }
    std::vector<std::string> rest(argv + 2, argv + argc);
    for (const std::string &arg : rest) {
        if (is_help(arg.c_str())) {
            print_usage(stdout);
            return 0;
        }
    }
    try {
        return chosen->run(bench::Args(rest, chosen->options, chosen->flags));
    } catch (const bench::UsageError &e) {
        std::fprintf(stderr, "moe4j_bench %s: %s\nrun 'moe4j_bench --help' for usage\n", chosen->name, e.what());
        return 2;
    } catch (const std::bad_alloc &) {
        std::fprintf(stderr, "moe4j_bench %s: out of memory\n", chosen->name);
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "moe4j_bench %s: %s\n", chosen->name, e.what());
        return 1;
    }
}
