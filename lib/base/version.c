/* The run-time version calls: what the library was built as. */
#include "tlm.h"

TLM_API uint32_t tlm_version_number(void) { return TLM_VERSION_NUMBER; }

TLM_API const char *tlm_version_string(void) { return TLM_VERSION_STRING; }
