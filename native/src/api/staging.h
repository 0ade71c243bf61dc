// Small integer operands the validation must read (group layouts, row counts, block tables, lengths, slot maps):
// read in place from host memory, copied to host first when a CUDA context passes them in device memory.
#pragma once

#include <vector>

#include "moe4j.h"

struct moe4j_context;

namespace moe4j {

class HostStaged {
  public:
    // Makes tensor() a host view of t (t itself when it is host memory). t must have passed validation.
    moe4j_status stage(const char *function, moe4j_context *ctx, const moe4j_tensor &t);
    const moe4j_tensor &tensor() const { return host_; }

  private:
    std::vector<char> storage_;
    moe4j_tensor host_{};
};

}  // namespace moe4j
