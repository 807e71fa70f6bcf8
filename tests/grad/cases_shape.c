/* Gradient cases of the shape operations: filled in with the operations. */
#include "grad_check.h"

const grad_case_group grad_cases_shape = {"shape", 0, 0};
