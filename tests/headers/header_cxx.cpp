// tlm.h must compile alone as C++ with every warning an error, and its
// functions must link with C linkage from C++.
#include "tlm.h"

int main() {
    tlm_context *ctx = nullptr;
    if (tlm_context_create(&ctx, nullptr) != TLM_OK)
        return 1;
    const int threads = tlm_context_thread_count(ctx);
    tlm_context_free(ctx);
    return threads >= 1 && tlm_version_number() == TLM_VERSION_NUMBER ? 0 : 1;
}
