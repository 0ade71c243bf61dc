// The CUDA backend's entry points, called by the shared API code after validation. Only libmoe4j_cuda links an
// implementation. Every function returns with its work complete, MOE4J_OK or the CUDA error recorded for `function`.
#pragma once

#include <cstdint>

#include "../cpu/expert_ffn.h"
#include "../cpu/fp8_gemm.h"
#include "../cpu/mla.h"
#include "moe4j.h"

struct moe4j_context;

namespace moe4j::cuda {

// Usable CUDA devices; 0 when the driver is missing or reports none.
int device_count();

// Selects the device and creates the context's stream; records an error message on failure.
moe4j_status attach(const char *function, moe4j_context *ctx);

// Releases what attach() created.
void detach(moe4j_context *ctx);

// memory.cu. Copies between any two of host memory (device -1) and CUDA devices.
moe4j_status alloc(const char *function, moe4j_context *ctx, int64_t bytes, void **out);
moe4j_status free(const char *function, moe4j_context *ctx, void *ptr);
moe4j_status copy(const char *function, moe4j_context *ctx, void *dst, int32_t dst_device, const void *src,
                  int32_t src_device, int64_t bytes);
moe4j_status synchronize(const char *function, moe4j_context *ctx);

// quantize.cu: the operands as the CPU kernels of the same names take them.
moe4j_status quantize(const char *function, moe4j_context *ctx, const moe4j_tensor &x, const moe4j_tensor &q,
                      const moe4j_tensor &scales, int64_t block_rows, bool ue8m0);
moe4j_status dequantize(const char *function, moe4j_context *ctx, const moe4j_tensor &q, const moe4j_tensor &scales,
                        int64_t block_rows, const moe4j_tensor &out);
moe4j_status cast(const char *function, moe4j_context *ctx, const moe4j_tensor &src, const moe4j_tensor &dst);

// gemm.cu: the FP8 GEMM family over the groups of rows the API layer built, and the unquantized GEMM (rank 2, or
// rank 3 for a batch).
moe4j_status fp8_gemm(const char *function, moe4j_context *ctx, const cpu::Fp8GemmArgs &args);
moe4j_status gemm_nt(const char *function, moe4j_context *ctx, const moe4j_tensor &a, const moe4j_tensor &b,
                     const moe4j_tensor *c, const moe4j_tensor &d);

// expert_ffn.cu
moe4j_status expert_ffn(const char *function, moe4j_context *ctx, cpu::ExpertFfnArgs &args);

// dispatch.cu: index in device memory, validated.
moe4j_status gather_rows(const char *function, moe4j_context *ctx, const moe4j_tensor &src, const moe4j_tensor &index,
                         const moe4j_tensor &dst);
moe4j_status combine_rows(const char *function, moe4j_context *ctx, const moe4j_tensor &rows, const moe4j_tensor &index,
                          const moe4j_tensor &weights, const moe4j_tensor *base, const moe4j_tensor &out);

// norm.cu, rope.cu, activation.cu: the CPU kernels' operands and arithmetic (positions in device memory, validated).
moe4j_status rms_norm(const char *function, moe4j_context *ctx, const moe4j_tensor &x, const moe4j_tensor *residual,
                      const moe4j_tensor &weight, float eps, const moe4j_tensor *sum_out, const moe4j_tensor &y);
moe4j_status rope(const char *function, moe4j_context *ctx, const moe4j_tensor &x, const moe4j_tensor &positions,
                  const moe4j_tensor &freqs, float rotation_scale, const moe4j_tensor &out);
moe4j_status silu_mul(const char *function, moe4j_context *ctx, const moe4j_tensor &gate, const moe4j_tensor &up,
                      const moe4j_tensor &out);

// mla.cu
moe4j_status mla_decode(const char *function, moe4j_context *ctx, const cpu::MlaDecodeArgs &args);
moe4j_status mla_cache_append(const char *function, moe4j_context *ctx, const moe4j_tensor &kv,
                              const moe4j_tensor &slot_mapping, const moe4j_tensor &kcache);

}  // namespace moe4j::cuda
