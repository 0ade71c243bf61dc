// CUDA side of a context: device selection and the context's stream.
#include <cuda_runtime.h>

#include <string>

#include "../core/context.h"
#include "../core/error.h"
#include "cuda_backend.h"
#include "cuda_state.h"

namespace moe4j::cuda {

int device_count() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no driver" error so later calls start clean
        return 0;
    }
    return count;
}

moe4j_status attach(const char *function, moe4j_context *ctx) {
    cudaError_t err = cudaSetDevice(ctx->device);
    auto state = new DeviceState();
    if (err == cudaSuccess) err = cudaStreamCreateWithFlags(&state->stream, cudaStreamNonBlocking);
    int major = 0, minor = 0;
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, ctx->device);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, ctx->device);
    if (err == cudaSuccess)
        err = cudaDeviceGetAttribute(&state->multiprocessors, cudaDevAttrMultiProcessorCount, ctx->device);
    if (err == cudaSuccess)
        err =
            cudaDeviceGetAttribute(&state->max_shared_per_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, ctx->device);
    state->compute_capability = major * 10 + minor;
    if (err != cudaSuccess) {
        if (state->stream != nullptr) cudaStreamDestroy(state->stream);
        delete state;
        return fail(MOE4J_ERROR_BACKEND, std::string(function) + ": CUDA device " + std::to_string(ctx->device) + ": " +
                                             cudaGetErrorString(err));
    }
    ctx->cuda = state;
    return MOE4J_OK;
}

void detach(moe4j_context *ctx) {
    if (ctx->cuda == nullptr) return;
    cudaSetDevice(ctx->device);
    cudaStreamDestroy(ctx->cuda->stream);
    delete ctx->cuda;
    ctx->cuda = nullptr;
}

}  // namespace moe4j::cuda
