/* What the CPU this process runs on can do: instruction set features and
 * the number of cores available to the process. */
#ifndef TLM_LIB_BASE_CPU_H
#define TLM_LIB_BASE_CPU_H

#include <stdint.h>

/* Feature bits (enum tlm_cpu_feature), detected once per process. */
uint32_t tlmi_cpu_detect(void);

/* Cores this process may run on (its affinity mask), at least 1. */
int tlmi_cpu_core_count(void);

#endif
