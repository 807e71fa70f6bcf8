/*
 * A model of your own, written with tlm's public tensor and autodiff API and
 * trained with its AdamW optimizer: a character-level language model that
 * reads the last CONTEXT characters and predicts the next one (Bengio et
 * al.'s neural probabilistic language model, 2003):
 *
 *   e      = embedding(table, ids)            [B, CONTEXT, EMBED]
 *   h      = gelu(reshape(e) W1 + b1)         [B, HIDDEN]
 *   logits = h W2 + b2                        [B, V]
 *   loss   = cross_entropy(logits, next_ids)  mean of -log p(next char)
 *
 * The graph is built once; every step writes a new batch into the input
 * tensors and re-runs it with tlm_context_forward(). The program prints the
 * loss going down, then a few characters sampled from the model.
 *
 *   custom_model [--steps N] [--seed N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tlm.h>

enum { CONTEXT = 4, EMBED = 16, HIDDEN = 96, BATCH = 32 };

static const char text[] =
    "the cat sat on the mat. the dog sat on the log. the cat saw the dog, "
    "and the dog saw the cat. a cat and a dog sat on a mat and a log. "
    "the sun is hot and the sea is wide; the cat sleeps in the sun and the "
    "dog swims in the sea. on the mat the cat, on the log the dog. ";

/* splitmix64: a small seeded random generator of our own. */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A parameter [rows, cols] (cols 0: a vector [rows]) with values uniform in
 * [-scale, scale], marked as needing a gradient. */
static int parameter(tlm_tensor **out, tlm_context *ctx, int64_t rows,
                     int64_t cols, float scale, uint64_t *rng) {
    const int64_t shape[2] = {rows, cols};
    int status = tlm_tensor_create(out, ctx, TLM_DTYPE_F32, cols ? 2 : 1, shape);
    if (status != TLM_OK)
        return status;
    float *w = tlm_tensor_data_f32(*out);
    for (int64_t i = 0; i < tlm_tensor_numel(*out); i++)
        w[i] = scale * ((float)(next_random(rng) >> 40) / 8388608.0f - 1.0f);
    return tlm_tensor_set_requires_grad(*out, 1);
}

#define TRY(call)                  \
    do {                           \
        status = (call);           \
        if (status != TLM_OK)      \
            goto done;             \
    } while (0)

int main(int argc, char **argv) {
    long steps = 1000;
    uint64_t rng = 1;
    int bad = argc % 2 == 0; /* flags come in pairs */
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--steps") == 0)
            steps = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0)
            rng = strtoull(argv[i + 1], NULL, 10);
        else
            bad = 1;
    }
    if (bad || steps < 10 || steps > 1000000) {
        fprintf(stderr, "usage: custom_model [--steps N (10 or more)] [--seed N]\n");
        return 2;
    }

    /* The vocabulary: every distinct character of the text gets an id. */
    int32_t id_of[256];
    char char_of[256];
    int32_t vocab = 0;
    memset(id_of, 0xff, sizeof id_of); /* -1: not seen */
    for (const char *c = text; *c; c++)
        if (id_of[(unsigned char)*c] < 0) {
            char_of[vocab] = *c;
            id_of[(unsigned char)*c] = vocab++;
        }
    const int64_t n_text = (int64_t)strlen(text);

    tlm_context *ctx = NULL;
    tlm_optimizer *optimizer = NULL;
    tlm_sampler *sampler = NULL;
    int status = tlm_context_create(&ctx, NULL);
    if (status != TLM_OK)
        goto done;

    /* Inputs: BATCH windows of CONTEXT ids, and the id that follows each. */
    const int64_t ids_shape[2] = {BATCH, CONTEXT}, next_shape[1] = {BATCH};
    tlm_tensor *ids, *next;
    TRY(tlm_tensor_create(&ids, ctx, TLM_DTYPE_I32, 2, ids_shape));
    TRY(tlm_tensor_create(&next, ctx, TLM_DTYPE_I32, 1, next_shape));

    /* Parameters. */
    tlm_tensor *table, *w1, *b1, *w2, *b2;
    TRY(parameter(&table, ctx, vocab, EMBED, 1.0f, &rng));
    TRY(parameter(&w1, ctx, CONTEXT * EMBED, HIDDEN, 0.12f, &rng));
    TRY(parameter(&b1, ctx, HIDDEN, 0, 0.0f, &rng));
    TRY(parameter(&w2, ctx, HIDDEN, vocab, 0.1f, &rng));
    TRY(parameter(&b2, ctx, vocab, 0, 0.0f, &rng));
    tlm_tensor *const params[5] = {table, w1, b1, w2, b2};

    /* The model, recorded once. */
    const int64_t flat[2] = {BATCH, CONTEXT * EMBED};
    tlm_tensor *e, *e_flat, *pre, *h, *logits, *loss;
    TRY(tlm_embedding(&e, table, ids));
    TRY(tlm_reshape(&e_flat, e, 2, flat));
    TRY(tlm_matmul(&pre, e_flat, w1, b1, 0));
    TRY(tlm_gelu(&h, pre, TLM_GELU_TANH));
    TRY(tlm_matmul(&logits, h, w2, b2, 0));
    TRY(tlm_cross_entropy(&loss, logits, next, -1));

    tlm_optimizer_params adamw;
    tlm_optimizer_params_init(&adamw);
    adamw.lr = 1e-2f;
    TRY(tlm_optimizer_create(&optimizer, params, 5, &adamw));

    /* Training: a random batch, forward, backward, one AdamW step. */
    int64_t n_params = 0;
    for (int p = 0; p < 5; p++)
        n_params += tlm_tensor_numel(params[p]);
    printf("custom_model: %d characters, %lld parameters, %ld steps\n", (int)vocab,
           (long long)n_params, steps);
    double sum = 0, first = 0, last = 0;
    const long every = steps / 10;
    for (long step = 1; step <= steps; step++) {
        int32_t *x = tlm_tensor_data_i32(ids), *y = tlm_tensor_data_i32(next);
        for (int b = 0; b < BATCH; b++) {
            const int64_t at = (int64_t)(next_random(&rng) % (uint64_t)(n_text - CONTEXT));
            for (int t = 0; t < CONTEXT; t++)
                x[b * CONTEXT + t] = id_of[(unsigned char)text[at + t]];
            y[b] = id_of[(unsigned char)text[at + CONTEXT]];
        }
        TRY(tlm_context_forward(ctx));
        TRY(tlm_context_zero_grad(ctx));
        TRY(tlm_backward(loss));
        TRY(tlm_optimizer_step(optimizer, TLM_OPTIMIZER_LR_DEFAULT));
        sum += (double)tlm_tensor_data_f32(loss)[0];
        if (step % every == 0) {
            last = sum / (double)every;
            if (first == 0)
                first = last;
            printf("step %5ld  loss %.3f\n", step, last);
            sum = 0;
        }
    }

    /* Sampling: the last CONTEXT characters go into row 0 of the batch. */
    TRY(tlm_sampler_create(&sampler, ctx, NULL));
    char window[CONTEXT + 1] = "the ";
    printf("sample: %s", window);
    for (int i = 0; i < 60; i++) {
        int32_t *x = tlm_tensor_data_i32(ids);
        for (int t = 0; t < CONTEXT; t++)
            x[t] = id_of[(unsigned char)window[t]];
        TRY(tlm_context_forward(ctx));
        int32_t token;
        TRY(tlm_sampler_sample(sampler, tlm_tensor_data_f32(logits), vocab, &token, NULL));
        memmove(window, window + 1, CONTEXT - 1);
        window[CONTEXT - 1] = char_of[token];
        putchar(char_of[token]);
    }
    printf("\nloss %.3f -> %.3f\n", first, last);

done:
    if (status != TLM_OK)
        fprintf(stderr, "custom_model: %s\n", tlm_last_error());
    tlm_sampler_free(sampler);
    tlm_optimizer_free(optimizer);
    tlm_context_free(ctx); /* frees every tensor of the context too */
    if (status != TLM_OK)
        return 1;
    return last < first ? 0 : 1; /* the loss must have gone down */
}
