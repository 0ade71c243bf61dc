// Entry points of the moe4j_bench subcommands; main.cpp lists them with their options and usage.
#pragma once

#include "args.h"

namespace bench {

int run_machine(const Args &args);  // memory read bandwidth and FP32 FMA peak
int run_logits(const Args &args);   // moe4j_logits_stats (sampling statistics per row of logits)
int run_quant(const Args &args);    // FP8 quantization (per-token activations, per-block weights)
int run_gemm(const Args &args);     // FP8 GEMM, plain and grouped, against OpenBLAS sgemm
int run_mla(const Args &args);      // MLA decode over a paged latent cache, against a naive decompressed cache
int run_expert(const Args &args);   // decode-shaped expert work: grouped GEMM and fused FFN, few rows per expert
int run_absorb(const Args &args);   // the unquantized GEMM at MLA's absorption shapes (strided batches of heads)
int run_q8(const Args &args);       // the int8 GEMM at the LM head's shape, against the FP8 head
int run_step(const Args &args);     // a decode step's weight-streaming calls back to back (the native ceiling)

}  // namespace bench
