// Entry points of the moe4j_bench subcommands; main.cpp lists them with their options and usage.
#pragma once

#include "args.h"

namespace bench {

int run_machine(const Args &args);  // memory read bandwidth and FP32 FMA peak
int run_quant(const Args &args);    // FP8 quantization (per-token activations, per-block weights)
int run_gemm(const Args &args);     // FP8 GEMM, plain and grouped, against OpenBLAS sgemm

}  // namespace bench
