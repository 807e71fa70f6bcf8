#include "loss.h"

#include <math.h>

/* A row counts when its target is a class, not ignore_index. */
static int is_valid(int32_t target, int64_t v, int32_t ignore_index) {
    return target != ignore_index && target >= 0 && (int64_t)target < v;
}

int64_t tlmi_cross_entropy_first_bad_target(const int32_t *targets,
                                            int64_t rows, int64_t v,
                                            int32_t ignore_index) {
    for (int64_t r = 0; r < rows; r++)
        if (targets[r] != ignore_index &&
            (targets[r] < 0 || (int64_t)targets[r] >= v))
            return r;
    return -1;
}

void tlmi_cross_entropy_forward(float *loss, double *lse, int64_t *n_valid,
                                const float *logits, const int32_t *targets,
                                int64_t rows, int64_t v,
                                int32_t ignore_index) {
    double total = 0.0;
    int64_t count = 0;
    for (int64_t r = 0; r < rows; r++) {
        lse[r] = 0.0;
        if (!is_valid(targets[r], v, ignore_index))
            continue;
        const float *x = logits + r * v;
        float max = x[0];
        for (int64_t j = 1; j < v; j++)
            if (x[j] > max)
                max = x[j];
        /* Every term is at most exp(0) = 1: nothing overflows, and the
         * largest term keeps the sum away from 0. In double: the loss is
         * one number, and V exponentials per row cost little beside the
         * product that made the logits. */
        double sum = 0.0;
        for (int64_t j = 0; j < v; j++)
            sum += exp((double)x[j] - (double)max);
        lse[r] = (double)max + log(sum);
        total += lse[r] - (double)x[targets[r]];
        count++;
    }
    *n_valid = count;
    loss[0] = count > 0 ? (float)(total / (double)count) : 0.0f;
}

void tlmi_cross_entropy_backward(float *dlogits, float dloss,
                                 const float *logits, const double *lse,
                                 const int32_t *targets, int64_t n_valid,
                                 int64_t rows, int64_t v,
                                 int32_t ignore_index) {
    if (n_valid <= 0)
        return;
    const float factor = (float)((double)dloss / (double)n_valid);
    for (int64_t r = 0; r < rows; r++) {
        if (!is_valid(targets[r], v, ignore_index))
            continue;
        const float *x = logits + r * v;
        float *dx = dlogits + r * v;
        for (int64_t j = 0; j < v; j++) {
            /* The difference in double, then rounded: its error is
             * relative to the (small) exponent, not to lse. */
            const float probability = expf((float)((double)x[j] - lse[r]));
            dx[j] += probability * factor;
        }
        dx[targets[r]] -= factor;
    }
}
