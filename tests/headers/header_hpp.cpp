// tlm.hpp must compile alone as C++17 and as C++20 with every warning an
// error (old-style casts and 0 as a null pointer included), and a context
// must come and go.
#include "tlm.hpp"

int main() {
    try {
        tlm::context ctx;
        return ctx.thread_count() >= 1 && !tlm::version().empty() ? 0 : 1;
    } catch (const tlm::error &) {
        return 1;
    }
}
