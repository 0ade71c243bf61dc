// A context's host workspace: the temporaries of one kernel call (rows staged as floats, per-thread tiles, row and
// task lists), taken by bumping a pointer. A kernel call starts with begin_call(), which gives back everything the
// previous call took; what a call takes stays valid until then. Nothing is returned to the system between calls:
// when a call needs more than the memory held, a block is added, and the next call that starts with several blocks
// replaces them with one as large as the most any call took. A call whose sizes have been seen before allocates
// nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "error.h"

namespace moe4j {

class AllocationFaults;

class Workspace {
  public:
    explicit Workspace(AllocationFaults &faults) : faults_(faults) {}

    // Starts a call: everything taken so far may be reused.
    void begin_call() {
        block_ = 0;
        used_ = 0;
        call_bytes_ = 0;
    }

    // Room for `count` objects of T, uninitialized, on a cache line (64-byte) boundary. When the workspace cannot
    // grow (or an injected fault says so) throws OutOfMemory naming `what` and the size; what was taken stays valid.
    template <typename T>
    T *take(int64_t count, const char *what) {
        static_assert(std::is_trivially_destructible_v<T>, "the workspace never runs destructors");
        static_assert(alignof(T) <= kAlignment);
        return static_cast<T *>(take_bytes(static_cast<size_t>(count) * sizeof(T), what));
    }

    // Bytes held, for tests.
    size_t held_bytes() const;

  private:
    static constexpr size_t kAlignment = 64;
    struct Free {
        void operator()(unsigned char *p) const { ::operator delete (p, std::align_val_t{kAlignment}); }
    };
    struct Block {
        std::unique_ptr<unsigned char[], Free> memory;
        size_t size;
    };

    void *take_bytes(size_t bytes, const char *what);
    // Replaces several blocks by one of most_ bytes, when that memory is to be had.
    void consolidate();

    AllocationFaults &faults_;
    std::vector<Block> blocks_;
    size_t block_ = 0;       // the block takes come from
    size_t used_ = 0;        // bytes taken from it
    size_t call_bytes_ = 0;  // bytes the current call took
    size_t most_ = 0;        // the most bytes any call took
};

}  // namespace moe4j
