// FP8 GEMM with DeepGEMM's 1x128 (activation) and 128x128 (weight) block scaling: plain, grouped
// contiguous and grouped masked layouts all reduce to a list of groups of rows sharing one weight matrix.
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/span.h"
#include "moe4j.h"

namespace moe4j::cpu {

// Rows of A (and the same rows of D) multiplied by one weight matrix B [N, K].
struct GemmGroup {
    const uint8_t *b;  // e4m3, row n at b + n * ldb
    int64_t ldb;
    const float *sfb;  // sfb(nb, kb) = sfb[nb * sfb_stride0 + kb * sfb_stride1]
    int64_t sfb_stride0, sfb_stride1;
    Span<const int64_t> rows;  // row indices over the flattened leading dimensions of a, sfa, c and d
    // b holds E4M3_P32 panels (ldb = K): element (n, k) at b[(n / 32) * 32 * K + k * 32 + n % 32]
    bool packed = false;
};

// Validated operands. a and d are viewed as rows (leading dimensions flattened); sfa is viewed the same way
// with its last dimension over K blocks. The groups and row lists live in the context's workspace (or the caller's
// memory) for the call.
struct Fp8GemmArgs {
    const moe4j_tensor *a, *sfa, *c, *d;  // c may be null
    int64_t n, k;
    Span<GemmGroup> groups;
    Span<const int64_t> zero_rows;  // rows of d to set to zero (contiguous-layout padding)
};

// Which sub-kernel fp8_gemm ran, for the context's variant counts.
constexpr const char *kFp8RowKernel = "row kernel";
constexpr const char *kFp8PanelKernel = "packed-panel kernel";
constexpr const char *kGateUpRowKernel = "fused gate/up pass, row kernel";
constexpr const char *kGateUpPanelKernel = "fused gate/up pass, packed-panel kernel";

// Returns kFp8RowKernel, or kFp8PanelKernel when some group ran on the packed-panel kernel (large groups, in
// contexts that are not reproducible, on the AVX-512 paths).
const char *fp8_gemm(moe4j_context *ctx, const Fp8GemmArgs &args);

// Packs w [N, K] (row n at w + n * ldw, N a multiple of 32) into E4M3_P32 panels at packed (N * K bytes). Returns
// null, or at the AVX2 level, which transposes with the scalar code, a note saying so for the variant counts.
const char *fp8_pack_weights(moe4j_context *ctx, const uint8_t *w, int64_t ldw, int64_t n, int64_t k, uint8_t *packed);

// SiLU(gate) * up as the expert FFN computes it, in fp32.
inline float silu_times(float gate, float up) { return gate / (1.0f + std::exp(-gate)) * up; }

// The expert FFN's first half, fused per 128 intermediate columns: for every row of gate's groups (up has the same
// groups, rows, a and sfa; N = I is a multiple of 128), h[row][c] = e4m3(x / s) for each 128-column block, where
// x = silu_times(gate, up) of that row and block and s = fp8_scale(max |x|) goes to h_scales[row][block]: the values
// fp8_gemm (f32 d), silu_times and quantize_fp8 (1x128) give one after another, bit for bit. h is [rows, I] with
// row stride I, h_scales [rows, I/128]; rows not in any group are left alone. Its tiles come from the context's
// workspace. Returns kGateUpRowKernel, or kGateUpPanelKernel when some group ran on the packed-panel kernel.
const char *fp8_gate_up_silu(moe4j_context *ctx, const Fp8GemmArgs &gate, const Fp8GemmArgs &up, uint8_t *h,
                             float *h_scales);

}  // namespace moe4j::cpu
