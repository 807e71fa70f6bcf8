/* Datasets: token ids split into training and validation parts, and the
 * batches a trainer samples from them. */
#ifndef TLM_LIB_TRAIN_DATASET_H
#define TLM_LIB_TRAIN_DATASET_H

#include "base/host.h"
#include "base/rng.h"
#include "tlm.h"

enum tlmi_dataset_kind { TLMI_DATASET_STREAM = 0, TLMI_DATASET_PAIRS = 1 };

struct tlm_dataset {
    tlmi_host host;
    int32_t kind;
    int32_t *ids;      /* every token id */
    int64_t count;
    int64_t train_end; /* stream: ids[0..train_end) train, the rest validation */
    int64_t *offsets;  /* pairs: 2 * n_pairs + 1 */
    int64_t n_pairs;
    int64_t train_pairs;        /* pairs [0, train_pairs) train */
    int32_t max_source;         /* longest source */
    int32_t max_target;         /* longest target */
};

/* Stream: B windows of T + 1 ids from `split` at positions drawn from
 * `rng`; ids [B, T] the inputs, targets [B, T] the next ids. The part must
 * hold at least T + 1 ids (checked by the caller). Data parallelism:
 * `total` rows (>= first + B) are drawn and only rows first..first+B-1 are
 * kept, so every rank advances the same generator and takes its own slice
 * of one global batch (first 0, total B: a plain batch). */
void tlmi_dataset_fill_stream(const tlm_dataset *ds, int32_t split,
                              tlmi_rng *rng, int64_t batch, int64_t length,
                              int64_t first, int64_t total,
                              int32_t *ids, int32_t *targets);

/* Pairs: B pairs drawn from `split`; source ids and mask [B, S] (padding:
 * pad_id, mask 0), decoder input [B, T] = bos then the target shifted
 * right, targets [B, T] (padding: -1, ignored by the loss). `first` and
 * `total` as for streams. */
void tlmi_dataset_fill_pairs(const tlm_dataset *ds, int32_t split,
                             tlmi_rng *rng, int64_t batch, int64_t first,
                             int64_t total, int64_t source_length,
                             int64_t length, int32_t bos_id, int32_t pad_id,
                             int32_t *source, int32_t *source_mask,
                             int32_t *ids, int32_t *targets);

/* Sequences (stream: ids; pairs: pairs) in `split`. */
int64_t tlmi_dataset_part_size(const tlm_dataset *ds, int32_t split);

#endif
