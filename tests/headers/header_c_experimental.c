/* tlm.h with its experimental section must compile alone as strict C11
 * with every warning an error, and the experimental calls must link. */
#define TLM_EXPERIMENTAL
#include "tlm.h"

int main(void) {
    const char *isa = tlm_experimental_active_isa();
    return isa != 0 && tlm_experimental_set_cpu_mask(
                           TLM_EXPERIMENTAL_CPU_MASK_ALL) == TLM_OK
               ? 0
               : 1;
}
