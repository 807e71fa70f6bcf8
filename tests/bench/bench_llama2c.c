/*
 * tlm against llama2.c's run.c on the same llama2.c checkpoint: greedy
 * decoding tokens/s and prompt (prefill) tokens/s, at 1 thread and every
 * core, medians of rounds that alternate the two programs.
 *
 * The checkpoint is read with tlm_model_import() (format detected from
 * the content); tests/bench/make_llama2c_model.py writes random-weight
 * files of stories15M's, stories110M's and stories260K's shapes (the
 * speed does not depend on the values). When the import fails (a tlm
 * without the llama2.c reader), the shape is taken from the file's header
 * and the model gets random weights: the line says "weights":"random".
 *
 * What is timed is what run.c times (its generate(), 350e04f): run.c
 * starts at BOS, and for pos = 0 .. steps-1 runs forward(token, pos),
 * takes the next token (argmax at -t 0, or the prompt's next token), stops
 * at BOS (id 1), prints the piece and flushes stdout; its clock starts
 * after the first position and it reports (positions - 1) / elapsed as
 * "achieved tok/s". tlm does the same loop: tlm_session_decode of one id,
 * argmax over the logits, the piece through a tlm_token_stream (or the id
 * as text without a tokenizer) written to a file and flushed, the clock
 * started after position 0. run.c's stdout also goes to a file, never to
 * a pipe this program reads, so neither pays for a reader waking up.
 *
 *  - decode: the empty prompt (BOS alone), `steps` positions, greedy.
 *  - prefill: a prompt of `prompt` positions (BOS and " the" repeated, as
 *    run.c encodes "the the the ..."; run.c is stopped at -n P, so every
 *    position it runs is a prompt token). run.c has no batched prompt
 *    pass: it runs the prompt one position at a time, computing all
 *    logits for each. tlm feeds position 0, starts the clock and feeds the
 *    other P - 1 ids in one tlm_session_decode (chunk_tokens = P), with
 *    the last position's logits only.
 *
 * llama2.c: --run DIR names its directory with run_fast (gcc -Ofast
 * -march=native run.c -lm: used at 1 thread) and run_omp (gcc -Ofast
 * -fopenmp -march=native run.c -lm: used with OMP_NUM_THREADS = T above 1)
 * and tokenizer.bin (or --tokenizer PATH). With a tokenizer that tlm can
 * import, the decode line also says whether the two texts agree
 * ("same_text"; compared on printable ASCII and whitespace, since run.c
 * drops unprintable single-byte pieces).
 *
 * int8: --runq DIR names a directory with runq_fast and runq_omp (llama2.c's
 * runq.c built as run.c above) and --q80 FILE the same weights in
 * llama2.c's version 2 format (Q8_0; default: MODEL.bin's name ending in
 * _q80.bin; make_llama2c_model.py --version 2 writes it). tlm's int8 model
 * is that file imported (tlm_model_import; "weights":"imported") or, when
 * this tlm cannot import it, tlm_model_quantize of the float32 model
 * ("weights":"quantized"). Each round then also times tlm int8 against
 * runq.c on the version 2 file, the same loops, positions and prompt.
 *
 * One JSON line per measurement, then the medians:
 *   {"bench":"llama2c_decode","impl":"tlm","format":"f32"|"int8",
 *    "model":"15M","threads":T,"round":R,"positions":N,"tokens_per_s":...,
 *    "load":...,...}
 *   {"bench":"llama2c_decode","impl":"llama2.c","program":"run"|"runq",...}
 *   {"bench":"llama2c_prefill","impl":...,"prompt_tokens":P,...}
 *   {"bench":"llama2c_median","format":"f32","model":"15M","threads":T,
 *    "rounds":R,"decode_tlm":...,"decode_llama2c":...,"decode_ratio":...,
 *    "prefill_tlm":...,"prefill_llama2c":...,"prefill_ratio":...}
 *   (format "int8": against runq.c)
 *   {"bench":"llama2c_int8","model":"15M","threads":T,
 *    "decode_int8_over_tlm_f32":...,"decode_int8_over_run":...,
 *    "decode_int8_over_runq":...,"prefill_...":...}
 * (ratio = tlm tokens/s over llama2.c tokens/s, each the median.)
 *
 *   bench_llama2c MODEL.bin [--name 15M] [--threads 1,2] [--rounds N]
 *                 [--steps N] [--prompt P] [--run DIR] [--runq DIR]
 *                 [--q80 FILE] [--tokenizer PATH]
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tlm.h"

#define MAX_ROUNDS 16
#define MAX_THREAD_COUNTS 4
#define LLAMA2C_BOS 1

typedef struct options {
    const char *model_path;
    const char *name;      /* shown in the lines; default from the file */
    const char *run_dir;   /* llama2.c directory with run_fast/run_omp, or NULL */
    const char *runq_dir;  /* llama2.c directory with runq_fast/runq_omp, or NULL */
    const char *q80_path;  /* the version 2 (Q8_0) file, or NULL: derived */
    const char *tokenizer; /* tokenizer.bin, or NULL: run_dir's (runq_dir's) */
    int32_t threads[MAX_THREAD_COUNTS];
    int n_threads;
    int32_t rounds, steps, prompt;
} options;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, int n) {
    if (n <= 0)
        return 0;
    qsort(values, (size_t)n, sizeof *values, compare_doubles);
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

/* The CPU's model name and family/model numbers, JSON-safe. */
static void cpu_name(char *out, size_t capacity) {
    snprintf(out, capacity, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return;
    char line[512];
    int family = -1, model = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "cpu family", 10) == 0 && family < 0)
            sscanf(line, "cpu family : %d", &family);
        if (strncmp(line, "model\t", 6) == 0 && model < 0)
            sscanf(line, "model : %d", &model);
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *colon = strchr(line, ':');
        if (colon == NULL)
            break;
        colon++;
        while (*colon == ' ' || *colon == '\t')
            colon++;
        size_t n = 0;
        for (; *colon != '\0' && *colon != '\n' && n + 1 < capacity; colon++)
            out[n++] = *colon == '"' || *colon == '\\' ? '\'' : *colon;
        out[n] = '\0';
        break;
    }
    fclose(f);
    const size_t used = strlen(out);
    if (family >= 0 && model >= 0 && used < capacity)
        snprintf(out + used, capacity - used, " (family %d, model %d)", family, model);
}

/* The 1-minute load average, or -1: the machine may be shared. */
static double load_average(void) {
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fscanf(f, "%lf", &load) != 1)
            load = -1;
        fclose(f);
    }
    return load;
}

static int parse_int(const char *text, int low, int high, int32_t *out) {
    char *end = NULL;
    long value = strtol(text, &end, 10);
    if (end == text || *end != '\0' || value < low || value > high)
        return -1;
    *out = (int32_t)value;
    return 0;
}

static int usage(const char *why) {
    fprintf(stderr, "bench_llama2c: %s\nusage: bench_llama2c MODEL.bin [--name NAME] "
            "[--threads 1,2] [--rounds N] [--steps N] [--prompt P] [--run DIR] "
            "[--runq DIR] [--q80 FILE] [--tokenizer PATH]\n", why);
    return 2;
}

static int parse_options(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->rounds = 3;
    o->steps = 256;
    o->prompt = 128;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-') {
            if (o->model_path != NULL)
                return usage("one model file");
            o->model_path = arg;
            continue;
        }
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (value == NULL)
            return usage("every option takes a value");
        i++;
        if (strcmp(arg, "--name") == 0) {
            o->name = value;
        } else if (strcmp(arg, "--run") == 0) {
            o->run_dir = value;
        } else if (strcmp(arg, "--runq") == 0) {
            o->runq_dir = value;
        } else if (strcmp(arg, "--q80") == 0) {
            o->q80_path = value;
        } else if (strcmp(arg, "--tokenizer") == 0) {
            o->tokenizer = value;
        } else if (strcmp(arg, "--rounds") == 0) {
            if (parse_int(value, 1, MAX_ROUNDS, &o->rounds) != 0)
                return usage("--rounds expects 1..16");
        } else if (strcmp(arg, "--steps") == 0) {
            if (parse_int(value, 2, 1 << 16, &o->steps) != 0)
                return usage("--steps expects 2..65536");
        } else if (strcmp(arg, "--prompt") == 0) {
            if (parse_int(value, 2, 1 << 16, &o->prompt) != 0)
                return usage("--prompt expects 2..65536");
        } else if (strcmp(arg, "--threads") == 0) {
            char list[64];
            snprintf(list, sizeof list, "%s", value);
            o->n_threads = 0;
            for (char *part = strtok(list, ","); part != NULL; part = strtok(NULL, ",")) {
                if (o->n_threads == MAX_THREAD_COUNTS ||
                    parse_int(part, 1, 1024, &o->threads[o->n_threads]) != 0)
                    return usage("--threads expects up to 4 counts, e.g. 1,2");
                o->n_threads++;
            }
        } else {
            return usage("unknown option");
        }
    }
    if (o->model_path == NULL)
        return usage("no model file");
    if (o->n_threads == 0) {
        const long cores = sysconf(_SC_NPROCESSORS_ONLN);
        o->threads[o->n_threads++] = 1;
        if (cores > 1)
            o->threads[o->n_threads++] = (int32_t)(cores < 1024 ? cores : 1024);
    }
    return 0;
}

/* A model of the file's shape with random weights, for a tlm that cannot
 * import it: the header is 7 int32 (legacy) or "ak42", version, 7 int32. */
static int random_model_like(tlm_model **out, tlm_context *ctx, const char *path) {
    FILE *f = fopen(path, "rb");
    int32_t h[9] = {0};
    const size_t got = f != NULL ? fread(h, sizeof h[0], 9, f) : 0;
    if (f != NULL)
        fclose(f);
    if (got != 9)
        return TLM_E_IO;
    const int32_t *c7 = h[0] == 0x616b3432 ? h + 2 : h;
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.d_model = c7[0];
    c.d_ff = c7[1];
    c.n_decoder_layers = c7[2];
    c.n_heads = c7[3];
    c.vocab_size = c7[5] < 0 ? -c7[5] : c7[5];
    c.tied_output = c7[5] > 0;
    c.max_context = c7[6];
    c.position = TLM_POSITION_ROTARY;
    c.norm = TLM_NORM_RMS;
    c.norm_eps = 1e-5f;
    c.activation = TLM_ACTIVATION_SWIGLU;
    c.bias = 0;
    c.init_seed = 1;
    if (c7[4] != c7[3]) {
        fprintf(stderr, "bench_llama2c: %d kv heads for %d heads need grouped-query "
                "attention\n", (int)c7[4], (int)c7[3]);
        return TLM_E_UNSUPPORTED;
    }
    return tlm_model_create(out, ctx, &c);
}

static int32_t argmax(const float *logits, int32_t n) {
    int32_t best = 0;
    for (int32_t v = 1; v < n; v++)
        best = logits[v] > logits[best] ? v : best;
    return best;
}

/* Everything one thread count needs, kept over the rounds. */
typedef struct runner {
    int32_t threads, vocab;
    tlm_model *model;
    tlm_tokenizer *tok; /* NULL: ids are written as numbers */
    tlm_session *session;
    tlm_token_stream *stream;
    float *logits;
    FILE *text; /* where tlm writes its pieces, as run.c's stdout */
    char *text_path;
} runner;

/* Write a piece as run.c does (printf + fflush). */
static void emit(runner *r, int32_t id) {
    if (r->stream != NULL) {
        const char *piece = NULL;
        size_t length = 0;
        if (tlm_token_stream_push(r->stream, id, &piece, &length) == TLM_OK && length > 0)
            fwrite(piece, 1, length, r->text);
    } else {
        fprintf(r->text, "%d ", (int)id);
    }
    fflush(r->text);
}

/* run.c's generate() loop with the empty prompt; ids receives the
 * generated ids (at most steps), *n_ids their count. */
static int tlm_decode(runner *r, int32_t steps, double *rate, int32_t *ids,
                      int32_t *n_ids, int32_t *positions) {
    tlm_session_reset(r->session);
    if (freopen(r->text_path, "w", r->text) == NULL)
        return TLM_E_IO;
    if (r->stream != NULL) {
        const char *rest = NULL;
        size_t length = 0;
        tlm_token_stream_flush(r->stream, &rest, &length);
    }
    int32_t token = LLAMA2C_BOS, pos = 0;
    double start = 0;
    *n_ids = 0;
    while (pos < steps) {
        int status = tlm_session_decode(r->session, &token, 1, r->logits, 1);
        if (status != TLM_OK)
            return status;
        const int32_t next = argmax(r->logits, r->vocab);
        pos++;
        if (next == LLAMA2C_BOS)
            break;
        emit(r, next);
        ids[(*n_ids)++] = next;
        token = next;
        if (start == 0)
            start = now_seconds();
    }
    fputc('\n', r->text);
    fflush(r->text);
    *rate = pos > 1 ? (pos - 1) / (now_seconds() - start) : 0;
    *positions = pos;
    return TLM_OK;
}

/* A prompt of P ids: BOS, then " the" (its id from the tokenizer, else
 * 278, its id in Llama 2's vocabulary) repeated, as run.c encodes
 * "the the the ...". */
static void prompt_ids(runner *r, int32_t *ids, int32_t n) {
    int32_t the = r->vocab > 278 ? 278 : r->vocab - 1;
    if (r->tok != NULL) {
        int32_t found[8];
        size_t count = 0;
        if (tlm_tokenizer_encode(r->tok, "the", 3, found, 8, &count) == TLM_OK && count == 1)
            the = found[0];
    }
    ids[0] = LLAMA2C_BOS;
    for (int32_t i = 1; i < n; i++)
        ids[i] = the;
}

/* Position 0, then the clock over the other P - 1 in one pass. */
static int tlm_prefill(runner *r, const int32_t *ids, int32_t n, double *rate) {
    tlm_session_reset(r->session);
    int status = tlm_session_decode(r->session, ids, 1, r->logits, 1);
    const double start = now_seconds();
    if (status == TLM_OK)
        status = tlm_session_decode(r->session, ids + 1, (size_t)(n - 1), r->logits, 1);
    *rate = (n - 1) / (now_seconds() - start);
    return status;
}

/* Runs DIR/STEM_fast (threads 1) or DIR/STEM_omp (stem "run": run.c;
 * "runq": runq.c) on `file`; returns its "achieved tok/s" or a negative
 * value (the reason printed). Its stdout goes to `text_path`. */
static double run_llama2c(const options *o, const char *dir, const char *stem,
                          const char *file, int32_t threads, int32_t steps,
                          const char *prompt, const char *text_path) {
    char program[4096], tokenizer[4096], count[16], steps_text[16];
    snprintf(program, sizeof program, "%s/%s_%s", dir, stem, threads == 1 ? "fast" : "omp");
    if (o->tokenizer != NULL)
        snprintf(tokenizer, sizeof tokenizer, "%s", o->tokenizer);
    else
        snprintf(tokenizer, sizeof tokenizer, "%s/tokenizer.bin", dir);
    snprintf(count, sizeof count, "%d", (int)threads);
    snprintf(steps_text, sizeof steps_text, "%d", (int)steps);
    int err_pipe[2];
    if (pipe(err_pipe) != 0)
        return -1;
    const pid_t pid = fork();
    if (pid < 0) {
        close(err_pipe[0]);
        close(err_pipe[1]);
        return -1;
    }
    if (pid == 0) {
        const int text = open(text_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (text < 0)
            _exit(126);
        dup2(text, STDOUT_FILENO);
        dup2(err_pipe[1], STDERR_FILENO);
        close(text);
        close(err_pipe[0]);
        close(err_pipe[1]);
        setenv("OMP_NUM_THREADS", count, 1);
        execl(program, program, file, "-z", tokenizer, "-t", "0", "-n",
              steps_text, "-i", prompt, (char *)NULL);
        _exit(127);
    }
    close(err_pipe[1]);
    FILE *err = fdopen(err_pipe[0], "r");
    double rate = -1;
    char line[4096];
    while (err != NULL && fgets(line, sizeof line, err) != NULL) {
        double value = 0;
        if (sscanf(line, "achieved tok/s: %lf", &value) == 1)
            rate = value;
        else if (rate < 0)
            fprintf(stderr, "bench_llama2c: %s: %s", program, line);
    }
    if (err != NULL)
        fclose(err);
    else
        close(err_pipe[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (rate < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_llama2c: '%s' gave no \"achieved tok/s\" (exit %d)\n",
                program, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -1;
    }
    return rate;
}

/* The file's bytes that are printable ASCII or whitespace, up to
 * capacity - 1, trailing whitespace removed. */
static size_t printable_text(const char *path, char *out, size_t capacity) {
    FILE *f = fopen(path, "rb");
    size_t n = 0;
    int c;
    while (f != NULL && (c = fgetc(f)) != EOF)
        if (c < 128 && (isprint(c) || isspace(c)) && n + 1 < capacity)
            out[n++] = (char)c;
    if (f != NULL)
        fclose(f);
    while (n > 0 && isspace((unsigned char)out[n - 1]))
        n--;
    out[n] = '\0';
    return n;
}

static int runner_init(runner *r, tlm_context *ctx, tlm_model *model, tlm_tokenizer *tok,
                       int32_t threads, int32_t prompt, const char *text_path) {
    memset(r, 0, sizeof *r);
    r->threads = threads;
    r->model = model;
    r->tok = tok;
    tlm_model_config c;
    tlm_model_config_init(&c);
    int status = tlm_model_get_config(model, &c);
    r->vocab = c.vocab_size;
    tlm_session_params sp;
    tlm_session_params_init(&sp);
    sp.n_threads = threads;
    sp.chunk_tokens = prompt;
    if (status == TLM_OK)
        status = tlm_session_create(&r->session, model, &sp);
    if (status == TLM_OK && tok != NULL)
        status = tlm_token_stream_create(&r->stream, tok);
    r->logits = malloc((size_t)c.vocab_size * sizeof *r->logits);
    r->text_path = malloc(strlen(text_path) + 1);
    if (r->text_path != NULL)
        strcpy(r->text_path, text_path);
    r->text = r->text_path != NULL ? fopen(text_path, "w") : NULL;
    if (status == TLM_OK && (r->logits == NULL || r->text == NULL))
        status = TLM_E_NOMEM;
    (void)ctx;
    return status;
}

static void runner_free(runner *r) {
    tlm_token_stream_free(r->stream);
    tlm_session_free(r->session);
    free(r->logits);
    if (r->text != NULL)
        fclose(r->text);
    if (r->text_path != NULL)
        remove(r->text_path);
    free(r->text_path);
}

/* One comparison: a tlm model (a runner per thread count) against one
 * llama2.c program on the file that holds the same weights, timed in the
 * same rounds. */
typedef struct pair {
    const char *format;  /* the tlm model's weights: "f32", "int8" */
    const char *weights; /* where they come from: "file", "random",
                            "imported", "quantized" */
    const char *dir;     /* the llama2.c program's directory, or NULL */
    const char *stem;    /* "run" (run.c) or "runq" (runq.c) */
    const char *file;    /* its model file */
    runner runners[MAX_THREAD_COUNTS];
    /* [0]: tlm, [1]: llama2.c; llama2.c's rounds counted apart (a run
     * that fails is left out) */
    double decode[2][MAX_THREAD_COUNTS][MAX_ROUNDS], prefill[2][MAX_THREAD_COUNTS][MAX_ROUNDS];
    int n_decode_run[MAX_THREAD_COUNTS], n_prefill_run[MAX_THREAD_COUNTS];
} pair;

/* Everything one round of one pair at one thread count shares. */
typedef struct round_setup {
    const options *o;
    const char *name, *cpu, *tlm_text, *run_text, *prompt_text;
    int has_tokenizer;
    int32_t *ids; /* room for steps + prompt ids */
} round_setup;

/* One round of `p` at thread count index t: tlm's decode, the llama2.c
 * program's, tlm's prefill, the program's; a JSON line each. */
static int time_round(pair *p, const round_setup *rs, int t, int round) {
    const options *o = rs->o;
    runner *r = &p->runners[t];
    int32_t n_ids = 0, positions = 0;
    int status = tlm_decode(r, o->steps, &p->decode[0][t][round], rs->ids, &n_ids, &positions);
    if (status != TLM_OK)
        return status;
    printf("{\"bench\":\"llama2c_decode\",\"impl\":\"tlm\",\"format\":\"%s\",\"model\":\"%s\","
           "\"weights\":\"%s\",\"threads\":%d,\"round\":%d,\"positions\":%d,"
           "\"tokens_per_s\":%.2f,\"load\":%.2f,\"cpu\":\"%s\"}\n",
           p->format, rs->name, p->weights, (int)r->threads, round, (int)positions,
           p->decode[0][t][round], load_average(), rs->cpu);
    fflush(stdout);
    if (p->dir != NULL) {
        const double rate = run_llama2c(o, p->dir, p->stem, p->file, r->threads, o->steps, "",
                                        rs->run_text);
        if (rate > 0) {
            p->decode[1][t][p->n_decode_run[t]++] = rate;
            printf("{\"bench\":\"llama2c_decode\",\"impl\":\"llama2.c\",\"program\":\"%s\","
                   "\"model\":\"%s\",\"threads\":%d,\"round\":%d,"
                   "\"positions\":%d,\"tokens_per_s\":%.2f,\"load\":%.2f",
                   p->stem, rs->name, (int)r->threads, round, (int)o->steps, rate,
                   load_average());
            if (rs->has_tokenizer) {
                static char a[1 << 16], b[1 << 16];
                printable_text(rs->tlm_text, a, sizeof a);
                printable_text(rs->run_text, b, sizeof b);
                printf(",\"same_text\":%s", strcmp(a, b) == 0 ? "true" : "false");
            }
            printf(",\"cpu\":\"%s\"}\n", rs->cpu);
            fflush(stdout);
        }
    }
    prompt_ids(r, rs->ids, o->prompt);
    status = tlm_prefill(r, rs->ids, o->prompt, &p->prefill[0][t][round]);
    if (status != TLM_OK)
        return status;
    printf("{\"bench\":\"llama2c_prefill\",\"impl\":\"tlm\",\"format\":\"%s\",\"model\":\"%s\","
           "\"weights\":\"%s\",\"threads\":%d,\"round\":%d,\"prompt_tokens\":%d,"
           "\"tokens_per_s\":%.2f,\"load\":%.2f,\"cpu\":\"%s\"}\n",
           p->format, rs->name, p->weights, (int)r->threads, round, (int)o->prompt,
           p->prefill[0][t][round], load_average(), rs->cpu);
    fflush(stdout);
    if (p->dir != NULL) {
        const double rate = run_llama2c(o, p->dir, p->stem, p->file, r->threads, o->prompt,
                                        rs->prompt_text, rs->run_text);
        if (rate > 0) {
            p->prefill[1][t][p->n_prefill_run[t]++] = rate;
            printf("{\"bench\":\"llama2c_prefill\",\"impl\":\"llama2.c\",\"program\":\"%s\","
                   "\"model\":\"%s\",\"threads\":%d,\"round\":%d,"
                   "\"prompt_tokens\":%d,\"tokens_per_s\":%.2f,\"load\":%.2f,"
                   "\"cpu\":\"%s\"}\n",
                   p->stem, rs->name, (int)r->threads, round, (int)o->prompt, rate,
                   load_average(), rs->cpu);
            fflush(stdout);
        }
    }
    return TLM_OK;
}

/* The medians of `p` at thread count index t, and their ratio. */
static void print_medians(pair *p, const options *o, const char *name, const char *cpu,
                          int t) {
    const double d = median(p->decode[0][t], o->rounds),
                 pf = median(p->prefill[0][t], o->rounds);
    printf("{\"bench\":\"llama2c_median\",\"format\":\"%s\",\"model\":\"%s\","
           "\"weights\":\"%s\",\"threads\":%d,\"rounds\":%d,\"steps\":%d,"
           "\"prompt_tokens\":%d,\"decode_tlm\":%.2f,\"prefill_tlm\":%.2f",
           p->format, name, p->weights, (int)o->threads[t], (int)o->rounds, (int)o->steps,
           (int)o->prompt, d, pf);
    if (p->dir != NULL)
        printf(",\"program\":\"%s\"", p->stem);
    /* Ratios of the medians; decode and prefill counted apart, since
     * run.c can fail one and not the other (stories260K's shape: its
     * prefill needs the model's own 512-piece tokenizer). */
    if (p->n_decode_run[t] > 0) {
        const double dr = median(p->decode[1][t], p->n_decode_run[t]);
        printf(",\"llama2c_rounds\":%d,\"decode_llama2c\":%.2f,\"decode_ratio\":%.3f",
               p->n_decode_run[t], dr, d / dr);
    }
    if (p->n_prefill_run[t] > 0) {
        const double pr = median(p->prefill[1][t], p->n_prefill_run[t]);
        printf(",\"llama2c_prefill_rounds\":%d,\"prefill_llama2c\":%.2f,"
               "\"prefill_ratio\":%.3f", p->n_prefill_run[t], pr, pf / pr);
    }
    printf(",\"cpu\":\"%s\"}\n", cpu);
}

/* The int8 model of the comparison with runq.c: the version 2 file
 * imported (lossless when its group size is a multiple of 32), or, for a
 * tlm that cannot import it, the float32 model quantized (*source says
 * which). */
static int int8_model(tlm_model **out, tlm_context *ctx, const tlm_model *f32,
                      const char *q80_path, const char **source) {
    *out = NULL;
    if (q80_path != NULL) {
        tlm_model *imported = NULL;
        if (tlm_model_import(&imported, ctx, q80_path, NULL) == TLM_OK &&
            tlm_model_weight_format(imported) == TLM_WEIGHTS_INT8) {
            *out = imported;
            *source = "imported";
            return TLM_OK;
        }
        fprintf(stderr, "bench_llama2c: %s: %s\nbench_llama2c: timing tlm_model_quantize "
                "of the float32 model instead\n", q80_path,
                imported != NULL ? "not imported as int8" : tlm_last_error());
        tlm_model_free(imported);
    }
    *source = "quantized";
    return tlm_model_quantize(out, f32, TLM_WEIGHTS_INT8);
}

int main(int argc, char **argv) {
    options o;
    int status = parse_options(argc, argv, &o);
    if (status != 0)
        return status;
    tlm_context *ctx = NULL;
    tlm_model *model = NULL, *model_int8 = NULL;
    tlm_tokenizer *tok = NULL;
    const char *weights = "file";
    status = tlm_context_create(&ctx, NULL);
    if (status == TLM_OK && tlm_model_import(&model, ctx, o.model_path, NULL) != TLM_OK) {
        fprintf(stderr, "bench_llama2c: tlm_model_import: %s\n"
                "bench_llama2c: timing a random model of the file's shape instead\n",
                tlm_last_error());
        weights = "random";
        status = random_model_like(&model, ctx, o.model_path);
    }
    if (status != TLM_OK) {
        fprintf(stderr, "bench_llama2c: %s\n", tlm_last_error());
        tlm_context_free(ctx);
        return 1;
    }
    /* With --runq: the version 2 file, --q80 or MODEL.bin's name with
     * _q80.bin for .bin. */
    char q80_path[4096] = "";
    if (o.q80_path != NULL) {
        snprintf(q80_path, sizeof q80_path, "%s", o.q80_path);
    } else if (o.runq_dir != NULL) {
        const size_t n = strlen(o.model_path);
        if (n > 4 && strcmp(o.model_path + n - 4, ".bin") == 0 && n + 5 < sizeof q80_path)
            snprintf(q80_path, sizeof q80_path, "%.*s_q80.bin", (int)(n - 4), o.model_path);
    }
    const int with_int8 = o.runq_dir != NULL || o.q80_path != NULL;
    const char *int8_source = NULL;
    if (with_int8 &&
        int8_model(&model_int8, ctx, model, q80_path[0] ? q80_path : NULL, &int8_source) !=
            TLM_OK) {
        fprintf(stderr, "bench_llama2c: int8 model: %s\n", tlm_last_error());
        tlm_model_free(model);
        tlm_context_free(ctx);
        return 1;
    }
    if (with_int8 && o.runq_dir != NULL && q80_path[0] == '\0') {
        fprintf(stderr, "bench_llama2c: --runq needs the version 2 file (--q80 FILE)\n");
        o.runq_dir = NULL;
    }
    tlm_model_config c;
    tlm_model_config_init(&c);
    tlm_model_get_config(model, &c);
    char default_name[32];
    snprintf(default_name, sizeof default_name, "%lldparams",
             (long long)tlm_model_parameter_count(model));
    const char *name = o.name != NULL ? o.name : default_name;
    if (o.steps > c.max_context)
        o.steps = c.max_context;
    if (o.prompt > c.max_context)
        o.prompt = c.max_context;
    char tokenizer_path[4096] = "";
    const char *tokenizer_dir = o.run_dir != NULL ? o.run_dir : o.runq_dir;
    if (o.tokenizer != NULL)
        snprintf(tokenizer_path, sizeof tokenizer_path, "%s", o.tokenizer);
    else if (tokenizer_dir != NULL)
        snprintf(tokenizer_path, sizeof tokenizer_path, "%s/tokenizer.bin", tokenizer_dir);
    if (tokenizer_path[0] != '\0' &&
        tlm_tokenizer_import(&tok, ctx, tokenizer_path) != TLM_OK) {
        fprintf(stderr, "bench_llama2c: tlm_tokenizer_import: %s (writing ids instead of "
                "pieces)\n", tlm_last_error());
        tok = NULL;
    }
    if (tok != NULL && tlm_tokenizer_vocab_size(tok) != c.vocab_size) {
        /* run.c reads the first vocab_size pieces of a larger file; tlm
         * writes ids then (as much work per token as a piece). */
        tlm_tokenizer_free(tok);
        tok = NULL;
    }
    char cpu[400], tlm_text[64], run_text[64];
    cpu_name(cpu, sizeof cpu);
    snprintf(tlm_text, sizeof tlm_text, "/tmp/bench_llama2c_tlm_%ld.txt", (long)getpid());
    snprintf(run_text, sizeof run_text, "/tmp/bench_llama2c_run_%ld.txt", (long)getpid());
    /* "the the the ...", 2P words: more tokens than the prompt, so that
     * run.c at -n P runs P prompt positions. */
    const size_t prompt_bytes = 8 * (size_t)o.prompt + 1;
    char *prompt_text = malloc(prompt_bytes);
    int32_t *ids = malloc((size_t)(o.steps + o.prompt) * sizeof *ids);
    if (prompt_text == NULL || ids == NULL)
        status = TLM_E_NOMEM;
    for (int32_t i = 0; status == TLM_OK && i < 2 * o.prompt; i++)
        memcpy(prompt_text + 4 * i, i + 1 < 2 * o.prompt ? "the " : "the\0", 4);
    if (prompt_text != NULL)
        prompt_text[prompt_bytes - 1] = '\0';

    /* pairs[0]: tlm's float32 model against run.c on MODEL.bin; pairs[1]
     * (with --runq or --q80): tlm's int8 model against runq.c on the
     * version 2 file. */
    static pair pairs[2];
    memset(pairs, 0, sizeof pairs);
    pairs[0] = (pair){.format = "f32", .weights = weights, .dir = o.run_dir, .stem = "run",
                      .file = o.model_path};
    pairs[1] = (pair){.format = "int8", .weights = int8_source, .dir = o.runq_dir,
                      .stem = "runq", .file = q80_path};
    const int n_pairs = with_int8 ? 2 : 1;
    tlm_model *models[2] = {model, model_int8};
    for (int p = 0; p < n_pairs; p++)
        for (int t = 0; t < o.n_threads && status == TLM_OK; t++)
            status = runner_init(&pairs[p].runners[t], ctx, models[p], tok, o.threads[t],
                                 o.prompt, tlm_text);
    const round_setup rs = {&o, name, cpu, tlm_text, run_text, prompt_text, tok != NULL, ids};
    /* Rounds alternate the programs and the thread counts, so that a
     * change of load on the machine touches all of them alike. */
    for (int round = 0; round < o.rounds && status == TLM_OK; round++)
        for (int t = 0; t < o.n_threads && status == TLM_OK; t++)
            for (int p = 0; p < n_pairs && status == TLM_OK; p++)
                status = time_round(&pairs[p], &rs, t, round);
    for (int t = 0; t < o.n_threads && status == TLM_OK; t++) {
        for (int p = 0; p < n_pairs; p++)
            print_medians(&pairs[p], &o, name, cpu, t);
        if (n_pairs < 2)
            continue;
        /* tlm int8 over tlm float32 and over run.c (float32), medians of
         * the same rounds. */
        const double d8 = median(pairs[1].decode[0][t], o.rounds),
                     p8 = median(pairs[1].prefill[0][t], o.rounds);
        printf("{\"bench\":\"llama2c_int8\",\"model\":\"%s\",\"int8_weights\":\"%s\","
               "\"threads\":%d,\"rounds\":%d,\"decode_int8_over_tlm_f32\":%.3f,"
               "\"prefill_int8_over_tlm_f32\":%.3f",
               name, int8_source, (int)o.threads[t], (int)o.rounds,
               d8 / median(pairs[0].decode[0][t], o.rounds),
               p8 / median(pairs[0].prefill[0][t], o.rounds));
        if (pairs[0].n_decode_run[t] > 0)
            printf(",\"decode_int8_over_run\":%.3f",
                   d8 / median(pairs[0].decode[1][t], pairs[0].n_decode_run[t]));
        if (pairs[1].n_decode_run[t] > 0)
            printf(",\"decode_int8_over_runq\":%.3f",
                   d8 / median(pairs[1].decode[1][t], pairs[1].n_decode_run[t]));
        if (pairs[0].n_prefill_run[t] > 0)
            printf(",\"prefill_int8_over_run\":%.3f",
                   p8 / median(pairs[0].prefill[1][t], pairs[0].n_prefill_run[t]));
        if (pairs[1].n_prefill_run[t] > 0)
            printf(",\"prefill_int8_over_runq\":%.3f",
                   p8 / median(pairs[1].prefill[1][t], pairs[1].n_prefill_run[t]));
        printf(",\"cpu\":\"%s\"}\n", cpu);
    }
    if (status != TLM_OK)
        fprintf(stderr, "bench_llama2c: %s\n", tlm_last_error());
    for (int p = 0; p < n_pairs; p++)
        for (int t = 0; t < o.n_threads; t++)
            runner_free(&pairs[p].runners[t]);
    remove(run_text);
    free(prompt_text);
    free(ids);
    tlm_tokenizer_free(tok);
    tlm_model_free(model_int8);
    tlm_model_free(model);
    tlm_context_free(ctx);
    return status == TLM_OK ? 0 : 1;
}
