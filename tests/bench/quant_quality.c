/*
 * What quantizing a model's weights costs in quality, measured on a text
 * (docs/quantization.md, "Quality, measured"):
 *
 *   quant_quality MODEL.tlm TEXT [--bytes N] [--prompts P] [--tokens T]
 *
 * The model (float32, with a tokenizer) is quantized in the process with
 * tlm_model_quantize to int8 and bf16. For each format, one JSON line:
 *  - perplexity on the first N bytes of TEXT (default 16384), scored in
 *    windows of the model's max_context (each window's first token is
 *    context only), and the relative change from float32's;
 *  - mean |log p_quantized(token) - log p_float32(token)| over the same
 *    scored tokens (meaningful where perplexity is not: random weights);
 *  - the same two on the first --step-bytes bytes (default 2048) scored
 *    one token per call, as decoding runs (one-row products, where int8
 *    weights meet int8-quantized activations; a batched call's larger
 *    products dequantize the weights to float32 instead);
 *  - greedy agreement: P prompts (default 20; 16 bytes each, taken at
 *    evenly spaced offsets of TEXT) continued by T tokens (default 100)
 *    greedily by both models (T at most max_context - 24, so that prompt and
 *    continuation fit); the fraction of positions whose tokens agree
 *    and the mean number of tokens before the first disagreement.
 * With --breakdown, instead: where the perplexity change comes from. For
 * each format and each group of matrices (embeddings and output layer,
 * attention, feedforward, all), a float32 copy of the model whose
 * matrices of that group are rounded as the format rounds them (int8:
 * groups of 32, scale max|w| / 127, nearest even; bf16: nearest even)
 * but still stored and multiplied in float32 (tlm_score_text, as tlm
 * eval): the weights' error alone, group by group. The quantized model's
 * change minus the "all" row is what quantizing activations adds.
 * Public API only. Not a test: it asserts nothing (the bounds are checked
 * by test_quantize_quality, suite model).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlm.h"

#define PROMPT_BYTES 16

static void die(const char *what) {
    fprintf(stderr, "quant_quality: %s: %s\n", what, tlm_last_error());
    exit(1);
}

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "quant_quality: cannot open %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)n + 1);
    if (data == NULL || fread(data, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "quant_quality: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    *size = (size_t)n;
    return data;
}

/* log-softmax of `logits` [V] at `target`. */
static double log_prob(const float *logits, int32_t vocab, int32_t target) {
    float top = logits[0];
    for (int32_t i = 1; i < vocab; i++)
        top = logits[i] > top ? logits[i] : top;
    double sum = 0.0;
    for (int32_t i = 0; i < vocab; i++)
        sum += exp((double)(logits[i] - top));
    return (double)(logits[target] - top) - log(sum);
}

/* Log-probabilities of ids[1..n) given what precedes them, in windows of
 * `window` ids (a window's first id is context only): out[k] for each
 * scored id, *n_scored of them. */
static void score_ids(tlm_model *model, const int32_t *ids, size_t n, int32_t window,
                      int32_t vocab, double *out, size_t *n_scored) {
    tlm_session *s = NULL;
    if (tlm_session_create(&s, model, NULL) != TLM_OK)
        die("session");
    float *logits = malloc(sizeof(float) * (size_t)window * (size_t)vocab);
    *n_scored = 0;
    for (size_t start = 0; start + 1 < n; start += (size_t)window - 1) {
        size_t len = n - start < (size_t)window ? n - start : (size_t)window;
        if (len < 2)
            break;
        tlm_session_reset(s);
        if (tlm_session_decode(s, ids + start, len, logits, (int32_t)len) != TLM_OK)
            die("decode");
        for (size_t i = 0; i + 1 < len; i++)
            out[(*n_scored)++] = log_prob(logits + i * (size_t)vocab, vocab, ids[start + i + 1]);
    }
    free(logits);
    tlm_session_free(s);
}

/* The same, one id per tlm_session_decode call (decoding's products with
 * one row: int8 weights meet int8-quantized activations there, where a
 * batched call's products may dequantize the weights instead). */
static void score_ids_stepwise(tlm_model *model, const int32_t *ids, size_t n, int32_t window,
                               int32_t vocab, double *out, size_t *n_scored) {
    tlm_session *s = NULL;
    if (tlm_session_create(&s, model, NULL) != TLM_OK)
        die("session");
    float *logits = malloc(sizeof(float) * (size_t)vocab);
    *n_scored = 0;
    for (size_t start = 0; start + 1 < n; start += (size_t)window - 1) {
        size_t len = n - start < (size_t)window ? n - start : (size_t)window;
        if (len < 2)
            break;
        tlm_session_reset(s);
        for (size_t i = 0; i + 1 < len; i++) {
            if (tlm_session_decode(s, ids + start + i, 1, logits, 1) != TLM_OK)
                die("decode");
            out[(*n_scored)++] = log_prob(logits, vocab, ids[start + i + 1]);
        }
    }
    free(logits);
    tlm_session_free(s);
}

static int32_t argmax(const float *logits, int32_t vocab) {
    int32_t best = 0;
    for (int32_t i = 1; i < vocab; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

/* Greedy continuation of `prompt` [n_prompt] by `tokens` ids into out. */
static void greedy(tlm_model *model, const int32_t *prompt, size_t n_prompt, int32_t tokens,
                   int32_t vocab, int32_t *out) {
    tlm_session *s = NULL;
    if (tlm_session_create(&s, model, NULL) != TLM_OK)
        die("session");
    float *logits = malloc(sizeof(float) * (size_t)vocab);
    if (tlm_session_decode(s, prompt, n_prompt, logits, 1) != TLM_OK)
        die("prompt");
    for (int32_t t = 0; t < tokens; t++) {
        out[t] = argmax(logits, vocab);
        if (t + 1 < tokens && tlm_session_decode(s, &out[t], 1, logits, 1) != TLM_OK)
            die("decode");
    }
    free(logits);
    tlm_session_free(s);
}

/* w rounded to bf16 (nearest even) and back. */
static float round_bf16(float w) {
    uint32_t bits;
    memcpy(&bits, &w, sizeof bits);
    bits = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&w, &bits, sizeof w);
    return w;
}

/* Row [cols] rounded as int8 groups of 32 store it: q * scale. */
static void round_int8_row(float *row, int64_t cols) {
    for (int64_t g = 0; g < cols; g += 32) {
        const int64_t end = g + 32 < cols ? g + 32 : cols;
        float top = 0.0f;
        for (int64_t i = g; i < end; i++)
            top = fabsf(row[i]) > top ? fabsf(row[i]) : top;
        const float scale = top / 127.0f;
        for (int64_t i = g; i < end; i++)
            row[i] = scale > 0.0f ? rintf(row[i] / scale) * scale : 0.0f;
    }
}

/* Which group a matrix parameter belongs to: 0 embeddings and output
 * layer, 1 attention, 2 feedforward. */
static int group_of(const char *name) {
    if (strstr(name, "embedding") != NULL || strstr(name, "lm_head") != NULL)
        return 0;
    if (strstr(name, "attn") != NULL)
        return 1;
    return 2;
}

static double text_perplexity(tlm_model *model, const char *text, size_t length) {
    tlm_session *s = NULL;
    double logprob = 0.0;
    int64_t scored = 0;
    if (tlm_session_create(&s, model, NULL) != TLM_OK ||
        tlm_score_text(s, tlm_model_tokenizer(model), text, length, &logprob, &scored) != TLM_OK)
        die("score");
    tlm_session_free(s);
    return exp(-logprob / (double)scored);
}

/* --breakdown: see the top of the file. */
static int breakdown(const char *path, const char *text, size_t length) {
    static const char *const groups[4] = {"embeddings+output", "attention", "feedforward",
                                          "all"};
    static const struct {
        int32_t format;
        const char *name;
    } formats[2] = {{TLM_WEIGHTS_INT8, "int8"}, {TLM_WEIGHTS_BF16, "bf16"}};
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    if (tlm_context_create(&ctx, NULL) != TLM_OK || tlm_model_load(&model, ctx, path, NULL) != TLM_OK)
        die(path);
    const double base = text_perplexity(model, text, length);
    printf("{\"model\": \"%s\", \"format\": \"f32\", \"perplexity\": %.6f}\n", path, base);
    fflush(stdout);
    for (int f = 0; f < 2; f++) {
        tlm_model *q = NULL;
        if (tlm_model_quantize(&q, model, formats[f].format) != TLM_OK)
            die("quantize");
        const double real = text_perplexity(q, text, length);
        tlm_model_free(q);
        printf("{\"model\": \"%s\", \"format\": \"%s\", \"rounded\": \"quantized model\", "
               "\"perplexity\": %.6f, \"perplexity_change\": %.6f}\n",
               path, formats[f].name, real, real / base - 1.0);
        fflush(stdout);
        for (int g = 0; g < 4; g++) {
            tlm_model *copy = NULL;
            /* A float32 copy (tlm_model_quantize to f32 copies a float model). */
            if (tlm_model_quantize(&copy, model, TLM_WEIGHTS_F32) != TLM_OK)
                die("copy");
            for (int32_t i = 0; i < tlm_model_parameter_tensor_count(copy); i++) {
                const char *name = NULL;
                tlm_tensor *t = NULL;
                tlm_model_parameter(copy, i, &name, &t);
                int64_t shape[2];
                if (tlm_tensor_ndim(t) != 2 || (g < 3 && group_of(name) != g))
                    continue;
                tlm_tensor_shape(t, shape, 2);
                float *w = tlm_tensor_data_f32(t);
                for (int64_t r = 0; r < shape[0]; r++) {
                    if (formats[f].format == TLM_WEIGHTS_INT8)
                        round_int8_row(w + r * shape[1], shape[1]);
                    else
                        for (int64_t c2 = 0; c2 < shape[1]; c2++)
                            w[r * shape[1] + c2] = round_bf16(w[r * shape[1] + c2]);
                }
            }
            const double ppl = text_perplexity(copy, text, length);
            printf("{\"model\": \"%s\", \"format\": \"%s\", \"rounded\": \"%s weights in "
                   "float32\", \"perplexity\": %.6f, \"perplexity_change\": %.6f}\n",
                   path, formats[f].name, groups[g], ppl, ppl / base - 1.0);
            fflush(stdout);
            tlm_model_free(copy);
        }
    }
    tlm_model_free(model);
    tlm_context_free(ctx);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: quant_quality MODEL.tlm TEXT [--bytes N] [--prompts P] "
                        "[--tokens T]\n");
        return 2;
    }
    size_t bytes = 16384, step_bytes = 2048;
    int32_t prompts = 20, tokens = 100;
    for (int i = 3; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--bytes") == 0)
            bytes = (size_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "--prompts") == 0)
            prompts = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--tokens") == 0)
            tokens = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--step-bytes") == 0)
            step_bytes = (size_t)atol(argv[i + 1]);
    }
    size_t size = 0;
    char *text = read_file(argv[2], &size);
    if (bytes > size)
        bytes = size;
    for (int i = 3; i < argc; i++)
        if (strcmp(argv[i], "--breakdown") == 0) {
            const int status = breakdown(argv[1], text, bytes);
            free(text);
            return status;
        }
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    if (tlm_context_create(&ctx, NULL) != TLM_OK || tlm_model_load(&model, ctx, argv[1], NULL) != TLM_OK)
        die(argv[1]);
    tlm_tokenizer *tok = tlm_model_tokenizer(model);
    if (tok == NULL) {
        fprintf(stderr, "quant_quality: %s has no tokenizer\n", argv[1]);
        return 1;
    }
    tlm_model_config c;
    tlm_model_config_init(&c);
    tlm_model_get_config(model, &c);
    const int32_t vocab = c.vocab_size;
    const int32_t window = c.max_context < 512 ? c.max_context : 512;
    /* A prompt (at most PROMPT_BYTES + 8 ids) and its continuation fit
     * in the context. */
    if (tokens > c.max_context - (PROMPT_BYTES + 8))
        tokens = c.max_context - (PROMPT_BYTES + 8);
    if (tokens < 1) {
        fprintf(stderr, "quant_quality: max_context %d is too short for the prompts\n",
                (int)c.max_context);
        return 1;
    }
    size_t capacity = bytes + 16, n_ids = 0;
    int32_t *ids = malloc(sizeof(int32_t) * capacity);
    if (tlm_tokenizer_encode(tok, text, bytes, ids, capacity, &n_ids) != TLM_OK)
        die("encode");
    double *base = malloc(sizeof(double) * n_ids), *other = malloc(sizeof(double) * n_ids);
    size_t n_scored = 0, n_other = 0;
    score_ids(model, ids, n_ids, window, vocab, base, &n_scored);
    double base_nll = 0.0;
    for (size_t i = 0; i < n_scored; i++)
        base_nll -= base[i];
    const double base_ppl = exp(base_nll / (double)n_scored);
    /* The stepwise scoring's ids: those of the first step_bytes bytes. */
    if (step_bytes > bytes)
        step_bytes = bytes;
    size_t n_step_ids = 0;
    int32_t *step_ids = malloc(sizeof(int32_t) * (step_bytes + 16));
    if (tlm_tokenizer_encode(tok, text, step_bytes, step_ids, step_bytes + 16, &n_step_ids) !=
        TLM_OK)
        die("encode");
    double *step_base = malloc(sizeof(double) * (n_step_ids + 1));
    double *step_other = malloc(sizeof(double) * (n_step_ids + 1));
    size_t n_step = 0;
    score_ids_stepwise(model, step_ids, n_step_ids, window, vocab, step_base, &n_step);
    double step_base_nll = 0.0;
    for (size_t i = 0; i < n_step; i++)
        step_base_nll -= step_base[i];
    const double step_base_ppl = exp(step_base_nll / (double)(n_step ? n_step : 1));
    printf("{\"model\": \"%s\", \"format\": \"f32\", \"tokens_scored\": %zu, "
           "\"perplexity\": %.6f, \"stepwise_tokens\": %zu, \"stepwise_perplexity\": %.6f}\n",
           argv[1], n_scored, base_ppl, n_step, step_base_ppl);
    fflush(stdout);
    /* The prompts' ids, and float32's greedy continuations. */
    int32_t *prompt_ids = malloc(sizeof(int32_t) * (size_t)prompts * (PROMPT_BYTES + 8));
    size_t *prompt_len = malloc(sizeof(size_t) * (size_t)prompts);
    int32_t *want = malloc(sizeof(int32_t) * (size_t)prompts * (size_t)tokens);
    int32_t *got = malloc(sizeof(int32_t) * (size_t)tokens);
    for (int32_t p = 0; p < prompts; p++) {
        const size_t at = (size - PROMPT_BYTES) / (size_t)prompts * (size_t)p;
        if (tlm_tokenizer_encode(tok, text + at, PROMPT_BYTES, prompt_ids + p * (PROMPT_BYTES + 8),
                                 PROMPT_BYTES + 8, &prompt_len[p]) != TLM_OK)
            die("encode prompt");
        greedy(model, prompt_ids + p * (PROMPT_BYTES + 8), prompt_len[p], tokens, vocab,
               want + (size_t)p * (size_t)tokens);
    }
    static const struct {
        int32_t format;
        const char *name;
    } formats[2] = {{TLM_WEIGHTS_INT8, "int8"}, {TLM_WEIGHTS_BF16, "bf16"}};
    for (int f = 0; f < 2; f++) {
        tlm_model *q = NULL;
        if (tlm_model_quantize(&q, model, formats[f].format) != TLM_OK)
            die("quantize");
        score_ids(q, ids, n_ids, window, vocab, other, &n_other);
        double nll = 0.0, delta = 0.0;
        for (size_t i = 0; i < n_other; i++) {
            nll -= other[i];
            delta += fabs(other[i] - base[i]);
        }
        const double ppl = exp(nll / (double)n_other);
        size_t n_step_other = 0;
        score_ids_stepwise(q, step_ids, n_step_ids, window, vocab, step_other, &n_step_other);
        double step_nll = 0.0, step_delta = 0.0;
        for (size_t i = 0; i < n_step_other; i++) {
            step_nll -= step_other[i];
            step_delta += fabs(step_other[i] - step_base[i]);
        }
        const double step_ppl = exp(step_nll / (double)(n_step_other ? n_step_other : 1));
        long agree = 0;
        double prefix = 0.0;
        for (int32_t p = 0; p < prompts; p++) {
            greedy(q, prompt_ids + p * (PROMPT_BYTES + 8), prompt_len[p], tokens, vocab, got);
            int32_t first = tokens;
            for (int32_t t = 0; t < tokens; t++) {
                const int same = got[t] == want[(size_t)p * (size_t)tokens + (size_t)t];
                agree += same;
                if (!same && first == tokens)
                    first = t;
            }
            prefix += first;
        }
        printf("{\"model\": \"%s\", \"format\": \"%s\", \"tokens_scored\": %zu, "
               "\"perplexity\": %.6f, \"perplexity_change\": %.6f, "
               "\"mean_abs_delta_logprob\": %.6f, \"stepwise_perplexity\": %.6f, "
               "\"stepwise_perplexity_change\": %.6f, \"stepwise_mean_abs_delta_logprob\": %.6f, "
               "\"greedy_prompts\": %d, "
               "\"greedy_tokens\": %d, \"greedy_agreement\": %.4f, "
               "\"greedy_first_difference_mean\": %.2f}\n",
               argv[1], formats[f].name, n_other, ppl, ppl / base_ppl - 1.0,
               delta / (double)n_other, step_ppl, step_ppl / step_base_ppl - 1.0,
               step_delta / (double)(n_step_other ? n_step_other : 1), (int)prompts, (int)tokens,
               (double)agree / ((double)prompts * tokens), prefix / prompts);
        fflush(stdout);
        tlm_model_free(q);
    }
    free(step_ids);
    free(step_base);
    free(step_other);
    free(got);
    free(want);
    free(prompt_len);
    free(prompt_ids);
    free(base);
    free(other);
    free(ids);
    tlm_model_free(model);
    tlm_context_free(ctx);
    free(text);
    return 0;
}
