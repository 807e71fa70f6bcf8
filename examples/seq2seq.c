/*
 * An encoder-decoder transformer learns to reverse strings: the encoder
 * reads "abcd", the decoder writes "dcba" and an end token, one token at a
 * time, attending to the encoder's output through cross-attention. It is
 * trained on random strings over the letters a..h, then decodes strings it
 * never saw and prints its exact-match accuracy (greedy decoding).
 *
 *   seq2seq [--steps N] [--min-accuracy PERCENT]
 *
 * --min-accuracy makes the exit status 1 when the accuracy is below it (the
 * test suite runs a short training this way). docs/seq2seq.md explains the
 * batches and the decoding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tlm.h>

enum {
    LETTERS = 8,          /* ids 0..7 are the letters a..h */
    EOS = LETTERS,        /* the decoder's end token */
    BOS = LETTERS + 1,    /* the decoder's start token */
    PAD = LETTERS + 2,    /* fills short sequences in a batch */
    VOCAB = LETTERS + 3,
    MIN_LENGTH = 3,
    MAX_LENGTH = 7,
    TRAIN_PAIRS = 4000,
    HELD_OUT = 200
};

/* splitmix64: the program's own seeded random generator. */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A random string of MIN_LENGTH..MAX_LENGTH letters; returns its length. */
static int random_string(uint64_t *rng, int32_t *letters) {
    const int n = MIN_LENGTH + (int)(next_random(rng) % (MAX_LENGTH - MIN_LENGTH + 1));
    for (int i = 0; i < n; i++)
        letters[i] = (int32_t)(next_random(rng) % LETTERS);
    return n;
}

/* A string as one number, different for every string of any length. */
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

static void print_letters(const int32_t *ids, int n) {
    for (int i = 0; i < n; i++)
        putchar(ids[i] >= 0 && ids[i] < LETTERS ? 'a' + ids[i] : '?');
}

int main(int argc, char **argv) {
    long steps = 400;
    double min_accuracy = 0;
    int bad = argc % 2 == 0; /* flags come in pairs */
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--steps") == 0)
            steps = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--min-accuracy") == 0)
            min_accuracy = strtod(argv[i + 1], NULL);
        else
            bad = 1;
    }
    if (bad || steps < 1 || steps > 1000000) {
        fprintf(stderr, "usage: seq2seq [--steps N] [--min-accuracy PERCENT]\n");
        return 2;
    }

    /* The training pairs, one after the other in `ids`: a source string,
     * then its reversal and EOS. offsets[2p] .. offsets[2p+1] is source p,
     * offsets[2p+1] .. offsets[2p+2] its target. */
    int32_t *ids = malloc((size_t)TRAIN_PAIRS * (2 * MAX_LENGTH + 1) * sizeof *ids);
    int64_t *offsets = malloc((2 * (size_t)TRAIN_PAIRS + 1) * sizeof *offsets);
    uint64_t *seen = malloc((size_t)TRAIN_PAIRS * sizeof *seen);
    if (!ids || !offsets || !seen) {
        fprintf(stderr, "seq2seq: out of memory\n");
        free(ids), free(offsets), free(seen);
        return 1;
    }
    uint64_t rng = 2024;
    int64_t at = 0;
    offsets[0] = 0;
    for (int p = 0; p < TRAIN_PAIRS; p++) {
        int32_t s[MAX_LENGTH];
        const int n = random_string(&rng, s);
        seen[p] = key_of(s, n);
        for (int i = 0; i < n; i++)
            ids[at++] = s[i];
        offsets[2 * p + 1] = at;
        for (int i = n - 1; i >= 0; i--)
            ids[at++] = s[i];
        ids[at++] = EOS;
        offsets[2 * p + 2] = at;
    }
    qsort(seen, TRAIN_PAIRS, sizeof *seen, compare_keys);

    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    tlm_dataset *data = NULL;
    tlm_trainer *trainer = NULL;
    tlm_session *session = NULL;
    int status = tlm_context_create(&ctx, NULL);

    /* A small encoder-decoder: 2 + 2 layers of width 48. */
    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = VOCAB;
    config.d_model = 48;
    config.n_heads = 2;
    config.d_ff = 96;
    config.n_encoder_layers = 2;
    config.n_decoder_layers = 2;
    config.max_context = MAX_LENGTH + 2;
    config.init_seed = 5;
    if (status == TLM_OK)
        status = tlm_model_create(&model, ctx, &config);
    tlm_dataset_params dp; /* every pair trains; the held-out strings test */
    tlm_dataset_params_init(&dp);
    dp.validation_fraction = 0.0f;
    if (status == TLM_OK)
        status = tlm_dataset_from_pairs(&data, ctx, ids, offsets, TRAIN_PAIRS, &dp);

    /* AdamW, warm-up then cosine decay; the trainer builds the batches:
     * source + padding mask for the encoder, BOS + target for the decoder. */
    tlm_optimizer_params adamw;
    tlm_optimizer_params_init(&adamw);
    adamw.weight_decay = 0.0f;
    tlm_schedule_params schedule;
    tlm_schedule_params_init(&schedule);
    schedule.kind = TLM_SCHEDULE_COSINE;
    schedule.lr = 6e-3f;
    schedule.min_lr = 1e-4f;
    schedule.warmup_steps = steps / 10;
    schedule.decay_end_step = steps;
    tlm_trainer_params params;
    tlm_trainer_params_init(&params);
    params.batch_size = 32;
    params.seed = 3;
    params.bos_id = BOS;
    params.pad_id = PAD;
    params.optimizer = &adamw;
    params.schedule = &schedule;
    if (status == TLM_OK)
        status = tlm_trainer_create(&trainer, model, data, &params);
    tlm_step_info info;
    tlm_step_info_init(&info);
    for (long step = 1; status == TLM_OK && step <= steps; step++) {
        status = tlm_trainer_step(trainer, &info);
        if (status == TLM_OK && (step % 50 == 0 || step == steps))
            printf("step %4ld  loss %.4f\n", step, (double)info.loss);
    }

    /* Held-out strings (another seed, none of them seen in training),
     * decoded greedily: the most likely token at every step until EOS. */
    if (status == TLM_OK)
        status = tlm_session_create(&session, model, NULL);
    tlm_beam_search_params greedy;
    tlm_beam_search_params_init(&greedy);
    greedy.beam_width = 1;
    greedy.bos_id = BOS;
    greedy.eos_id = EOS;
    uint64_t held_rng = 777;
    int tested = 0, right = 0;
    while (status == TLM_OK && tested < HELD_OUT) {
        int32_t s[MAX_LENGTH], out[MAX_LENGTH + 2];
        size_t n_out = 0;
        const int n = random_string(&held_rng, s);
        const uint64_t key = key_of(s, n);
        if (bsearch(&key, seen, TRAIN_PAIRS, sizeof *seen, compare_keys) != NULL)
            continue;
        double score;
        status = tlm_beam_search(session, s, n, NULL, &greedy, out, MAX_LENGTH + 2, &n_out, &score);
        if (status != TLM_OK)
            break;
        int ok = n_out == (size_t)n;
        for (int i = 0; ok && i < n; i++)
            ok = out[i] == s[n - 1 - i];
        right += ok;
        if (++tested <= 5) {
            print_letters(s, n);
            printf(" -> ");
            print_letters(out, n_out);
            printf(ok ? "\n" : "  (wrong)\n");
        }
    }
    const double accuracy = tested ? 100.0 * right / tested : 0.0;
    if (status == TLM_OK)
        printf("exact match on %d held-out strings: %.1f%%\n", tested, accuracy);
    else
        fprintf(stderr, "seq2seq: %s\n", tlm_last_error());

    tlm_session_free(session);
    tlm_trainer_free(trainer);
    tlm_dataset_free(data);
    tlm_model_free(model);
    tlm_context_free(ctx);
    free(seen), free(offsets), free(ids);
    if (status != TLM_OK)
        return 1;
    if (accuracy < min_accuracy) {
        fprintf(stderr, "seq2seq: accuracy %.1f%% is below --min-accuracy %.1f%%\n",
                accuracy, min_accuracy);
        return 1;
    }
    return 0;
}
