#include "staging.h"

#include "../core/context.h"
#include "../core/validate.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

namespace moe4j {

moe4j_status HostStaged::stage(const char *function, moe4j_context *ctx, const moe4j_tensor &t) {
    host_ = t;
    if (t.device == MOE4J_HOST_MEMORY) return MOE4J_OK;
    const int64_t bytes = extent_bytes(t);
    storage_.resize(static_cast<size_t>(bytes));
    host_.data = storage_.data();
    host_.size_bytes = bytes;
    host_.device = MOE4J_HOST_MEMORY;
#if MOE4J_WITH_CUDA
    if (bytes > 0) return cuda::copy(function, ctx, storage_.data(), MOE4J_HOST_MEMORY, t.data, t.device, bytes);
#else
    (void)function;
    (void)ctx;
#endif
    return MOE4J_OK;
}

}  // namespace moe4j
