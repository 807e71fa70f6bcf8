/* Gradient cases of the norm operations: filled in with the operations. */
#include "grad_check.h"

const grad_case_group grad_cases_norm = {"norm", 0, 0};
