/* Gradient cases of the attention operations: filled in with the operations. */
#include "grad_check.h"

const grad_case_group grad_cases_attention = {"attention", 0, 0};
