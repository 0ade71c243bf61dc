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

}  // namespace moe4j::cuda
