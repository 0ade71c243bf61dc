// The CUDA backend's entry points, called by the shared API code after host-side validation. Only libmoe4j_cuda links
// an implementation. This header is plain C++ (the API layer is compiled by the host compiler): no CUDA types.
//
// Every kernel-side function takes a `const Call &` first, and only run() can make one: it makes the context's device
// current for the call (restoring the thread's previous device after it), reports errors that earlier calls left
// behind, runs the function, returns launch errors, and marks the context's work for the next error check. So no
// CUDA work can be issued from the API layer without the device guard (native/test checks the declarations below
// too). Functions enqueue on the context's stream and return without waiting (see moe4j.h, "Execution").
#pragma once

#include <cstdint>
#include <type_traits>

#include "../cpu/mla.h"
#include "moe4j.h"

struct moe4j_context;

namespace moe4j::cuda {

class Call;
using CallBody = moe4j_status (*)(const Call &call, void *closure);

// The implementation behind run(): the device guard, the error checks before and after, then body(call, closure).
// pending_errors: whether errors of earlier calls are reported first (every call but moe4j_free).
moe4j_status run_body(const char *function, moe4j_context *ctx, bool pending_errors, CallBody body, void *closure);

// Proof that the call runs inside run(): the context's device is current and earlier errors were checked.
class Call {
  public:
    const char *function() const { return function_; }
    moe4j_context *ctx() const { return ctx_; }

  private:
    Call(const char *function, moe4j_context *ctx) : function_(function), ctx_(ctx) {}
    const char *function_;
    moe4j_context *ctx_;
    friend moe4j_status run_body(const char *, moe4j_context *, bool, CallBody, void *);
};

// Runs body(const Call &) -> moe4j_status under the context's device guard; see the top of this file.
template <typename Body>
moe4j_status run(const char *function, moe4j_context *ctx, Body &&body) {
    using Callable = std::remove_reference_t<Body>;
    return run_body(
        function, ctx, true,
        [](const Call &call, void *closure) -> moe4j_status { return (*static_cast<Callable *>(closure))(call); },
        const_cast<void *>(static_cast<const void *>(&body)));
}

// run() for moe4j_free: the same guard and checks after the body, but errors of earlier calls are left for the next
// call to report, so that they cannot keep memory from being freed.
template <typename Body>
moe4j_status run_keeping_earlier_errors(const char *function, moe4j_context *ctx, Body &&body) {
    using Callable = std::remove_reference_t<Body>;
    return run_body(
        function, ctx, false,
        [](const Call &call, void *closure) -> moe4j_status { return (*static_cast<Callable *>(closure))(call); },
        const_cast<void *>(static_cast<const void *>(&body)));
}

// Usable CUDA devices; 0 when the driver is missing or reports none. Touches no device.
int device_count();

// Creates the context's stream, event, error record and scratch on its device (under the device guard: the
// calling thread's current device is unchanged); records an error message on failure.
moe4j_status attach(const char *function, moe4j_context *ctx);

// Waits for the context's work and releases what attach() created (under the device guard).
void detach(moe4j_context *ctx);

// ---- memory.cu. Copies between any two of host memory (device -1) and CUDA devices.
moe4j_status alloc(const Call &call, int64_t bytes, void **out);
// Waits for the context's work first (the memory may still be in use by it). The API layer runs it through
// run_keeping_earlier_errors.
moe4j_status free(const Call &call, void *ptr);
moe4j_status copy(const Call &call, void *dst, int32_t dst_device, const void *src, int32_t src_device, int64_t bytes);
moe4j_status synchronize(const Call &call);

// ---- quantize.cu: the operands as the CPU kernels of the same names take them.
moe4j_status quantize(const Call &call, const moe4j_tensor &x, const moe4j_tensor &q, const moe4j_tensor &scales,
                      int64_t block_rows, bool ue8m0);
moe4j_status dequantize(const Call &call, const moe4j_tensor &q, const moe4j_tensor &scales, int64_t block_rows,
                        const moe4j_tensor &out);
moe4j_status cast(const Call &call, const moe4j_tensor &src, const moe4j_tensor &dst);

// ---- gemm.cu: the FP8 GEMM family and the unquantized GEMM (rank 2, or rank 3 for a batch).

// How rows of A (and D) find their weight group. The tables stay in device memory: the kernels read and check them.
enum class RowLayout {
    Plain,       // one group; a [M, K]
    Contiguous,  // a [S, K]; grouped_layout I32 [S] in [-1, G), -1 = padding (zero rows), alignment blocks of one group
    Masked       // a [G, M_max, K]; masked_m I32 [G] in [0, M_max]; rows past masked_m[g] untouched
};

// Validated operands of one FP8 GEMM. weights/scales: the G host descriptors of the weight groups (for Plain, b and
// sfb themselves, G = 1).
struct Fp8GemmCall {
    const moe4j_tensor *a, *sfa, *c, *d;  // c may be null
    int64_t n, k;
    const moe4j_tensor *weights, *scales;
    int64_t groups;
    RowLayout layout;
    const moe4j_tensor *grouped_layout;  // Contiguous
    int32_t alignment;                   // Contiguous
    const moe4j_tensor *masked_m;        // Masked
};
moe4j_status fp8_gemm(const Call &call, const Fp8GemmCall &args);
moe4j_status gemm_nt(const Call &call, const moe4j_tensor &a, const moe4j_tensor &b, const moe4j_tensor *c,
                     const moe4j_tensor &d);

// ---- q8_gemm.cu: the CPU kernels' operands, quantization and sums.
moe4j_status quantize_q8_weights(const Call &call, const moe4j_tensor &w, const moe4j_tensor &q,
                                 const moe4j_tensor &scales);
moe4j_status q8_gemm(const Call &call, const moe4j_tensor &a, const moe4j_tensor &b, const moe4j_tensor &sfb,
                     const moe4j_tensor &d);

// ---- expert_ffn.cu: validated operands of the fused expert FFN over the contiguous layout.
struct ExpertFfnCall {
    const moe4j_tensor *x, *sfx;
    const moe4j_fp8_weight_groups *gate, *up, *down;
    int64_t groups, hidden, intermediate;
    const moe4j_tensor *grouped_layout;
    int32_t alignment;
    const moe4j_tensor *d;
};
moe4j_status expert_ffn(const Call &call, const ExpertFfnCall &args);

// ---- dispatch.cu: index in device memory, checked by the kernels.
moe4j_status gather_rows(const Call &call, const moe4j_tensor &src, const moe4j_tensor &index, const moe4j_tensor &dst);
moe4j_status combine_rows(const Call &call, const moe4j_tensor &rows, const moe4j_tensor &index,
                          const moe4j_tensor &weights, const moe4j_tensor *base, const moe4j_tensor &out);

// ---- norm.cu, rope.cu, activation.cu: the CPU kernels' operands and arithmetic (positions in device memory, checked
// by the kernel).
moe4j_status rms_norm(const Call &call, const moe4j_tensor &x, const moe4j_tensor *residual, const moe4j_tensor &weight,
                      float eps, const moe4j_tensor *sum_out, const moe4j_tensor &y);
moe4j_status rope(const Call &call, const moe4j_tensor &x, const moe4j_tensor &positions, const moe4j_tensor &freqs,
                  float rotation_scale, const moe4j_tensor &out);
moe4j_status silu_mul(const Call &call, const moe4j_tensor &gate, const moe4j_tensor &up, const moe4j_tensor &out);

// ---- logits.cu: the CPU kernel's lanes and exponential, one block per row.
moe4j_status logits_stats(const Call &call, const moe4j_tensor &logits, const moe4j_tensor &argmax,
                          const moe4j_tensor &sum_exp);

// ---- mla.cu: block table and lengths (args.max_seqlen is not used: the lengths stay on the device), slot mapping
// checked by the kernels.
moe4j_status mla_decode(const Call &call, const cpu::MlaDecodeArgs &args);
moe4j_status mla_cache_append(const Call &call, const moe4j_tensor &kv, const moe4j_tensor &slot_mapping,
                              const moe4j_tensor &kcache);

}  // namespace moe4j::cuda
