/* The cmocka half of tolerance.h, apart so that tests without cmocka (the
 * MPI test) can link the rest. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tolerance.h"

void tlmt_assert_close_at(double got, double want, double tol,
                          const char *what, const char *file, int line) {
    if (tlmt_close(got, want, tol))
        return;
    print_error("%s = %.9g, expected %.9g within %.3g\n", what, got, want,
                tol);
    _fail(file, line);
}
