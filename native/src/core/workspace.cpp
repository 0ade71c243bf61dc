#include "workspace.h"

#include <algorithm>
#include <limits>
#include <new>
#include <string>

#include "context.h"

namespace moe4j {

size_t Workspace::held_bytes() const {
    size_t bytes = 0;
    for (const Block &b : blocks_) bytes += b.size;
    return bytes;
}

void *Workspace::take_bytes(size_t bytes, const char *what) {
    if (bytes > std::numeric_limits<size_t>::max() / 4)
        throw OutOfMemory("cannot allocate " + std::to_string(bytes) + " bytes of host scratch for " + what);
    bytes = (std::max<size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
    if (call_bytes_ == 0 && blocks_.size() > 1) consolidate();
    call_bytes_ += bytes;
    most_ = std::max(most_, call_bytes_);
    for (; block_ < blocks_.size(); ++block_, used_ = 0)
        if (blocks_[block_].size - used_ >= bytes) {
            unsigned char *p = blocks_[block_].memory.get() + used_;
            used_ += bytes;
            return p;
        }
    // A new block: at least what this call has taken so far, so that a call needs few of them.
    constexpr size_t kMinBlock = size_t{256} << 10;
    const size_t size =
        std::max({bytes, kMinBlock, blocks_.empty() ? most_ : std::max(call_bytes_, blocks_.back().size)});
    const std::string wanted = std::to_string(size) + " bytes of host scratch for " + what;
    if (faults_.next_fails()) {
        call_bytes_ -= bytes;
        throw OutOfMemory("cannot allocate " + wanted + " (injected fault)");
    }
    auto *memory = static_cast<unsigned char *>(::operator new (size, std::align_val_t{kAlignment}, std::nothrow));
    if (memory == nullptr) {
        call_bytes_ -= bytes;
        throw OutOfMemory("cannot allocate " + wanted);
    }
    blocks_.push_back({std::unique_ptr<unsigned char[], Free>(memory), size});
    block_ = blocks_.size() - 1;
    used_ = bytes;
    return memory;
}

void Workspace::consolidate() {
    // Best effort, and not an allocation the fault injection counts: when the memory is not to be had, the call
    // goes on with the blocks it has.
    auto *memory = static_cast<unsigned char *>(::operator new (most_, std::align_val_t{kAlignment}, std::nothrow));
    if (memory == nullptr) return;
    blocks_.clear();
    blocks_.push_back({std::unique_ptr<unsigned char[], Free>(memory), most_});
    block_ = 0;
    used_ = 0;
}

}  // namespace moe4j
