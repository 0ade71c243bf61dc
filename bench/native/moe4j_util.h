// Small helpers around the moe4j C ABI shared by the subcommands.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "moe4j.h"

namespace bench {

// The FP8 formats' scale block: K elements per activation or weight scale, weight rows per block scale.
inline constexpr int64_t kBlock = 128;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// On a non-zero status prints what failed and moe4j_last_error(), then exits with status 1.
void check(moe4j_status status, const char *call);

const char *isa_name(int32_t isa);
// "scalar", "avx2", "avx512", "avx512_bf16" or "best" (MOE4J_ISA_BEST); false for anything else.
bool parse_isa(const std::string &name, int32_t *isa);

const char *dtype_name(int32_t dtype);
int64_t dtype_size(int32_t dtype);

// A dense row-major [rows, cols] host tensor over `data`.
moe4j_tensor host_tensor_2d(void *data, int32_t dtype, int64_t rows, int64_t cols);
// A dense row-major host tensor of rank 1..MOE4J_MAX_RANK over `data`.
moe4j_tensor host_tensor(void *data, int32_t dtype, std::initializer_list<int64_t> shape);

moe4j_capabilities query_capabilities();

// Owns a CPU context; exits through check() when creation fails.
class Context {
  public:
    Context(int32_t threads, int32_t max_isa, int32_t flags = 0);  // flags: enum moe4j_context_flags
    ~Context();
    Context(const Context &) = delete;
    Context &operator=(const Context &) = delete;

    moe4j_context *get() const { return ctx_; }
    moe4j_context_info info() const;

  private:
    moe4j_context *ctx_ = nullptr;
};

}  // namespace bench
