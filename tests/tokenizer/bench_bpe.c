/*
 * BPE benchmark: training time and encoding speed on one core, printed as
 * JSON lines:
 *   {"bench":"bpe_train","seconds":S,"vocab":V,"corpus_bytes":N,...}
 *   {"bench":"bpe_encode","mb_per_s":R,"vocab":V,...}
 *   {"bench":"gpt2_bpe_encode","mb_per_s":R,...}  GPT-2's tokenizer (the
 *     gpt2/ directory of the first data directory that has it; skipped
 *     without it)
 *   {"bench":"sentencepiece_encode","mb_per_s":R,...}  a SentencePiece
 *     model given with --sp MODEL (tokenizer.model or tokenizer.bin; the
 *     build passes the fixture tests/tokenizer/sp_bpe.model)
 * (MB = 10^6 bytes). Times are the thread's CPU time, so that other
 * work on the machine does not count; the wall-clock rate is reported too
 * ("wall_mb_per_s"). The corpus is tinyshakespeare.txt from the first
 * directory argument that has it, else a generated English-like text of
 * the same size. Run with `meson test -C build --benchmark` or directly:
 * bench_bpe [DATA_DIR...] [--vocab V] [--sp MODEL].
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tlm.h"
#include "tok_test_util.h"

static double seconds_of(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu_now(void) { return seconds_of(CLOCK_THREAD_CPUTIME_ID); }
static double wall_now(void) { return seconds_of(CLOCK_MONOTONIC); }

/* Encodes the corpus at least 5 times and for 0.5 s of CPU time and prints
 * the rates as the JSON line `name`. */
static int bench_encode(tlm_tokenizer *tok, const char *name, const unsigned char *corpus,
                        size_t size, const char *source) {
    /* SentencePiece: the dummy prefix, and up to 3 byte pieces a byte. */
    const size_t capacity = 3 * size + 3;
    int32_t *ids = malloc(capacity * sizeof *ids);
    if (ids == NULL) {
        fprintf(stderr, "bench_bpe: out of memory for %zu ids\n", size);
        return 1;
    }
    size_t n_ids = 0, encoded = 0;
    const double t0 = cpu_now(), wall0 = wall_now();
    double elapsed = 0.0;
    for (int pass = 0; pass < 5 || elapsed < 0.5; pass++) {
        if (tlm_tokenizer_encode(tok, (const char *)corpus, size, ids, capacity, &n_ids) !=
            TLM_OK) {
            fprintf(stderr, "bench_bpe: %s\n", tlm_last_error());
            free(ids);
            return 1;
        }
        encoded += size;
        elapsed = cpu_now() - t0;
    }
    const double wall = wall_now() - wall0;
    printf("{\"bench\":\"%s\",\"mb_per_s\":%.2f,\"wall_mb_per_s\":%.2f,\"vocab\":%d,"
           "\"ids_per_byte\":%.4f,\"corpus\":\"%s\"}\n",
           name, (double)encoded / 1e6 / elapsed, (double)encoded / 1e6 / wall,
           (int)tlm_tokenizer_vocab_size(tok), (double)n_ids / (double)size, source);
    free(ids);
    return 0;
}

/* Words of random syllables with Zipf-like reuse, punctuation and lines. */
static unsigned char *generated_corpus(size_t size) {
    static const char *const syllables[] = {"th", "e", "an", "re", "on", "at", "en", "nd",
                                            "ti", "es", "or", "te", "of", "ed", "is", "it",
                                            "al", "ar", "st", "to", "nt", "ng", "se", "ha"};
    unsigned char *text = malloc(size);
    if (text == NULL)
        return NULL;
    char words[2000][24];
    uint64_t rng = 1;
    for (int w = 0; w < 2000; w++) {
        int parts = 1 + (int)test_below(&rng, 4);
        words[w][0] = '\0';
        for (int p = 0; p < parts; p++)
            strcat(words[w], syllables[test_below(&rng, 24)]);
    }
    size_t n = 0;
    while (n + 32 < size) {
        /* A skewed choice: small indices are much more frequent. */
        uint32_t r = test_below(&rng, 2000);
        uint32_t w = (r * r) / 2000;
        size_t len = strlen(words[w]);
        text[n++] = ' ';
        memcpy(text + n, words[w], len);
        n += len;
        uint32_t p = test_below(&rng, 20);
        if (p == 0)
            text[n++] = ',';
        else if (p == 1) {
            text[n++] = '.';
            text[n++] = '\n';
        }
    }
    while (n < size)
        text[n++] = '\n';
    return text;
}

int main(int argc, char **argv) {
    int32_t vocab = 1024;
    const char *sp_model = NULL;
    int dirs = argc;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--vocab") == 0 || strcmp(argv[i], "--sp") == 0) {
            if (argv[i][2] == 'v')
                vocab = (int32_t)atoi(argv[i + 1]);
            else
                sp_model = argv[i + 1];
            if (i < dirs)
                dirs = i;
            i++;
        }
    size_t size;
    unsigned char *corpus = test_shakespeare(dirs, argv, &size);
    const char *source = "tinyshakespeare";
    if (corpus == NULL) {
        size = 1115394;
        corpus = generated_corpus(size);
        source = "generated";
        if (corpus == NULL) {
            fprintf(stderr, "bench_bpe: out of memory for a %zu-byte corpus\n", size);
            return 1;
        }
    }

    tlm_tokenizer_params params;
    tlm_tokenizer_params_init(&params);
    params.vocab_size = vocab;
    tlm_tokenizer *tok = NULL;
    double t0 = cpu_now();
    int status = tlm_tokenizer_train(&tok, NULL, (const char *)corpus, size, &params);
    double train_seconds = cpu_now() - t0;
    if (status != TLM_OK) {
        fprintf(stderr, "bench_bpe: %s\n", tlm_last_error());
        return 1;
    }
    printf("{\"bench\":\"bpe_train\",\"seconds\":%.4f,\"vocab\":%d,\"corpus_bytes\":%zu,"
           "\"corpus\":\"%s\"}\n",
           train_seconds, (int)tlm_tokenizer_vocab_size(tok), size, source);

    status = bench_encode(tok, "bpe_encode", corpus, size, source);
    tlm_tokenizer_free(tok);
    tok = NULL;
    for (int i = 1; status == TLM_OK && i < dirs; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/gpt2", argv[i]);
        if (tlm_tokenizer_import(&tok, NULL, path) == TLM_OK) {
            status = bench_encode(tok, "gpt2_bpe_encode", corpus, size, source);
            break;
        }
    }
    tlm_tokenizer_free(tok);
    tok = NULL;
    if (status == TLM_OK && sp_model != NULL) {
        if (tlm_tokenizer_import(&tok, NULL, sp_model) != TLM_OK) {
            fprintf(stderr, "bench_bpe: %s\n", tlm_last_error());
            status = 1;
        } else {
            status = bench_encode(tok, "sentencepiece_encode", corpus, size, source);
        }
        tlm_tokenizer_free(tok);
    }
    free(corpus);
    return status == TLM_OK ? 0 : 1;
}
