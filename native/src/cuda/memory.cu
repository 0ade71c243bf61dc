// Device memory and copies for CUDA contexts.
#include <cuda_runtime.h>

#include <string>

#include "../core/context.h"
#include "../core/error.h"
#include "cuda_backend.h"
#include "cuda_state.h"

namespace moe4j::cuda {

moe4j_status alloc(const char *function, moe4j_context *ctx, int64_t bytes, void **out) {
    if (moe4j_status s = check(function, cudaSetDevice(ctx->device))) return s;
    return check(function, cudaMalloc(out, static_cast<size_t>(bytes)));
}

moe4j_status free(const char *function, moe4j_context *ctx, void *ptr) {
    if (moe4j_status s = check(function, cudaSetDevice(ctx->device))) return s;
    return check(function, cudaFree(ptr));
}

// Enables peer access from the context's device to `peer` once; a pair that cannot is copied through host memory by
// cudaMemcpyPeerAsync itself.
static void enable_peer(int device, int peer) {
    int can = 0;
    if (cudaDeviceCanAccessPeer(&can, device, peer) != cudaSuccess || !can) return;
    if (cudaDeviceEnablePeerAccess(peer, 0) == cudaErrorPeerAccessAlreadyEnabled) cudaGetLastError();
}

moe4j_status copy(const char *function, moe4j_context *ctx, void *dst, int32_t dst_device, const void *src,
                  int32_t src_device, int64_t bytes) {
    if (moe4j_status s = check(function, cudaSetDevice(ctx->device))) return s;
    cudaStream_t stream = ctx->cuda->stream;
    const size_t n = static_cast<size_t>(bytes);
    cudaError_t err;
    if (dst_device >= 0 && src_device >= 0 && dst_device != src_device) {
        enable_peer(ctx->device, dst_device == ctx->device ? src_device : dst_device);
        err = cudaMemcpyPeerAsync(dst, dst_device, src, src_device, n, stream);
    } else {
        err = cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, stream);
    }
    if (moe4j_status s = check(function, err)) return s;
    return check(function, cudaStreamSynchronize(stream));
}

moe4j_status synchronize(const char *function, moe4j_context *ctx) {
    if (moe4j_status s = check(function, cudaSetDevice(ctx->device))) return s;
    return check(function, cudaStreamSynchronize(ctx->cuda->stream));
}

}  // namespace moe4j::cuda
