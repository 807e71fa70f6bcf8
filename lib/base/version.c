/* The run-time version calls: what the library was built as. */
#include "tlm.h"

/* Set by lib/meson.build: 1 when the library is built with MPI
 * (-Dmpi=enabled); absent, meaning 0, in builds of lib/ that do not set
 * it (the fuzz targets' copy). SemVer build metadata ("+mpi") marks such a build
 * without changing the version's precedence. */
#if defined(TLMI_WITH_MPI) && TLMI_WITH_MPI
#  define TLMI_BUILD_SUFFIX "+mpi"
#else
#  define TLMI_BUILD_SUFFIX ""
#endif

TLM_API uint32_t tlm_version_number(void) { return TLM_VERSION_NUMBER; }

TLM_API const char *tlm_version_string(void) { return TLM_VERSION_STRING TLMI_BUILD_SUFFIX; }
