/*
 * Training speed and quality on tinyshakespeare, through the public API
 * only (model + dataset + trainer, as a program using tlm would train).
 *
 * Two configurations, both character-level decoder-only GPTs (GELU, layer
 * norm, learned positions, no biases, tied output, no dropout), with
 * nanoGPT's optimizer settings (AdamW lr 1e-3, betas 0.9/0.99, weight
 * decay 0.1, gradient clipping at 1):
 *   nanogpt-cpu  4 layers, 4 heads, width 128, context 64, batch 12
 *                (nanoGPT's README "I only have a macbook" run)
 *   6x384        6 layers, 6 heads, width 384, context 256, batch 16
 *
 * Speed mode (the default) prints one JSON line per configuration and
 * thread count, after a few warm-up steps:
 *   {"bench":"train","impl":"tlm","config":"nanogpt-cpu","threads":1,
 *    "batch":12,"context":64,"steps":30,"tokens_per_s":...,
 *    "ms_per_step":...,"ms_per_step_mean":...,"params":...,
 *    "peak_rss_bytes":...,"estimate_bytes":...}
 * ms_per_step is the median over the measured steps (robust against other
 * jobs on a shared machine), tokens_per_s = batch * context / that.
 * peak_rss_bytes is the process's peak resident memory (Linux's VmHWM,
 * restarted before each run through /proc/self/clear_refs; where it cannot
 * be restarted, the peak of the process so far; -1 without /proc), so
 * the text and the program count too; estimate_bytes is what
 * tlm_model_memory_estimate says one training step needs.
 *
 * Quality mode (--quality) trains the nanogpt-cpu configuration for 2000
 * steps with nanoGPT's schedule for it (100 warm-up steps, cosine decay to
 * 1e-4 at step 2000) and prints the validation loss:
 *   {"bench":"train_quality","impl":"tlm","config":"nanogpt-cpu",
 *    "steps":2000,"val_loss":...,...}
 * with {"bench":"train_curve",...} lines every --eval-every steps before.
 * Both splits are evaluated on a FIXED set: --eval-batches batches drawn
 * from --eval-seed (default 2026) by tlm_trainer_evaluate_seeded, the same
 * windows at every evaluation and for every training seed and precision,
 * so that seeds and precisions compare on the same text. (Before
 * --eval-seed existed the windows came from the training seed; --eval-seed
 * equal to --seed reproduces those runs.)
 *
 * The text: --data PATH, else $TLM_BENCH_DATA, else
 * ../shared/data/tinyshakespeare.txt next to the source tree. When it is
 * missing the program says so and exits with 77 (skipped). The vocabulary
 * is the text's distinct bytes in increasing order (65 for tinyshakespeare,
 * as nanoGPT's prepare.py), the split 90/10.
 *
 * Usage: bench_train [--data PATH] [--config nanogpt-cpu|6x384|all]
 *                    [--threads 1,2] [--steps N] [--warmup N] [--seed N]
 *                    [--quality] [--eval-every N] [--eval-batches N]
 *                    [--eval-seed N] [--decay nanogpt|tlm] [--gelu tanh|exact]
 *                    [--precision float32|bf16]
 * --gelu exact uses the erf form nanoGPT's model has (nn.GELU()); the
 * default is the tanh form, whose kernel is vectorized (torch_reference.py
 * takes the same option). --precision bf16 trains with bf16 matrix
 * products (tlm_trainer_params::precision); every line says which.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_gpt.h"
#include "bench_text.h"
#include "tlm.h"

typedef struct bench_config {
    const char *name;
    int32_t layers, heads, width, context, batch;
    int32_t steps, warmup; /* default measured and warm-up steps (speed) */
} bench_config;

static const bench_config configs[] = {
    {"nanogpt-cpu", 4, 4, 128, 64, 12, 30, 3},
    {"6x384", 6, 6, 384, 256, 16, 5, 2},
};
#define N_CONFIGS ((int)(sizeof configs / sizeof configs[0]))

typedef struct options {
    const char *data;
    const char *config;   /* a name or "all" */
    int32_t threads[8];
    int n_threads;
    int32_t steps;        /* 0: the configuration's default */
    int32_t warmup;       /* -1: the configuration's default */
    uint64_t seed;
    int quality;
    int32_t eval_every;
    int32_t eval_batches;
    uint64_t eval_seed;   /* names the fixed evaluation windows */
    int decay_embeddings; /* 1: nanoGPT's groups (every 2-D tensor) */
    int gelu_exact;       /* 1: erf GELU, as nanoGPT; 0: tanh form */
    int32_t precision;    /* an enum tlm_precision */
} options;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(const char *what, const char *message) {
    fprintf(stderr, "bench_train: %s: %s\n", what, message);
    return 1;
}

/* The run of configuration `c` with the options' recipe, set up as
 * nanoGPT's train.py sets up the same run: no dropout, lr 1e-3, and
 * train_shakespeare_char.py's schedule (100 warm-up steps, cosine decay
 * to min_lr 1e-4 at lr_decay_iters = max_iters = total_steps). */
static int run_create(bench_gpt_run *r, const bench_config *c, const bench_text *text,
                      const options *o, int32_t threads, int32_t total_steps) {
    const int32_t warmup = total_steps > 100 ? 100 : 0;
    const bench_gpt_recipe recipe = {
        .layers = c->layers, .heads = c->heads, .width = c->width,
        .context = c->context, .gelu_exact = o->gelu_exact, .dropout = 0,
        .seed = o->seed, .threads = threads, .batch = c->batch, .accumulation = 1,
        .lr = 1e-3f, .min_lr = 1e-4f, .warmup_steps = warmup,
        .decay_end_step = total_steps > warmup ? total_steps : warmup + 1,
        .decay_embeddings = o->decay_embeddings, .precision = o->precision};
    return bench_gpt_run_create(r, "bench_train", &recipe, text);
}

static int step(bench_gpt_run *r, tlm_step_info *info) {
    memset(info, 0, sizeof *info);
    tlm_step_info_init(info);
    const int status = tlm_trainer_step(r->trainer, info);
    if (status != TLM_OK && status != TLM_E_NONFINITE)
        return fail("tlm_trainer_step", tlm_trainer_last_error(r->trainer));
    return 0;
}

/* The kB value of a "Field:" line of /proc/self/status, or -1 (not
 * Linux). */
static long long proc_status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    const size_t length = strlen(field);
    char line[256];
    long long kib = -1;
    while (f != NULL && kib < 0 && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, length) == 0 && line[length] == ':' &&
            sscanf(line + length + 1, "%lld", &kib) != 1)
            kib = -1;
    if (f != NULL)
        fclose(f);
    return kib;
}

/* Restarts the peak resident memory (VmHWM) from the current resident
 * memory (Linux 4.0 and later; nothing elsewhere). */
static void restart_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f != NULL) {
        fputs("5", f);
        fclose(f);
    }
}

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_speed(const bench_config *c, const bench_text *text,
                       const options *o, int32_t threads) {
    const int32_t steps = o->steps > 0 ? o->steps : c->steps;
    const int32_t warmup = o->warmup >= 0 ? o->warmup : c->warmup;
    bench_gpt_run r;
    memset(&r, 0, sizeof r);
    double *times = malloc((size_t)steps * sizeof *times);
    restart_peak_rss();
    int status = times == NULL ? fail("bench_speed", "out of memory")
                               : run_create(&r, c, text, o, threads, 2000);
    tlm_step_info info;
    for (int32_t i = 0; status == 0 && i < warmup; i++)
        status = step(&r, &info);
    double total = 0;
    for (int32_t i = 0; status == 0 && i < steps; i++) {
        const double start = now_seconds();
        status = step(&r, &info);
        times[i] = now_seconds() - start;
        total += times[i];
    }
    const long long peak_kib = proc_status_kib("VmHWM");
    int64_t estimate = -1;
    if (status == 0 &&
        tlm_model_memory_estimate(r.model, TLM_MEMORY_TRAINING, c->batch,
                                  c->context, &estimate) != TLM_OK)
        estimate = -1;
    if (status == 0) {
        qsort(times, (size_t)steps, sizeof *times, compare_doubles);
        const double median = steps % 2 ? times[steps / 2]
                                        : 0.5 * (times[steps / 2 - 1] + times[steps / 2]);
        const double tokens = (double)c->batch * (double)c->context;
        printf("{\"bench\":\"train\",\"impl\":\"tlm\",\"config\":\"%s\","
               "\"precision\":\"%s\",\"layers\":%d,\"heads\":%d,\"width\":%d,\"threads\":%d,"
               "\"batch\":%d,\"context\":%d,\"steps\":%d,"
               "\"tokens_per_s\":%.1f,\"ms_per_step\":%.3f,"
               "\"ms_per_step_mean\":%.3f,\"ms_per_step_min\":%.3f,"
               "\"loss\":%.4f,\"params\":%lld,\"peak_rss_bytes\":%lld,"
               "\"estimate_bytes\":%lld}\n",
               c->name, o->precision == TLM_PRECISION_BF16 ? "bf16" : "float32",
               (int)c->layers, (int)c->heads, (int)c->width,
               tlm_context_thread_count(r.ctx), (int)c->batch, (int)c->context,
               (int)steps, tokens / median, 1e3 * median,
               1e3 * total / (double)steps, 1e3 * times[0], (double)info.loss,
               (long long)tlm_model_parameter_count(r.model),
               peak_kib < 0 ? -1LL : peak_kib * 1024, (long long)estimate);
        fflush(stdout);
    }
    free(times);
    bench_gpt_run_free(&r);
    return status;
}

/* The mean loss of each split on its fixed windows: the same windows at
 * every evaluation, for every training seed and precision (so that runs
 * compare with each other, not only with themselves). */
static int evaluate(bench_gpt_run *r, const options *o, float *train, float *val) {
    if (tlm_trainer_evaluate_seeded(r->trainer, TLM_SPLIT_TRAIN, o->eval_batches,
                                    o->eval_seed, train) != TLM_OK ||
        tlm_trainer_evaluate_seeded(r->trainer, TLM_SPLIT_VALIDATION, o->eval_batches,
                                    o->eval_seed, val) != TLM_OK)
        return fail("tlm_trainer_evaluate_seeded", tlm_trainer_last_error(r->trainer));
    return 0;
}

static int bench_quality(const bench_config *c, const bench_text *text,
                         const options *o, int32_t threads) {
    const int32_t steps = o->steps > 0 ? o->steps : 2000;
    bench_gpt_run r;
    int status = run_create(&r, c, text, o, threads, steps);
    tlm_step_info info;
    memset(&info, 0, sizeof info);
    float train = 0, val = 0;
    double training_time = 0;
    for (int32_t i = 0; status == 0 && i < steps; i++) {
        if (i % o->eval_every == 0) {
            status = evaluate(&r, o, &train, &val);
            if (status != 0)
                break;
            printf("{\"bench\":\"train_curve\",\"impl\":\"tlm\",\"config\":\"%s\","
                   "\"step\":%d,\"train_loss\":%.4f,\"val_loss\":%.4f,"
                   "\"seconds\":%.1f}\n",
                   c->name, (int)i, (double)train, (double)val, training_time);
            fflush(stdout);
        }
        const double start = now_seconds();
        status = step(&r, &info);
        training_time += now_seconds() - start;
    }
    if (status == 0)
        status = evaluate(&r, o, &train, &val);
    if (status == 0) {
        printf("{\"bench\":\"train_quality\",\"impl\":\"tlm\",\"config\":\"%s\","
               "\"precision\":\"%s\",\"threads\":%d,\"steps\":%d,\"batch\":%d,\"context\":%d,"
               "\"eval_batches\":%d,\"eval_seed\":%llu,\"decay_embeddings\":%s,"
               "\"gelu\":\"%s\",\"seed\":%llu,"
               "\"train_loss\":%.4f,\"val_loss\":%.4f,\"last_step_loss\":%.4f,"
               "\"training_seconds\":%.1f,\"tokens_per_s\":%.1f,\"params\":%lld}\n",
               c->name, o->precision == TLM_PRECISION_BF16 ? "bf16" : "float32",
               tlm_context_thread_count(r.ctx), (int)steps, (int)c->batch,
               (int)c->context, (int)o->eval_batches, (unsigned long long)o->eval_seed,
               o->decay_embeddings ? "true" : "false",
               o->gelu_exact ? "exact" : "tanh", (unsigned long long)o->seed,
               (double)train, (double)val, (double)info.loss, training_time,
               (double)steps * c->batch * c->context / training_time,
               (long long)tlm_model_parameter_count(r.model));
        fflush(stdout);
    }
    bench_gpt_run_free(&r);
    return status;
}

static int parse_int(const char *text, long low, long high, int32_t *out) {
    char *end = NULL;
    const long value = text != NULL ? strtol(text, &end, 10) : 0;
    if (text == NULL || end == text || *end != '\0' || value < low || value > high)
        return -1;
    *out = (int32_t)value;
    return 0;
}

static int parse_threads(const char *text, options *o) {
    char buffer[64];
    if (text == NULL || strlen(text) >= sizeof buffer)
        return -1;
    strcpy(buffer, text);
    o->n_threads = 0;
    char *save = NULL;
    for (char *part = strtok_r(buffer, ",", &save); part != NULL;
         part = strtok_r(NULL, ",", &save)) {
        if (o->n_threads == (int)(sizeof o->threads / sizeof o->threads[0]) ||
            parse_int(part, 1, 1024, &o->threads[o->n_threads]) != 0)
            return -1;
        o->n_threads++;
    }
    return o->n_threads > 0 ? 0 : -1;
}

static int usage(const char *message) {
    fprintf(stderr,
            "bench_train: %s\n"
            "usage: bench_train [--data PATH] [--config nanogpt-cpu|6x384|all]\n"
            "                   [--threads 1,2] [--steps N] [--warmup N] [--seed N]\n"
            "                   [--quality] [--eval-every N] [--eval-batches N]\n"
            "                   [--eval-seed N] [--decay nanogpt|tlm] [--gelu tanh|exact]\n"
            "                   [--precision float32|bf16]\n",
            message);
    return 2;
}

int main(int argc, char **argv) {
    options o;
    memset(&o, 0, sizeof o);
    o.config = NULL;
    o.threads[0] = 1;
    o.threads[1] = 2;
    o.n_threads = 2;
    o.warmup = -1;
    o.seed = 1337;
    o.eval_every = 500;
    o.eval_batches = 100;
    o.eval_seed = 2026; /* as time_to_quality's --eval-seed */
    o.decay_embeddings = 1;
    int threads_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        int32_t number = 0;
        if (strcmp(arg, "--quality") == 0) {
            o.quality = 1;
            continue;
        }
        if (value == NULL)
            return usage("an option without its value");
        i++;
        if (strcmp(arg, "--data") == 0) {
            o.data = value;
        } else if (strcmp(arg, "--config") == 0) {
            o.config = value;
        } else if (strcmp(arg, "--threads") == 0) {
            if (parse_threads(value, &o) != 0)
                return usage("--threads expects a list such as 1,2");
            threads_given = 1;
        } else if (strcmp(arg, "--steps") == 0) {
            if (parse_int(value, 1, 1000000000, &o.steps) != 0)
                return usage("--steps expects a positive number");
        } else if (strcmp(arg, "--warmup") == 0) {
            if (parse_int(value, 0, 1000000, &o.warmup) != 0)
                return usage("--warmup expects a number >= 0");
        } else if (strcmp(arg, "--seed") == 0) {
            if (parse_int(value, 0, 2147483647, &number) != 0)
                return usage("--seed expects a number >= 0");
            o.seed = (uint64_t)number;
        } else if (strcmp(arg, "--eval-every") == 0) {
            if (parse_int(value, 1, 1000000000, &o.eval_every) != 0)
                return usage("--eval-every expects a positive number");
        } else if (strcmp(arg, "--eval-batches") == 0) {
            if (parse_int(value, 1, 100000, &o.eval_batches) != 0)
                return usage("--eval-batches expects a positive number");
        } else if (strcmp(arg, "--eval-seed") == 0) {
            if (parse_int(value, 0, 2147483647, &number) != 0)
                return usage("--eval-seed expects a number >= 0");
            o.eval_seed = (uint64_t)number;
        } else if (strcmp(arg, "--decay") == 0) {
            if (strcmp(value, "nanogpt") != 0 && strcmp(value, "tlm") != 0)
                return usage("--decay expects nanogpt or tlm");
            o.decay_embeddings = strcmp(value, "nanogpt") == 0;
        } else if (strcmp(arg, "--precision") == 0) {
            if (strcmp(value, "float32") != 0 && strcmp(value, "bf16") != 0)
                return usage("--precision expects float32 or bf16");
            o.precision = strcmp(value, "bf16") == 0 ? TLM_PRECISION_BF16
                                                     : TLM_PRECISION_FLOAT32;
        } else if (strcmp(arg, "--gelu") == 0) {
            if (strcmp(value, "tanh") != 0 && strcmp(value, "exact") != 0)
                return usage("--gelu expects tanh or exact");
            o.gelu_exact = strcmp(value, "exact") == 0;
        } else {
            return usage("unknown option");
        }
    }
    if (o.quality && !threads_given) {
        o.threads[0] = 1;
        o.n_threads = 1;
    }
    if (o.config == NULL)
        o.config = o.quality ? "nanogpt-cpu" : "all";
    int selected = 0;
    for (int c = 0; c < N_CONFIGS; c++)
        selected += strcmp(o.config, "all") == 0 || strcmp(o.config, configs[c].name) == 0;
    if (selected == 0)
        return usage("--config expects nanogpt-cpu, 6x384 or all");

    const char *path = bench_text_path(o.data);
    bench_text text;
    int status = bench_text_read("bench_train", path, &text);
    if (status == BENCH_TEXT_SKIPPED)
        printf("{\"bench\":\"train\",\"impl\":\"tlm\",\"skipped\":\"no data\"}\n");
    if (status != 0)
        return status;
    fprintf(stderr, "bench_train: %s: %lld tokens, vocabulary %d\n", path,
            (long long)text.count, (int)text.vocab);

    for (int c = 0; status == 0 && c < N_CONFIGS; c++) {
        if (strcmp(o.config, "all") != 0 && strcmp(o.config, configs[c].name) != 0)
            continue;
        for (int t = 0; status == 0 && t < o.n_threads; t++)
            status = o.quality ? bench_quality(&configs[c], &text, &o, o.threads[t])
                               : bench_speed(&configs[c], &text, &o, o.threads[t]);
    }
    bench_text_free(&text);
    return status;
}
