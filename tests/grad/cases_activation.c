/* Gradient cases of the activation operations: filled in with the operations. */
#include "grad_check.h"

const grad_case_group grad_cases_activation = {"activation", 0, 0};
