// The CUDA backend's entry into the shared context code. Only libmoe4j_cuda links an implementation.
#pragma once

#include "moe4j.h"

struct moe4j_context;

namespace moe4j::cuda {

// Usable CUDA devices; 0 when the driver is missing or reports none.
int device_count();

// Selects the device and creates the context's stream; records an error message on failure.
moe4j_status attach(const char *function, moe4j_context *ctx);

// Releases what attach() created.
void detach(moe4j_context *ctx);

// Memory (memory.cu). Each returns MOE4J_OK or records the CUDA error for `function`.
moe4j_status alloc(const char *function, moe4j_context *ctx, int64_t bytes, void **out);
moe4j_status free(const char *function, moe4j_context *ctx, void *ptr);
// Copies bytes between any two of host memory (device -1) and CUDA devices, on the context's stream, and waits.
moe4j_status copy(const char *function, moe4j_context *ctx, void *dst, int32_t dst_device, const void *src,
                  int32_t src_device, int64_t bytes);
moe4j_status synchronize(const char *function, moe4j_context *ctx);

}  // namespace moe4j::cuda
