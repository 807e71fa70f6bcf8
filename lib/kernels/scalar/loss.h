/* Reference kernels of the cross-entropy loss fused with its log-softmax:
 * logits [rows, V], one integer target per row, rows whose target is
 * ignore_index left out of the mean. */
#ifndef TLM_LIB_KERNELS_SCALAR_LOSS_H
#define TLM_LIB_KERNELS_SCALAR_LOSS_H

#include <stdint.h>

/* The index of the first target outside 0..v-1 that is not ignore_index,
 * or -1 when there is none. Run before the forward pass, since targets
 * may change between re-runs of the graph. */
int64_t tlmi_cross_entropy_first_bad_target(const int32_t *targets,
                                            int64_t rows, int64_t v,
                                            int32_t ignore_index);

/* loss[0] = mean over valid rows of lse[r] - logits[r, target[r]], 0 when
 * no row is valid; *n_valid = their count. lse [rows] receives each valid
 * row's log-sum-exp (max-subtracted, accumulated in double) for the
 * backward pass; ignored rows get 0. Targets must be checked first. */
void tlmi_cross_entropy_forward(float *loss, double *lse, int64_t *n_valid,
                                const float *logits, const int32_t *targets,
                                int64_t rows, int64_t v,
                                int32_t ignore_index);

/* dlogits [rows, V] += (softmax(logits) - onehot(target)) * dloss / n_valid
 * on valid rows, softmax = exp(logits - lse); ignored rows (and targets
 * changed out of range since the forward pass) receive nothing. */
void tlmi_cross_entropy_backward(float *dlogits, float dloss,
                                 const float *logits, const double *lse,
                                 const int32_t *targets, int64_t n_valid,
                                 int64_t rows, int64_t v,
                                 int32_t ignore_index);

#endif
