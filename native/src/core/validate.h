// Argument validation shared by every entry point. Each check names the function and the argument
// in its message and runs before any memory behind a descriptor is read or written.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "moe4j.h"

namespace moe4j {

const char *dtype_name(int32_t dtype);
int64_t dtype_size(int32_t dtype);  // bytes per element; 0 for an unknown dtype
std::string shape_string(const moe4j_tensor &t);
// Bytes spanned from data to one past the last reachable element, or -1 on overflow; 0 for an empty tensor.
int64_t extent_bytes(const moe4j_tensor &t);

enum class Layout {
    Strided,   // any non-negative strides
    RowsDense  // innermost stride 1 (rows may be padded)
};

// What an argument must look like. device is the memory the kernel will touch (MOE4J_HOST_MEMORY or a
// CUDA ordinal).
struct TensorRule {
    const char *name;
    std::initializer_list<int32_t> dtypes;
    int32_t rank;
    Layout layout;
};

class ArgCheck {
  public:
    ArgCheck(const char *function, int32_t device) : function_(function), device_(device) {}

    // The same checks for group g of a weight-groups argument: messages read "argument 'b': group 3: ...", or
    // "argument 'b': group 3 scales: ..." with part "scales".
    ArgCheck group(int64_t g, const char *part = nullptr) const {
        ArgCheck scoped = *this;
        scoped.group_ = g;
        scoped.part_ = part;
        return scoped;
    }

    // Null, reserved field, rank, dtype, device, shape, strides, data pointer, alignment and buffer size.
    moe4j_status tensor(const moe4j_tensor *t, const TensorRule &rule) const;
    // t's shape equals expected; `why` explains where the expectation comes from (may be empty).
    moe4j_status shape(const moe4j_tensor &t, const char *name, std::initializer_list<int64_t> expected,
                       const char *why) const;
    // a and b have the same rank and extents.
    moe4j_status same_shape(const moe4j_tensor &a, const char *a_name, const moe4j_tensor &b, const char *b_name) const;
    // Output's bytes must not overlap other's bytes: exact for two views of rows with the same row pitch (interleaved
    // halves of one buffer pass), conservative otherwise (the address ranges must not meet).
    moe4j_status no_overlap(const moe4j_tensor &output, const char *output_name, const moe4j_tensor &other,
                            const char *other_name) const;
    moe4j_status invalid(const std::string &message) const;
    moe4j_status unsupported(const std::string &message) const;

    const char *function() const { return function_; }
    // "argument 'name'", followed by ": group g" for a group-scoped check.
    std::string argument(const char *name) const;

  private:
    const char *function_;
    int32_t device_;
    int64_t group_ = -1;
    const char *part_ = nullptr;
};

// a and b describe the very same elements: data, dtype, rank, shape and strides equal (an in-place operand).
bool same_view(const moe4j_tensor &a, const moe4j_tensor &b);

// a >= 0, b > 0; no overflow for any a (an extent of a zero-stride view may be near INT64_MAX).
inline int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

}  // namespace moe4j
