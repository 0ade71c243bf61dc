// Thread-local error reporting: the only mutable state moe4j keeps outside a context.
#pragma once

#include <string>

#include "moe4j.h"

namespace moe4j {

// Records message as the calling thread's last error and returns status, so a check reads
// `return fail(MOE4J_ERROR_INVALID_ARGUMENT, ...)`.
moe4j_status fail(moe4j_status status, const std::string &message);

// Clears the calling thread's last error; every entry point calls it first.
void clear_error();

// Runs body(function), turning any escaping C++ exception into a status with a message: nothing throws
// across the ABI. The body gets the entry point's name for its messages (__func__ inside a lambda is
// "operator()").
template <typename Body>
moe4j_status guarded(const char *function, Body &&body) {
    clear_error();
    try {
        return body(function);
    } catch (const std::bad_alloc &) {
        return fail(MOE4J_ERROR_OUT_OF_MEMORY, std::string(function) + ": out of host memory");
    } catch (const std::exception &e) {
        return fail(MOE4J_ERROR_INTERNAL, std::string(function) + ": internal error: " + e.what());
    }
}

}  // namespace moe4j
