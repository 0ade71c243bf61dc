#include "moe4j_util.h"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace bench {

void check(moe4j_status status, const char *call) {
    if (status == MOE4J_OK) return;
    std::fprintf(stderr, "error: %s returned status %d: %s\n", call, static_cast<int>(status), moe4j_last_error());
    std::exit(1);
}

const char *isa_name(int32_t isa) {
    switch (isa) {
        case MOE4J_ISA_SCALAR: return "scalar";
        case MOE4J_ISA_AVX2: return "avx2";
        case MOE4J_ISA_AVX512: return "avx512";
        case MOE4J_ISA_AVX512_BF16: return "avx512_bf16";
        case MOE4J_ISA_BEST: return "best";
        default: return "unknown";
    }
}

bool parse_isa(const std::string &name, int32_t *isa) {
    const int32_t candidates[] = {MOE4J_ISA_SCALAR, MOE4J_ISA_AVX2, MOE4J_ISA_AVX512, MOE4J_ISA_AVX512_BF16,
                                  MOE4J_ISA_BEST};
    for (int32_t candidate : candidates) {
        if (name == isa_name(candidate)) {
            *isa = candidate;
            return true;
        }
    }
    return false;
}

const char *dtype_name(int32_t dtype) {
    switch (dtype) {
        case MOE4J_F32: return "f32";
        case MOE4J_BF16: return "bf16";
        case MOE4J_F16: return "f16";
        case MOE4J_E4M3: return "e4m3";
        case MOE4J_I32: return "i32";
        case MOE4J_I64: return "i64";
        case MOE4J_U8: return "u8";
        case MOE4J_E4M3_P32: return "e4m3_p32";
        case MOE4J_Q8_P16: return "q8_p16";
        default: return "unknown";
    }
}

int64_t dtype_size(int32_t dtype) {
    switch (dtype) {
        case MOE4J_F32:
        case MOE4J_I32: return 4;
        case MOE4J_BF16:
        case MOE4J_F16: return 2;
        case MOE4J_I64: return 8;
        default: return 1;
    }
}

moe4j_tensor host_tensor_2d(void *data, int32_t dtype, int64_t rows, int64_t cols) {
    return host_tensor(data, dtype, {rows, cols});
}

moe4j_tensor host_tensor(void *data, int32_t dtype, std::initializer_list<int64_t> shape) {
    if (shape.size() < 1 || shape.size() > MOE4J_MAX_RANK) throw std::invalid_argument("host_tensor: bad rank");
    moe4j_tensor t{};
    t.data = data;
    t.dtype = dtype;
    t.rank = static_cast<int32_t>(shape.size());
    t.device = MOE4J_HOST_MEMORY;
    t.reserved = 0;
    int64_t elements = 1;
    for (int i = t.rank - 1; i >= 0; --i) {
        t.shape[i] = shape.begin()[i];
        t.strides[i] = elements;
        elements *= t.shape[i];
    }
    t.size_bytes = elements * dtype_size(dtype);
    return t;
}

moe4j_capabilities query_capabilities() {
    moe4j_capabilities caps{};
    check(moe4j_query_capabilities(&caps), "moe4j_query_capabilities");
    return caps;
}

Context::Context(int32_t threads, int32_t max_isa, int32_t flags) {
    moe4j_context_options options{};
    options.backend = MOE4J_BACKEND_CPU;
    options.device = 0;
    options.threads = threads;
    options.max_isa = max_isa;
    options.flags = flags;
    check(moe4j_context_create(&options, &ctx_), "moe4j_context_create");
}

Context::~Context() { moe4j_context_destroy(ctx_); }

moe4j_context_info Context::info() const {
    moe4j_context_info info{};
    check(moe4j_context_query(ctx_, &info), "moe4j_context_query");
    return info;
}

}  // namespace bench
