#include "embedding.h"

#include <string.h>

int64_t tlmi_embedding_first_bad_id(const int32_t *ids, int64_t n, int64_t v) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || (int64_t)ids[i] >= v)
            return i;
    return -1;
}

void tlmi_embedding_forward(float *out, const float *table,
                            const int32_t *ids, int64_t n, int64_t d) {
    for (int64_t i = 0; i < n; i++)
        memcpy(out + i * d, table + (int64_t)ids[i] * d,
               (size_t)d * sizeof(float));
}

void tlmi_embedding_backward(float *dtable, const float *dout,
                             const int32_t *ids, int64_t n, int64_t v,
                             int64_t d) {
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (int64_t)ids[i] >= v)
            continue;
        float *row = dtable + (int64_t)ids[i] * d;
        const float *g = dout + i * d;
        for (int64_t j = 0; j < d; j++)
            row[j] += g[j];
    }
}
