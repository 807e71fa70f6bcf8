/*
 * Suite "train" (and "slow"): the string-reversal task. An encoder-decoder
 * model is trained with the trainer on random strings over 8 letters
 * (lengths 3..8), each mapped to its reversal followed by the end id, then
 * decodes strings it never saw (another seed, checked against the training
 * set) greedily and by beam search of width 4. Bound: exact-match accuracy
 * >= 99% for both. Everything is seeded, so the run is deterministic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

enum {
    LETTERS = 8,          /* ids 0..7 */
    EOS = LETTERS,        /* 8 */
    BOS = LETTERS + 1,    /* 9 */
    PAD = LETTERS + 2,    /* 10 */
    VOCAB = LETTERS + 3,
    MIN_LENGTH = 3,
    MAX_LENGTH = 8,
    TRAIN_PAIRS = 6000,
    HELD_OUT = 400,
    STEPS = 300,
    BATCH = 32
};

/* splitmix64: the test's own seeded generator. */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A random string of MIN_LENGTH..MAX_LENGTH letters; its length. */
static int random_string(uint64_t *state, int32_t *letters) {
    const int n = MIN_LENGTH + (int)(next_random(state) % (MAX_LENGTH - MIN_LENGTH + 1));
    for (int i = 0; i < n; i++)
        letters[i] = (int32_t)(next_random(state) % LETTERS);
    return n;
}

/* A string as one number (base LETTERS + 1, digits 1..LETTERS), unique per
 * string of any length. */
static uint64_t key_of(const int32_t *letters, int n) {
    uint64_t key = 0;
    for (int i = 0; i < n; i++)
        key = key * (LETTERS + 1) + (uint64_t)letters[i] + 1;
    return key;
}

static int compare_keys(const void *a, const void *b) {
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void reversal_is_learned(void **state) {
    (void)state;
    /* The training pairs: source, then reversed source + EOS. */
    int32_t *ids = malloc((size_t)TRAIN_PAIRS * (2 * MAX_LENGTH + 1) * sizeof *ids);
    int64_t *offsets = malloc((2 * (size_t)TRAIN_PAIRS + 1) * sizeof *offsets);
    uint64_t *keys = malloc((size_t)TRAIN_PAIRS * sizeof *keys);
    assert_non_null(ids);
    assert_non_null(offsets);
    assert_non_null(keys);
    uint64_t rng = 20240601;
    int64_t at = 0;
    offsets[0] = 0;
    for (int p = 0; p < TRAIN_PAIRS; p++) {
        int32_t s[MAX_LENGTH];
        const int n = random_string(&rng, s);
        keys[p] = key_of(s, n);
        for (int i = 0; i < n; i++)
            ids[at++] = s[i];
        offsets[2 * p + 1] = at;
        for (int i = n - 1; i >= 0; i--)
            ids[at++] = s[i];
        ids[at++] = EOS;
        offsets[2 * p + 2] = at;
    }
    qsort(keys, TRAIN_PAIRS, sizeof *keys, compare_keys);

    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = VOCAB;
    c.d_model = 64;
    c.n_heads = 2;
    c.d_ff = 128;
    c.n_encoder_layers = 2;
    c.n_decoder_layers = 2;
    c.max_context = 16;
    c.init_seed = 5;
    tlm_model *model = NULL;
    assert_int_equal(tlm_model_create(&model, ctx, &c), TLM_OK);
    tlm_dataset *data = NULL;
    tlm_dataset_params dp;
    tlm_dataset_params_init(&dp);
    dp.validation_fraction = 0.0f;
    assert_int_equal(tlm_dataset_from_pairs(&data, ctx, ids, offsets, TRAIN_PAIRS, &dp),
                     TLM_OK);

    tlm_trainer_params params;
    tlm_trainer_params_init(&params);
    params.batch_size = BATCH;
    params.seed = 3;
    params.bos_id = BOS;
    params.pad_id = PAD;
    tlm_optimizer_params optimizer;
    tlm_optimizer_params_init(&optimizer);
    optimizer.lr = 6e-3f;
    optimizer.weight_decay = 0.0f;
    params.optimizer = &optimizer;
    tlm_schedule_params schedule;
    tlm_schedule_params_init(&schedule);
    schedule.kind = TLM_SCHEDULE_COSINE;
    schedule.lr = 6e-3f;
    schedule.min_lr = 1e-4f;
    schedule.warmup_steps = 30;
    schedule.decay_end_step = STEPS;
    params.schedule = &schedule;
    tlm_trainer *trainer = NULL;
    if (tlm_trainer_create(&trainer, model, data, &params) != TLM_OK)
        fail_msg("trainer: %s", tlm_last_error());
    tlm_step_info info;
    tlm_step_info_init(&info);
    for (int i = 0; i < STEPS; i++) {
        assert_int_equal(tlm_trainer_step(trainer, &info), TLM_OK);
        if ((i + 1) % 100 == 0)
            printf("reverse: step %d loss %.4f\n", i + 1, (double)info.loss);
    }

    /* Held-out strings: another seed, none of them in the training set. */
    tlm_session *session = NULL, *pool[3] = {NULL, NULL, NULL};
    assert_int_equal(tlm_session_create(&session, model, NULL), TLM_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tlm_session_create(&pool[i], model, NULL), TLM_OK);
    tlm_beam_search_params greedy, beam;
    tlm_beam_search_params_init(&greedy);
    greedy.beam_width = 1;
    greedy.bos_id = BOS;
    greedy.eos_id = EOS;
    beam = greedy;
    beam.beam_width = 4;
    beam.length_penalty = 0.6f;
    beam.sessions = pool;
    beam.n_sessions = 3;
    uint64_t held_rng = 777;
    int tested = 0, skipped = 0, greedy_right = 0, beam_right = 0;
    while (tested < HELD_OUT) {
        int32_t s[MAX_LENGTH], out[16];
        const int n = random_string(&held_rng, s);
        const uint64_t key = key_of(s, n);
        if (bsearch(&key, keys, TRAIN_PAIRS, sizeof *keys, compare_keys) != NULL) {
            skipped++;
            continue;
        }
        tested++;
        for (int pass = 0; pass < 2; pass++) {
            size_t n_out = 0;
            double score = 0;
            int status = tlm_beam_search(session, s, n, NULL, pass ? &beam : &greedy, out, 16,
                                         &n_out, &score);
            if (status != TLM_OK)
                fail_msg("beam search: %s", tlm_session_last_error(session));
            int right = n_out == (size_t)n;
            for (int i = 0; right && i < n; i++)
                right = out[i] == s[n - 1 - i];
            *(pass ? &beam_right : &greedy_right) += right;
        }
    }
    const double greedy_accuracy = (double)greedy_right / tested;
    const double beam_accuracy = (double)beam_right / tested;
    printf("reverse: final loss %.4f; %d held-out strings (%d seen in training "
           "skipped): greedy %.2f%%, beam (width 4) %.2f%% exact\n",
           (double)info.loss, tested, skipped, 100 * greedy_accuracy,
           100 * beam_accuracy);
    assert_true(greedy_accuracy >= 0.99);
    assert_true(beam_accuracy >= 0.99);

    for (int i = 0; i < 3; i++)
        tlm_session_free(pool[i]);
    tlm_session_free(session);
    tlm_trainer_free(trainer);
    tlm_dataset_free(data);
    tlm_model_free(model);
    tlm_context_free(ctx);
    free(keys);
    free(offsets);
    free(ids);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reversal_is_learned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
