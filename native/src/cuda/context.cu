// CUDA side of a context: its device, stream, completion event, fault record and scratch; the device guard and error
// checks every call runs under (run_body).
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "../core/context.h"
#include "../core/device_guard.h"
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

namespace {

// Frees what attach() created in `state` (those parts that exist); the context's device is current.
void release(DeviceState *state) {
    if (state->stream != nullptr) {
        cudaStreamSynchronize(state->stream);
        if (state->scratch != nullptr) {
            if (state->memory_pools)
                cudaFreeAsync(state->scratch, state->stream);
            else
                cudaFree(state->scratch);
            cudaStreamSynchronize(state->stream);
        }
        cudaStreamDestroy(state->stream);
    }
    if (state->done != nullptr) cudaEventDestroy(state->done);
    if (state->fault != nullptr) cudaFree(state->fault);
    if (state->fault_host != nullptr) cudaFreeHost(state->fault_host);
    cudaGetLastError();
    delete state;
}

cudaError_t create(DeviceState *state, int device) {
    cudaError_t err = cudaStreamCreateWithFlags(&state->stream, cudaStreamNonBlocking);
    if (err == cudaSuccess) err = cudaEventCreateWithFlags(&state->done, cudaEventDisableTiming);
    if (err == cudaSuccess) err = cudaMalloc(&state->fault, sizeof(DeviceFault));
    if (err == cudaSuccess) err = cudaMemset(state->fault, 0, sizeof(DeviceFault));
    if (err == cudaSuccess) err = cudaMallocHost(&state->fault_host, sizeof(DeviceFault));
    if (err == cudaSuccess) *state->fault_host = DeviceFault{};
    int major = 0, minor = 0, pools = 0;
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    if (err == cudaSuccess)
        err = cudaDeviceGetAttribute(&state->multiprocessors, cudaDevAttrMultiProcessorCount, device);
    if (err == cudaSuccess)
        err = cudaDeviceGetAttribute(&state->max_shared_per_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device);
    if (err == cudaSuccess) err = cudaDeviceSynchronize();  // the record's cudaMemset is complete before any kernel
    state->compute_capability = major * 10 + minor;
    state->memory_pools = pools != 0;
    return err;
}

// The message of a fault the kernels recorded, as the host-side validation of a CPU context words it.
std::string describe(const DeviceFault &f) {
    const auto n = [&](int i) { return std::to_string(f.v[i]); };
    std::string function = f.function != 0 ? reinterpret_cast<const char *>(static_cast<uintptr_t>(f.function)) : "?";
    std::string what;
    switch (static_cast<Fault>(f.fault)) {
        case Fault::GatherIndex:
            what = "argument 'index': entry " + n(0) + " is " + n(1) + ", outside [-1, " + n(2) + ") (rows of 'src')";
            break;
        case Fault::CombineIndex:
            what = "argument 'index': entry " + n(0) + ", " + n(1) + " is " + n(2) + ", outside [-1, " + n(3) +
                   ") (rows of 'rows')";
            break;
        case Fault::LayoutGroup:
            what = "argument 'grouped_layout': row " + n(0) + " has group " + n(1) + ", outside [-1, " + n(2) + ")";
            break;
        case Fault::LayoutMixed:
            what = "argument 'grouped_layout': rows " + n(0) + ".." + std::to_string(f.v[0] + f.v[1] - 1) +
                   " form one alignment block but hold groups " + n(4) + " and " + n(3) + " (row " + n(2) + ")";
            break;
        case Fault::MaskedCount:
            what = "argument 'masked_m': group " + n(0) + " has " + n(1) + " rows, outside [0, " + n(2) + "]";
            break;
        case Fault::SeqlenNegative: what = "argument 'cache_seqlens': sequence " + n(0) + " has length " + n(1); break;
        case Fault::SeqlenTooLong:
            what = "argument 'cache_seqlens': sequence " + n(0) + " has " + n(1) + " tokens, more than its " + n(2) +
                   " block-table entries hold (" + std::to_string(f.v[2] * cpu::kMlaBlockTokens) + ")";
            break;
        case Fault::BlockId:
            what = "argument 'block_table': sequence " + n(0) + ", entry " + n(1) + " is block " + n(2) +
                   ", outside [0, " + n(3) + ")";
            break;
        case Fault::SlotRange:
            what = "argument 'slot_mapping': token " + n(0) + " maps to slot " + n(1) + ", outside [-1, " + n(2) + ")";
            break;
        case Fault::SlotTwice:
            what = "argument 'slot_mapping': slot " + n(0) + " is given to two tokens (" + n(1) + " and " + n(2) + ")";
            break;
        case Fault::PositionNegative:
            what = "argument 'positions': entry " + n(0) + " is " + n(1) + ", must be >= 0";
            break;
        default: what = "unknown device fault " + std::to_string(f.fault); break;
    }
    return function + ": " + what;
}

// Reports, once, what work enqueued by earlier calls left behind, if that work has finished (never waits): a CUDA
// error raised while it ran (MOE4J_ERROR_BACKEND), or the first argument fault its kernels recorded
// (MOE4J_ERROR_INVALID_ARGUMENT). The fault mirror is read only when the latest call's event is complete: every copy
// into it precedes that event on the stream, so none can still overwrite it.
moe4j_status check_earlier(const char *fn, moe4j_context *ctx) {
    DeviceState &s = *ctx->cuda;
    if (!s.pending) return MOE4J_OK;
    const cudaError_t err = cudaEventQuery(s.done);
    if (err == cudaErrorNotReady) return MOE4J_OK;
    s.pending = false;
    if (err != cudaSuccess) {
        cudaGetLastError();
        return fail(MOE4J_ERROR_BACKEND,
                    std::string(fn) +
                        ": an earlier call on this context failed on the device: CUDA: " + cudaGetErrorString(err));
    }
    if (s.fault_host->fault == 0) return MOE4J_OK;
    const std::string message = describe(*s.fault_host);
    *s.fault_host = DeviceFault{};
    // Cleared in stream order, after every kernel that could have written it (all of them finished).
    if (moe4j_status status = check(fn, cudaMemsetAsync(s.fault, 0, sizeof(DeviceFault), s.stream))) return status;
    return fail(MOE4J_ERROR_INVALID_ARGUMENT, std::string(fn) + ": an earlier call failed on the device: " + message);
}

// After a call's body: launch errors, then the fault record's copy-back (when its kernels checked arguments) and the
// completion event that check_earlier looks at. Runs whether or not the body failed (it may have enqueued work).
moe4j_status after_call(const char *fn, moe4j_context *ctx) {
    DeviceState &s = *ctx->cuda;
    moe4j_status status = check(fn, cudaGetLastError());
    if (s.fault_used) {
        s.fault_used = false;
        // fault_host is page-locked, so the copy is asynchronous; it is read only after `done` completes.
        const moe4j_status copied =
            check(fn, cudaMemcpyAsync(s.fault_host, s.fault, sizeof(DeviceFault), cudaMemcpyDeviceToHost, s.stream));
        if (status == MOE4J_OK) status = copied;
    }
    const moe4j_status recorded = check(fn, cudaEventRecord(s.done, s.stream));
    if (recorded == MOE4J_OK) s.pending = true;
    return status != MOE4J_OK ? status : recorded;
}

}  // namespace

moe4j_status attach(const char *function, moe4j_context *ctx) {
    const auto failure = [&](cudaError_t err) {
        cudaGetLastError();
        return fail(MOE4J_ERROR_BACKEND, std::string(function) + ": CUDA device " + std::to_string(ctx->device) + ": " +
                                             cudaGetErrorString(err));
    };
    CudaDevices devices;
    auto state = new DeviceState();
    bool created = false;
    const moe4j_status status = on_device(
        devices, ctx->device,
        [&]() -> moe4j_status {
            const cudaError_t err = create(state, ctx->device);
            if (err != cudaSuccess) return failure(err);
            created = true;
            return MOE4J_OK;
        },
        failure);
    if (status == MOE4J_OK) {
        ctx->cuda = state;
        return MOE4J_OK;
    }
    if (created || state->stream != nullptr || state->fault != nullptr || state->fault_host != nullptr) {
        // create() failed part way, or the previous device could not be made current again after it: release what
        // exists with the context's device current (CUDA frees by the allocation's own device anyway).
        CudaDevices again;
        on_device(
            again, ctx->device,
            [&]() -> moe4j_status {
                release(state);
                return MOE4J_OK;
            },
            [&](cudaError_t) {
                release(state);
                return MOE4J_OK;
            });
    } else {
        delete state;
    }
    cudaGetLastError();
    return status;
}

void detach(moe4j_context *ctx) {
    if (ctx->cuda == nullptr) return;
    CudaDevices devices;
    on_device(
        devices, ctx->device,
        [&]() -> moe4j_status {
            release(ctx->cuda);
            return MOE4J_OK;
        },
        [&](cudaError_t) {
            delete ctx->cuda;  // the device cannot be made current: its resources go with the process
            return MOE4J_OK;
        });
    ctx->cuda = nullptr;
    cudaGetLastError();
}

moe4j_status run_body(const char *function, moe4j_context *ctx, bool pending_errors, CallBody body, void *closure) {
    CudaDevices devices;
    return on_device(
        devices, ctx->device,
        [&]() -> moe4j_status {
            if (pending_errors)
                if (moe4j_status s = check_earlier(function, ctx)) return s;
            const moe4j_status status = body(Call(function, ctx), closure);
            const moe4j_status after = after_call(function, ctx);
            return status != MOE4J_OK ? status : after;
        },
        [&](cudaError_t err) {
            cudaGetLastError();
            return fail(MOE4J_ERROR_BACKEND, std::string(function) + ": CUDA: cannot make device " +
                                                 std::to_string(ctx->device) + " current: " + cudaGetErrorString(err));
        });
}

moe4j_status wait_and_report(const Call &call) {
    const cudaError_t err = cudaStreamSynchronize(stream(call));
    if (err != cudaSuccess) {
        state(call).pending = false;
        cudaGetLastError();
        return fail(MOE4J_ERROR_BACKEND,
                    std::string(call.function()) +
                        ": an earlier call on this context failed on the device: CUDA: " + cudaGetErrorString(err));
    }
    return check_earlier(call.function(), call.ctx());  // `done` is complete now: never NotReady
}

moe4j_status Scratch::reserve(const Call &call) {
    DeviceState &s = state(call);
    if (bytes_ > s.scratch_bytes) {
        constexpr size_t kGranule = size_t{1} << 20;
        const size_t grown = std::max(bytes_, s.scratch_bytes + s.scratch_bytes / 2);
        const size_t bytes = (grown + kGranule - 1) / kGranule * kGranule;
        const char *fn = call.function();
        if (call.ctx()->allocation_faults.next_fails())
            return fail(MOE4J_ERROR_OUT_OF_MEMORY, std::string(fn) + ": cannot allocate " + std::to_string(bytes) +
                                                       " bytes of device scratch (injected fault)");
        if (s.memory_pools) {
            if (s.scratch != nullptr)
                if (moe4j_status st = check(fn, cudaFreeAsync(s.scratch, s.stream))) return st;
            s.scratch = nullptr;
            s.scratch_bytes = 0;
            const cudaError_t err = cudaMallocAsync(&s.scratch, bytes, s.stream);
            if (err != cudaSuccess) {
                s.scratch = nullptr;
                cudaGetLastError();
                return fail(MOE4J_ERROR_OUT_OF_MEMORY, std::string(fn) + ": cannot allocate " + std::to_string(bytes) +
                                                           " bytes of device scratch: " + cudaGetErrorString(err));
            }
        } else {
            if (moe4j_status st = check(fn, cudaStreamSynchronize(s.stream))) return st;
            if (s.scratch != nullptr)
                if (moe4j_status st = check(fn, cudaFree(s.scratch))) return st;
            s.scratch = nullptr;
            s.scratch_bytes = 0;
            const cudaError_t err = cudaMalloc(&s.scratch, bytes);
            if (err != cudaSuccess) {
                s.scratch = nullptr;
                cudaGetLastError();
                return fail(MOE4J_ERROR_OUT_OF_MEMORY, std::string(fn) + ": cannot allocate " + std::to_string(bytes) +
                                                           " bytes of device scratch: " + cudaGetErrorString(err));
            }
        }
        s.scratch_bytes = bytes;
    }
    base_ = static_cast<char *>(s.scratch);
    return MOE4J_OK;
}

}  // namespace moe4j::cuda
