// The fused FP8 expert FFN: gate and up GEMMs, SiLU(gate) * up, per-token FP8 re-quantization, down GEMM.
#pragma once

#include "fp8_gemm.h"
#include "moe4j.h"

namespace moe4j::cpu {

// Validated operands. gate and up come with a = x, sfa = sfx and their weights and row groups (no d); down with
// its weights, the same row groups and d = the output. expert_ffn points down.a and down.sfa at its scratch buffers.
struct ExpertFfnArgs {
    const moe4j_tensor *x;
    int64_t intermediate;
    Fp8GemmArgs gate, up, down;
};

// The sub-kernels an expert FFN call ran, for the context's variant counts.
struct ExpertFfnKernels {
    const char *gate_up;  // the fused gate/up pass and its sub-kernel
    const char *down;     // fp8_gemm's
};

ExpertFfnKernels expert_ffn(moe4j_context *ctx, ExpertFfnArgs &args);

}  // namespace moe4j::cpu
