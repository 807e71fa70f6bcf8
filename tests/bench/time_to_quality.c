/*
 * Time to quality: how long training takes to reach a validation loss, not
 * how fast one step is (docs/performance.md, "Time to quality"). A
 * benchmark run by hand, not a test: a full run takes about an hour.
 *
 * It trains the wide configuration of the training benchmark, nanoGPT's
 * shakespeare-char GPU model (6 layers, 6 heads, width 384, context 256,
 * GELU, layer norm, learned positions, no biases, tied output, dropout 0.2
 * on the embedding and every sub-layer's output), on tiny Shakespeare
 * (the text's distinct bytes as the vocabulary, 90/10 split) with
 * nanoGPT's optimizer (AdamW, betas 0.9/0.99, weight decay 0.1 on every
 * tensor of 2 or more dimensions, clipping at 1) and schedule (linear
 * warm-up, cosine decay to lr / 10 at the last step). What may differ
 * from nanoGPT's recipe is a command-line option (batch, accumulation, lr,
 * warm-up, steps, dropout), so that recipes can be compared.
 *
 * Every --eval-every steps (and at the first and the last) it evaluates on
 * a FIXED validation set: --eval-windows windows of the held-out 10% drawn
 * from --eval-seed by tlm_trainer_evaluate_seeded, the same windows for
 * every run, training seed, batch size and precision, and prints
 *   {"bench":"time_to_quality","event":"eval","step":...,"seconds":...,
 *    "wall_seconds":...,"tokens":...,"lr":...,"train_loss":...,
 *    "val_loss":...}
 * seconds: training time (the steps alone, evaluations excluded);
 * wall_seconds: evaluations included; tokens: target tokens trained on;
 * train_loss: the mean loss of the steps since the previous evaluation
 * (dropout on). At the end, one line with the time and step at which the
 * validation loss first reached each target (null when it did not):
 *   {"bench":"time_to_quality","event":"result",...,
 *    "seconds_to":{"1.60":...,"1.55":...,"1.50":...},
 *    "step_to":{...},"best_val_loss":...}
 * Training stops at --steps or when the training time passes --time-limit
 * seconds, whichever comes first; the schedule is planned for --steps.
 *
 * Usage: time_to_quality [--data PATH] [--threads N] [--steps N]
 *          [--time-limit SECONDS] [--batch N] [--accumulation N] [--lr X]
 *          [--warmup N] [--dropout P] [--seed N] [--eval-every N]
 *          [--eval-windows N] [--eval-seed N] [--precision float32|bf16]
 * The text: --data PATH, else $TLM_BENCH_DATA, else
 * ../shared/data/tinyshakespeare.txt next to the source tree (read in
 * place, never copied); exits with 77 when it is missing. --precision
 * bf16 trains with bf16 matrix products (tlm_trainer_params::precision).
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_gpt.h"
#include "bench_text.h"
#include "tlm.h"

#define N_TARGETS 3
/* Skipped steps (non-finite loss or gradient) are reported and training
 * goes on; this many in a row means it diverged and the run stops. */
#define MAX_SKIPPED_IN_A_ROW 50

static const double targets[N_TARGETS] = {1.60, 1.55, 1.50};
static const char *const target_names[N_TARGETS] = {"1.60", "1.55", "1.50"};

typedef struct options {
    const char *data;
    int32_t threads;      /* 0: the library's default */
    int32_t steps;        /* the schedule's length and the step limit */
    double time_limit;    /* seconds of training; 0: none */
    int32_t batch, accumulation, warmup;
    float lr, dropout;
    int32_t seed;
    int32_t eval_every, eval_windows, eval_seed;
    int bf16;
} options;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(const char *what, const char *message) {
    fprintf(stderr, "time_to_quality: %s: %s\n", what, message);
    return 1;
}

/* The run of the options' recipe on the wide configuration. */
static int run_create(bench_gpt_run *r, const options *o, const bench_text *text) {
    const bench_gpt_recipe recipe = {
        .layers = 6, .heads = 6, .width = 384, .context = 256, .gelu_exact = 0,
        .dropout = o->dropout, .seed = (uint64_t)o->seed, .threads = o->threads,
        .batch = o->batch, .accumulation = o->accumulation, .lr = o->lr,
        .min_lr = o->lr / 10, .warmup_steps = o->warmup, /* main() keeps it below steps */
        .decay_end_step = o->steps, .decay_embeddings = 1,
        .precision = o->bf16 ? TLM_PRECISION_BF16 : TLM_PRECISION_FLOAT32};
    return bench_gpt_run_create(r, "time_to_quality", &recipe, text);
}

static void print_number_or_null(double value) {
    if (isnan(value))
        printf("null");
    else
        printf("%.1f", value);
}

static int train(const options *o, const bench_text *text) {
    bench_gpt_run r;
    int status = run_create(&r, o, text);
    if (status != 0) {
        bench_gpt_run_free(&r);
        return status;
    }
    /* The fixed set: the first eval_windows windows of eval_seed's
     * sequence, in whole batches. */
    const int32_t eval_batches = (o->eval_windows + o->batch - 1) / o->batch;
    const int64_t tokens_per_step = (int64_t)o->batch * o->accumulation * 256;
    printf("{\"bench\":\"time_to_quality\",\"event\":\"start\",\"layers\":6,"
           "\"heads\":6,\"width\":384,\"context\":256,\"params\":%lld,"
           "\"threads\":%d,\"precision\":\"%s\",\"batch\":%d,\"accumulation\":%d,"
           "\"lr\":%g,\"min_lr\":%g,\"warmup\":%d,\"steps\":%d,\"dropout\":%g,"
           "\"seed\":%d,\"time_limit\":%g,\"eval_every\":%d,\"eval_windows\":%d,"
           "\"eval_seed\":%d}\n",
           (long long)tlm_model_parameter_count(r.model),
           tlm_context_thread_count(r.ctx), o->bf16 ? "bf16" : "float32",
           (int)o->batch, (int)o->accumulation, (double)o->lr, (double)o->lr / 10,
           (int)o->warmup, (int)o->steps, (double)o->dropout, (int)o->seed,
           o->time_limit, (int)o->eval_every, (int)(eval_batches * o->batch),
           (int)o->eval_seed);
    fflush(stdout);

    double reached[N_TARGETS];
    int64_t reached_step[N_TARGETS];
    for (int i = 0; i < N_TARGETS; i++) {
        reached[i] = (double)NAN;
        reached_step[i] = -1;
    }
    double training = 0, best = (double)INFINITY, loss_sum = 0;
    int32_t loss_steps = 0, step = 0, evaluated = -1, skipped_in_a_row = 0;
    float lr = 0;
    const double wall_start = now_seconds();
    for (;;) {
        const int last = step == o->steps || (o->time_limit > 0 && training >= o->time_limit);
        if ((step % o->eval_every == 0 && step != evaluated) || last) {
            evaluated = step;
            float val = 0;
            if (tlm_trainer_evaluate_seeded(r.trainer, TLM_SPLIT_VALIDATION, eval_batches,
                                            (uint64_t)o->eval_seed, &val) != TLM_OK) {
                status = fail("tlm_trainer_evaluate_seeded",
                              tlm_trainer_last_error(r.trainer));
                break;
            }
            best = (double)val < best ? (double)val : best;
            for (int i = 0; i < N_TARGETS; i++)
                if (reached_step[i] < 0 && (double)val <= targets[i]) {
                    reached[i] = training;
                    reached_step[i] = step;
                }
            printf("{\"bench\":\"time_to_quality\",\"event\":\"eval\",\"step\":%d,"
                   "\"seconds\":%.1f,\"wall_seconds\":%.1f,\"tokens\":%lld,"
                   "\"lr\":%.3g,\"train_loss\":",
                   (int)step, training, now_seconds() - wall_start,
                   (long long)step * tokens_per_step, (double)lr);
            if (loss_steps > 0)
                printf("%.4f", loss_sum / loss_steps);
            else
                printf("null");
            printf(",\"val_loss\":%.4f}\n", (double)val);
            fflush(stdout);
            loss_sum = 0;
            loss_steps = 0;
        }
        if (last)
            break;
        tlm_step_info info;
        tlm_step_info_init(&info);
        const double start = now_seconds();
        const int stepped = tlm_trainer_step(r.trainer, &info);
        training += now_seconds() - start;
        if (stepped != TLM_OK) {
            /* A skipped step is reported and training goes on, as the
             * trainer allows; anything else ends the run. */
            fprintf(stderr, "time_to_quality: %s\n", tlm_trainer_last_error(r.trainer));
            if ((stepped != TLM_E_NONFINITE && stepped != TLM_E_RANGE) ||
                ++skipped_in_a_row == MAX_SKIPPED_IN_A_ROW) {
                status = fail("tlm_trainer_step", stepped == TLM_E_NONFINITE ||
                              stepped == TLM_E_RANGE ? "too many skipped steps in "
                              "a row: training diverged" : "failed");
                break;
            }
            continue;
        }
        skipped_in_a_row = 0;
        step = (int32_t)info.step;
        lr = info.lr;
        loss_sum += (double)info.loss;
        loss_steps++;
    }
    if (status == 0) {
        printf("{\"bench\":\"time_to_quality\",\"event\":\"result\",\"precision\":\"%s\","
               "\"threads\":%d,\"steps\":%d,\"seconds\":%.1f,\"wall_seconds\":%.1f,"
               "\"tokens\":%lld,\"tokens_per_s\":%.1f,\"best_val_loss\":%.4f,"
               "\"seconds_to\":{",
               o->bf16 ? "bf16" : "float32", tlm_context_thread_count(r.ctx), (int)step,
               training, now_seconds() - wall_start, (long long)step * tokens_per_step,
               training > 0 ? (double)step * (double)tokens_per_step / training : 0.0,
               best);
        for (int i = 0; i < N_TARGETS; i++) {
            printf("%s\"%s\":", i ? "," : "", target_names[i]);
            print_number_or_null(reached[i]);
        }
        printf("},\"step_to\":{");
        for (int i = 0; i < N_TARGETS; i++) {
            printf("%s\"%s\":", i ? "," : "", target_names[i]);
            if (reached_step[i] < 0)
                printf("null");
            else
                printf("%lld", (long long)reached_step[i]);
        }
        printf("}}\n");
        fflush(stdout);
    }
    bench_gpt_run_free(&r);
    return status;
}

static int parse_long(const char *text, long low, long high, int32_t *out) {
    char *end = NULL;
    const long value = text != NULL ? strtol(text, &end, 10) : 0;
    if (text == NULL || end == text || *end != '\0' || value < low || value > high)
        return -1;
    *out = (int32_t)value;
    return 0;
}

static int parse_double(const char *text, double low, double high, double *out) {
    char *end = NULL;
    const double value = text != NULL ? strtod(text, &end) : 0;
    if (text == NULL || end == text || *end != '\0' || !(value >= low && value <= high))
        return -1;
    *out = value;
    return 0;
}

static int usage(const char *message) {
    fprintf(stderr,
            "time_to_quality: %s\n"
            "usage: time_to_quality [--data PATH] [--threads N] [--steps N]\n"
            "         [--time-limit SECONDS] [--batch N] [--accumulation N] [--lr X]\n"
            "         [--warmup N] [--dropout P] [--seed N] [--eval-every N]\n"
            "         [--eval-windows N] [--eval-seed N] [--precision float32|bf16]\n",
            message);
    return 2;
}

int main(int argc, char **argv) {
    /* The default recipe: nanoGPT's shakespeare-char settings with a
     * batch of 16 (its 64 would give a quarter of the steps in the hour)
     * and the schedule planned for about the steps an hour holds at that
     * batch on two idle cores (3,930 tokens/s, docs/performance.md). */
    options o = {.data = NULL, .threads = 0, .steps = 3500, .time_limit = 3600,
                 .batch = 16, .accumulation = 1, .warmup = 100, .lr = 1e-3f,
                 .dropout = 0.2f, .seed = 1337, .eval_every = 250,
                 .eval_windows = 400, .eval_seed = 2026, .bf16 = 0};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        double number = 0;
        if (value == NULL)
            return usage("an option without its value");
        i++;
        if (strcmp(arg, "--data") == 0) {
            o.data = value;
        } else if (strcmp(arg, "--threads") == 0) {
            if (parse_long(value, 0, 1024, &o.threads) != 0)
                return usage("--threads expects a number >= 0 (0: every core)");
        } else if (strcmp(arg, "--steps") == 0) {
            if (parse_long(value, 1, 100000000, &o.steps) != 0)
                return usage("--steps expects a positive number");
        } else if (strcmp(arg, "--time-limit") == 0) {
            if (parse_double(value, 0, 1e9, &o.time_limit) != 0)
                return usage("--time-limit expects seconds >= 0 (0: none)");
        } else if (strcmp(arg, "--batch") == 0) {
            if (parse_long(value, 1, 4096, &o.batch) != 0)
                return usage("--batch expects a positive number");
        } else if (strcmp(arg, "--accumulation") == 0) {
            if (parse_long(value, 1, 4096, &o.accumulation) != 0)
                return usage("--accumulation expects a positive number");
        } else if (strcmp(arg, "--warmup") == 0) {
            if (parse_long(value, 0, 100000000, &o.warmup) != 0)
                return usage("--warmup expects a number >= 0");
        } else if (strcmp(arg, "--lr") == 0) {
            if (parse_double(value, 1e-7, 1, &number) != 0)
                return usage("--lr expects a number in [1e-7, 1]");
            o.lr = (float)number;
        } else if (strcmp(arg, "--dropout") == 0) {
            if (parse_double(value, 0, 0.9, &number) != 0)
                return usage("--dropout expects a number in [0, 0.9]");
            o.dropout = (float)number;
        } else if (strcmp(arg, "--seed") == 0) {
            if (parse_long(value, 0, 2147483647, &o.seed) != 0)
                return usage("--seed expects a number >= 0");
        } else if (strcmp(arg, "--eval-every") == 0) {
            if (parse_long(value, 1, 100000000, &o.eval_every) != 0)
                return usage("--eval-every expects a positive number");
        } else if (strcmp(arg, "--eval-windows") == 0) {
            if (parse_long(value, 1, 1000000, &o.eval_windows) != 0)
                return usage("--eval-windows expects a positive number");
        } else if (strcmp(arg, "--eval-seed") == 0) {
            if (parse_long(value, 0, 2147483647, &o.eval_seed) != 0)
                return usage("--eval-seed expects a number >= 0");
        } else if (strcmp(arg, "--precision") == 0) {
            if (strcmp(value, "float32") != 0 && strcmp(value, "bf16") != 0)
                return usage("--precision expects float32 or bf16");
            o.bf16 = strcmp(value, "bf16") == 0;
        } else {
            return usage("unknown option");
        }
    }
    if (o.warmup >= o.steps) /* the cosine schedule needs decay steps */
        return usage("--warmup must be smaller than --steps");
    const char *path = bench_text_path(o.data);
    bench_text text;
    int status = bench_text_read("time_to_quality", path, &text);
    if (status != 0)
        return status;
    fprintf(stderr, "time_to_quality: %s: %lld tokens, vocabulary %d\n", path,
            (long long)text.count, (int)text.vocab);
    status = train(&o, &text);
    bench_text_free(&text);
    return status;
}
