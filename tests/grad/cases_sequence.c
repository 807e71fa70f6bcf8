/* Gradient cases of the sequence operations: filled in with the operations. */
#include "grad_check.h"

const grad_case_group grad_cases_sequence = {"sequence", 0, 0};
