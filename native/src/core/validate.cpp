#include "validate.h"

#include <cstdint>
#include <sstream>

#include "error.h"

namespace moe4j {

const char *dtype_name(int32_t dtype) {
    switch (dtype) {
        case MOE4J_F32: return "F32";
        case MOE4J_BF16: return "BF16";
        case MOE4J_F16: return "F16";
        case MOE4J_E4M3: return "E4M3";
        case MOE4J_I32: return "I32";
        case MOE4J_I64: return "I64";
        case MOE4J_U8: return "U8";
        case MOE4J_E4M3_P32: return "E4M3_P32";
        case MOE4J_Q8_P16: return "Q8_P16";
        default: return "unknown";
    }
}

int64_t dtype_size(int32_t dtype) {
    switch (dtype) {
        case MOE4J_F32:
        case MOE4J_I32: return 4;
        case MOE4J_BF16:
        case MOE4J_F16: return 2;
        case MOE4J_E4M3:
        case MOE4J_E4M3_P32:
        case MOE4J_Q8_P16:
        case MOE4J_U8: return 1;
        case MOE4J_I64: return 8;
        default: return 0;
    }
}

std::string shape_string(const moe4j_tensor &t) {
    std::ostringstream out;
    out << '[';
    for (int i = 0; i < t.rank && i < MOE4J_MAX_RANK; ++i) out << (i ? ", " : "") << t.shape[i];
    out << ']';
    return out.str();
}

namespace {

std::string device_string(int32_t device) {
    return device == MOE4J_HOST_MEMORY ? std::string("host memory") : "CUDA device " + std::to_string(device);
}

std::string hex_string(uintptr_t value) {
    std::ostringstream out;
    out << "0x" << std::hex << value;
    return out.str();
}

}  // namespace

// Bytes spanned from data to one past the last reachable element, or -1 on overflow; 0 for an empty tensor.
// Shapes and strides are non-negative (checked first). One term (shape - 1) * stride is below 2^126, but four of
// them, or one times the element size, overflow even __int128: the sum is bounded after every term.
int64_t extent_bytes(const moe4j_tensor &t) {
    for (int i = 0; i < t.rank; ++i)
        if (t.shape[i] == 0) return 0;
    __int128 last = 0;
    for (int i = 0; i < t.rank; ++i) {
        last += static_cast<__int128>(t.shape[i] - 1) * t.strides[i];
        if (last > INT64_MAX) return -1;
    }
    const __int128 bytes = (last + 1) * dtype_size(t.dtype);
    return bytes > INT64_MAX ? -1 : static_cast<int64_t>(bytes);
}

moe4j_status ArgCheck::invalid(const std::string &message) const {
    return fail(MOE4J_ERROR_INVALID_ARGUMENT, std::string(function_) + ": " + message);
}

moe4j_status ArgCheck::unsupported(const std::string &message) const {
    return fail(MOE4J_ERROR_UNSUPPORTED, std::string(function_) + ": " + message);
}

std::string ArgCheck::argument(const char *name) const {
    std::string label = std::string("argument '") + name + "'";
    if (group_ >= 0) label += ": group " + std::to_string(group_) + (part_ != nullptr ? std::string(" ") + part_ : "");
    return label;
}

moe4j_status ArgCheck::tensor(const moe4j_tensor *t, const TensorRule &rule) const {
    // Messages are built only on failure: the happy path allocates nothing.
    const auto arg = [&] { return argument(rule.name); };
    if (t == nullptr) return invalid(arg() + " is null");
    if (t->reserved != 0) return invalid(arg() + ": reserved field is " + std::to_string(t->reserved) + ", must be 0");
    if (t->rank != rule.rank)
        return invalid(arg() + ": rank " + std::to_string(t->rank) + ", expected " + std::to_string(rule.rank));
    bool dtype_ok = false;
    for (int32_t d : rule.dtypes) dtype_ok |= (d == t->dtype);
    if (!dtype_ok) {
        std::string allowed;
        for (int32_t d : rule.dtypes) allowed += (allowed.empty() ? "" : ", ") + std::string(dtype_name(d));
        return invalid(arg() + ": dtype " + dtype_name(t->dtype) + " (" + std::to_string(t->dtype) +
                       ") is not accepted; expected " + allowed);
    }
    if (t->device != device_)
        return invalid(arg() + ": lives in " + device_string(t->device) + " but this call runs on " +
                       device_string(device_));
    for (int i = 0; i < t->rank; ++i) {
        if (t->shape[i] < 0) return invalid(arg() + ": negative extent in shape " + shape_string(*t));
        if (t->strides[i] < 0)
            return invalid(arg() + ": negative stride " + std::to_string(t->strides[i]) + " in dimension " +
                           std::to_string(i));
    }
    if (t->dtype == MOE4J_E4M3_P32 && device_ != MOE4J_HOST_MEMORY)
        return unsupported(
            arg() + ": E4M3_P32 (packed weights) is a layout of the CPU kernels; CUDA contexts take E4M3 weights");
    if (t->dtype == MOE4J_E4M3_P32 || t->dtype == MOE4J_Q8_P16) {  // the panels' byte layout is the dtype's
        const char *name = dtype_name(t->dtype);
        const int64_t panel_rows = t->dtype == MOE4J_E4M3_P32 ? 32 : 16;
        if (t->rank < 2) return invalid(arg() + ": " + name + " needs [.., N, K], got rank " + std::to_string(t->rank));
        if (t->shape[t->rank - 2] % panel_rows != 0)
            return invalid(arg() + ": " + name + " needs N (" + std::to_string(t->shape[t->rank - 2]) +
                           ") to be a multiple of " + std::to_string(panel_rows) + ", the rows of a panel");
        int64_t dense = 1;
        for (int i = t->rank - 1; i >= 0; --i) {
            if (t->shape[i] > 1 && t->strides[i] != dense)
                return invalid(arg() + ": " + name + " needs contiguous strides; dimension " + std::to_string(i) +
                               " has stride " + std::to_string(t->strides[i]) + ", expected " + std::to_string(dense));
            if (__builtin_mul_overflow(dense, t->shape[i], &dense))
                return invalid(arg() + ": shape " + shape_string(*t) + " has more than 2^63 - 1 elements");
        }
    }
    if (rule.layout == Layout::RowsDense && t->strides[t->rank - 1] != 1 && t->shape[t->rank - 1] > 1)
        return invalid(arg() + ": innermost stride is " + std::to_string(t->strides[t->rank - 1]) +
                       ", must be 1 (rows must be contiguous)");
    int64_t elements = 1;  // broadcast (zero-stride) views are small in memory but must still be countable
    for (int i = 0; i < t->rank; ++i)
        if (__builtin_mul_overflow(elements, t->shape[i], &elements))
            return invalid(arg() + ": shape " + shape_string(*t) + " has more than 2^63 - 1 elements");
    const int64_t extent = extent_bytes(*t);
    if (extent < 0) return invalid(arg() + ": shape and strides overflow 64-bit byte offsets");
    if (extent > 0 && t->data == nullptr)
        return invalid(arg() + ": data pointer is null for shape " + shape_string(*t));
    const auto address = reinterpret_cast<uintptr_t>(t->data);
    if (address % static_cast<uintptr_t>(dtype_size(t->dtype)) != 0)
        return invalid(arg() + ": data address " + hex_string(address) + " is not aligned to its " +
                       std::to_string(dtype_size(t->dtype)) + "-byte " + dtype_name(t->dtype) + " elements");
    if (t->size_bytes < extent)
        return invalid(arg() + ": buffer holds " + std::to_string(t->size_bytes) + " bytes but shape " +
                       shape_string(*t) + " with its strides reaches " + std::to_string(extent) + " bytes");
    return MOE4J_OK;
}

moe4j_status ArgCheck::shape(const moe4j_tensor &t, const char *name, std::initializer_list<int64_t> expected,
                             const char *why) const {
    bool same = static_cast<int64_t>(expected.size()) == t.rank;
    int i = 0;
    for (int64_t e : expected) same = same && t.shape[i++] == e;
    if (same) return MOE4J_OK;
    std::ostringstream want;
    want << '[';
    i = 0;
    for (int64_t e : expected) want << (i++ ? ", " : "") << e;
    want << ']';
    return invalid(argument(name) + ": shape " + shape_string(t) + " but expected " + want.str() +
                   (*why ? std::string(" (") + why + ")" : std::string()));
}

moe4j_status ArgCheck::same_shape(const moe4j_tensor &a, const char *a_name, const moe4j_tensor &b,
                                  const char *b_name) const {
    bool same = a.rank == b.rank;
    for (int i = 0; same && i < a.rank; ++i) same = a.shape[i] == b.shape[i];
    if (same) return MOE4J_OK;
    return invalid(argument(b_name) + ": shape " + shape_string(b) + " differs from '" + a_name + "' shape " +
                   shape_string(a));
}

namespace {

// Whether two views of rows (rank 2, innermost stride 1) with the same positive row pitch in bytes share a byte: row i
// of a spans [i·pitch, i·pitch + wa) and row j of b [d + j·pitch, d + j·pitch + wb), d = b - a. They meet iff some
// k = i - j in [-(rows_b - 1), rows_a - 1] has d - wa < k·pitch < d + wb. Such views interleave when gate and up are
// the two halves of one stacked [T, 2N] buffer.
bool rows_overlap(const moe4j_tensor &a, const moe4j_tensor &b) {
    const __int128 pitch = static_cast<__int128>(a.strides[0]) * dtype_size(a.dtype);
    const __int128 wa = static_cast<__int128>(a.shape[1]) * dtype_size(a.dtype);
    const __int128 wb = static_cast<__int128>(b.shape[1]) * dtype_size(b.dtype);
    const __int128 d = static_cast<__int128>(reinterpret_cast<uintptr_t>(b.data)) -
                       static_cast<__int128>(reinterpret_cast<uintptr_t>(a.data));
    // the smallest k with k·pitch > d - wa (floor division rounding toward minus infinity), then within the range
    const __int128 low = d - wa;
    __int128 k = low / pitch;
    if (k * pitch > low) --k;
    k = std::max<__int128>(k + 1, -(static_cast<__int128>(b.shape[0]) - 1));
    return k <= a.shape[0] - 1 && k * pitch < d + wb;
}

bool same_row_pitch(const moe4j_tensor &a, const moe4j_tensor &b) {
    return a.rank == 2 && b.rank == 2 && a.strides[1] == 1 && b.strides[1] == 1 && a.strides[0] > 0 &&
           static_cast<__int128>(a.strides[0]) * dtype_size(a.dtype) ==
               static_cast<__int128>(b.strides[0]) * dtype_size(b.dtype);
}

}  // namespace

moe4j_status ArgCheck::no_overlap(const moe4j_tensor &output, const char *output_name, const moe4j_tensor &other,
                                  const char *other_name) const {
    const int64_t a_len = extent_bytes(output), b_len = extent_bytes(other);
    if (a_len == 0 || b_len == 0 || output.device != other.device) return MOE4J_OK;
    const auto a = reinterpret_cast<uintptr_t>(output.data), b = reinterpret_cast<uintptr_t>(other.data);
    const bool ranges_meet = a < b + static_cast<uintptr_t>(b_len) && b < a + static_cast<uintptr_t>(a_len);
    if (ranges_meet && (!same_row_pitch(output, other) || rows_overlap(output, other)))
        return invalid(std::string("output '") + output_name + "' overlaps '" + other_name + "'" +
                       (group_ >= 0 ? " (group " + std::to_string(group_) +
                                          (part_ != nullptr ? std::string(" ") + part_ : "") + ")"
                                    : std::string()) +
                       " in memory");
    return MOE4J_OK;
}

bool same_view(const moe4j_tensor &a, const moe4j_tensor &b) {
    if (a.data != b.data || a.dtype != b.dtype || a.rank != b.rank || a.device != b.device) return false;
    for (int i = 0; i < a.rank; ++i)
        if (a.shape[i] != b.shape[i] || a.strides[i] != b.strides[i]) return false;
    return true;
}

}  // namespace moe4j
