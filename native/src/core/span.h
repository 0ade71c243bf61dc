// A run of objects in someone else's memory (C++17 has no std::span): a kernel's row lists and weight groups, which
// live in the context's workspace.
#pragma once

#include <cstdint>

namespace moe4j {

template <typename T>
struct Span {
    T *data = nullptr;
    int64_t count = 0;

    int64_t size() const { return count; }
    bool empty() const { return count == 0; }
    T &operator[](int64_t i) const { return data[i]; }
    T *begin() const { return data; }
    T *end() const { return data + count; }
};

}  // namespace moe4j
