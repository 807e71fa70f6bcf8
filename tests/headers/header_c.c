/* tlm.h must compile alone, first, as strict C11 with every warning an
 * error; the program then checks it links and runs. */
#include "tlm.h"

int main(void) {
    tlm_context_params params;
    if (tlm_context_params_init(&params) != TLM_OK)
        return 1;
    return tlm_version_number() == TLM_VERSION_NUMBER ? 0 : 1;
}
