/* Reference kernels of the embedding lookup: rows of a table [V, D]
 * gathered by integer ids, and scattered back in the backward pass. */
#ifndef TLM_LIB_KERNELS_SCALAR_EMBEDDING_H
#define TLM_LIB_KERNELS_SCALAR_EMBEDDING_H

#include <stdint.h>

/* The index of the first of the n ids outside 0..v-1, or -1 when all are
 * inside. The forward pass runs it first because ids may change between
 * re-runs of the graph. */
int64_t tlmi_embedding_first_bad_id(const int32_t *ids, int64_t n, int64_t v);

/* out [n, D] row i = table [V, D] row ids[i]; every id in 0..V-1. */
void tlmi_embedding_forward(float *out, const float *table,
                            const int32_t *ids, int64_t n, int64_t d);

/* dtable [V, D] row ids[i] += dout [n, D] row i: an id that occurs twice
 * receives both rows. Ids outside 0..v-1 (changed since the forward pass)
 * are skipped rather than written out of bounds. */
void tlmi_embedding_backward(float *dtable, const float *dout,
                             const int32_t *ids, int64_t n, int64_t v,
                             int64_t d);

#endif
