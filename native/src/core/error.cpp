#include "error.h"

namespace moe4j {
namespace {
thread_local std::string last_error;
}

moe4j_status fail(moe4j_status status, const std::string &message) {
    last_error = message;
    return status;
}

void clear_error() { last_error.clear(); }

}  // namespace moe4j

extern "C" const char *moe4j_last_error(void) { return moe4j::last_error.c_str(); }
