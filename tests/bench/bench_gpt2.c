/*
 * GPT-2 124M (or 355M) at full size on the CPU: decoding tokens/s with the
 * KV cache and fine-tuning tokens/s, at 1 thread and every core, through
 * the public API; optionally against llm.c's CPU trainer (train_gpt2.c)
 * on the same shape and cores, in the same run.
 *
 * The model is GPT-2's shape with random weights (their values do not
 * change the speed): vocabulary 50257, 12 layers, 12 heads, width 768,
 * context 1024, GELU (tanh form), LayerNorm before each sub-layer, learned
 * positions, biases, output tied to the token embedding; 355M is 24
 * layers, 16 heads, width 1024. Fine-tuning is llm.c's CPU configuration:
 * batch 4, context 64, AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8, no
 * weight decay, no clipping), on random ids (the speed does not depend on
 * the text).
 *
 * One JSON line per measurement, each naming the CPU (its model name and
 * widest vector extension) and the machine's 1-minute load average:
 *   {"bench":"gpt2_decode","impl":"tlm","model":"124M","threads":T,
 *    "round":R,"prompt_tokens":P,"tokens":N,"tokens_per_s":...,"load":...,
 *    "cpu":"...","cpu_vectors":"avx2"}
 *   {"bench":"gpt2_train","impl":"tlm"|"llm.c","model":"124M","threads":T,
 *    "round":R,"batch":4,"context":64,"steps":S,"ms_per_step":...,
 *    "tokens_per_s":...,"load":...,"cpu":"...","cpu_vectors":"..."}
 * then the medians over the rounds ({"bench":"gpt2_median",...}); rounds
 * alternate tlm and llm.c so that both see the same machine. ms_per_step
 * is the median of the measured steps of a round (after one warm-up step).
 *
 * llm.c: --llmc DIR (or $TLM_BENCH_LLMC) names a directory where llm.c's
 * train_gpt2 is built (its Makefile's CPU build, OpenMP) with its inputs
 * in place: gpt2_124M.bin (a checkpoint of this shape: `tlm export
 * --format llmc` of a model saved with --save) and
 * dev/data/tinyshakespeare/tiny_shakespeare_{train,val}.bin (tokens files
 * in llm.c's format; tests/bench/llmc_tokens.py writes them). train_gpt2
 * is run there with OMP_NUM_THREADS = T; its "step N: ... (took X ms)"
 * lines are read and it is stopped after step 5 (steps 1..5 measured:
 * step 0 allocates its gradients). Without a path the comparison is
 * skipped; docs/performance.md quotes llm.c's own figure instead.
 *
 *   bench_gpt2 [--model 124M|355M] [--threads 1,2] [--rounds N]
 *              [--decode-tokens N] [--train-steps N] [--llmc DIR]
 *   bench_gpt2 --save FILE [--model 124M|355M]   (write the random model)
 *   bench_gpt2 --check FILE [--mmap] [--batch B] [--context T]
 * --check loads a saved model (plain, or memory-mapped with --mmap),
 * decodes 32 tokens after a 16-token prompt and, when loaded plain, runs
 * one fine-tuning step at batch B (default 4) and context T (default 256),
 * printing the time of each part as one JSON line; run it under
 * /usr/bin/time -v for the peak resident memory (docs/performance.md).
 */
#define _POSIX_C_SOURCE 200809L

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
#define LLMC_LAST_STEP 5

typedef struct options {
    const char *model;  /* "124M" or "355M" */
    const char *save;   /* write the model there and stop, or NULL */
    const char *llmc;   /* llm.c directory, or NULL */
    const char *check;  /* load this model, decode, train a step; or NULL */
    int mmap;           /* --check: map instead of copying */
    int32_t batch, context; /* --check's training step */
    int32_t threads[MAX_THREAD_COUNTS];
    int n_threads;
    int rounds;
    int decode_tokens;
    int train_steps;
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

/* The CPU's model name from /proc/cpuinfo (Linux), JSON-safe, with its
 * family and model numbers (a virtual machine may only say "AMD EPYC"). */
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

/* The widest x86 vector extension /proc/cpuinfo lists ("avx512f",
 * "avx2", or "" elsewhere): lscpu names this machine only "AMD EPYC". */
static const char *cpu_vectors(void) {
    static char found[16] = "";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return found;
    char line[8192];
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        if (strstr(line, " avx512f") != NULL)
            snprintf(found, sizeof found, "avx512f");
        else if (strstr(line, " avx2") != NULL)
            snprintf(found, sizeof found, "avx2");
        break;
    }
    fclose(f);
    return found;
}

/* The 1-minute load average (Linux), or -1: the machine may be shared, and
 * each line says how busy it was. */
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

/* GPT-2's architecture at the chosen size. */
static void gpt2_config(tlm_model_config *c, const char *size) {
    tlm_model_config_init(c);
    const int big = strcmp(size, "355M") == 0;
    c->vocab_size = 50257;
    c->d_model = big ? 1024 : 768;
    c->n_heads = big ? 16 : 12;
    c->n_decoder_layers = big ? 24 : 12;
    c->n_encoder_layers = 0;
    c->d_ff = 0; /* 4 x width */
    c->max_context = 1024;
    c->position = TLM_POSITION_LEARNED;
    c->norm = TLM_NORM_LAYER;
    c->norm_placement = TLM_NORM_PRE;
    c->activation = TLM_ACTIVATION_GELU;
    c->bias = 1;
    c->tied_output = 1;
    c->init_seed = 1;
}

static int fail(const char *what, const char *message) {
    fprintf(stderr, "bench_gpt2: %s: %s\n", what, message);
    return 1;
}

/* One thread count's model, session and trainer, kept over the rounds. */
typedef struct runner {
    int32_t threads;
    tlm_context *ctx;
    tlm_model *model;
    tlm_session *session;
    tlm_dataset *data;
    tlm_trainer *trainer;
    int32_t *ids;
    float *logits;
} runner;

static void runner_free(runner *r) {
    tlm_trainer_free(r->trainer);
    tlm_dataset_free(r->data);
    tlm_session_free(r->session);
    tlm_model_free(r->model);
    tlm_context_free(r->ctx);
    free(r->ids);
    free(r->logits);
}

#define TRAIN_IDS 200000
#define PROMPT_TOKENS 16

static int runner_init(runner *r, const options *o, int32_t threads) {
    memset(r, 0, sizeof *r);
    r->threads = threads;
    tlm_context_params cp;
    tlm_context_params_init(&cp);
    cp.n_threads = threads;
    tlm_model_config c;
    gpt2_config(&c, o->model);
    if (tlm_context_create(&r->ctx, &cp) != TLM_OK ||
        tlm_model_create(&r->model, r->ctx, &c) != TLM_OK)
        return fail("creating the model", tlm_last_error());
    tlm_session_params sp;
    tlm_session_params_init(&sp);
    sp.n_threads = threads;
    if (tlm_session_create(&r->session, r->model, &sp) != TLM_OK)
        return fail("tlm_session_create", tlm_last_error());
    r->ids = malloc(TRAIN_IDS * sizeof *r->ids);
    r->logits = malloc((size_t)c.vocab_size * sizeof *r->logits);
    if (r->ids == NULL || r->logits == NULL)
        return fail("allocating", "out of memory");
    uint64_t state = 88172645463325252ull;
    for (int i = 0; i < TRAIN_IDS; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        r->ids[i] = (int32_t)(state % (uint64_t)c.vocab_size);
    }
    if (tlm_dataset_from_ids(&r->data, r->ctx, r->ids, TRAIN_IDS, NULL) != TLM_OK)
        return fail("tlm_dataset_from_ids", tlm_last_error());
    tlm_optimizer_params opt;
    tlm_optimizer_params_init(&opt);
    opt.kind = TLM_OPTIMIZER_ADAMW;
    opt.lr = 1e-4f;
    opt.beta1 = 0.9f;
    opt.beta2 = 0.999f;
    opt.eps = 1e-8f;
    opt.weight_decay = 0.0f;
    tlm_trainer_params tp;
    tlm_trainer_params_init(&tp);
    tp.batch_size = 4;
    tp.context = 64;
    tp.grad_clip = 0.0f;
    tp.optimizer = &opt;
    if (tlm_trainer_create(&r->trainer, r->model, r->data, &tp) != TLM_OK)
        return fail("tlm_trainer_create", tlm_last_error());
    return 0;
}

/* Decoding tokens/s: a prompt, then `tokens` ids one at a time. */
static int measure_decode(runner *r, int tokens, double *rate) {
    if (tlm_session_reset(r->session) != TLM_OK ||
        tlm_session_decode(r->session, r->ids, PROMPT_TOKENS, r->logits, 1) != TLM_OK)
        return fail("tlm_session_decode", tlm_session_last_error(r->session));
    const double start = now_seconds();
    for (int i = 0; i < tokens; i++)
        if (tlm_session_decode(r->session, r->ids + PROMPT_TOKENS + i, 1,
                               r->logits, 1) != TLM_OK)
            return fail("tlm_session_decode", tlm_session_last_error(r->session));
    *rate = tokens / (now_seconds() - start);
    return 0;
}

/* Median milliseconds per fine-tuning step over `steps` steps after one
 * warm-up step. */
static int measure_train(runner *r, int steps, double *ms) {
    double times[64];
    if (steps > 64)
        steps = 64;
    tlm_step_info info;
    tlm_step_info_init(&info);
    for (int i = -1; i < steps; i++) {
        const double start = now_seconds();
        if (tlm_trainer_step(r->trainer, &info) != TLM_OK)
            return fail("tlm_trainer_step", tlm_trainer_last_error(r->trainer));
        if (i >= 0)
            times[i] = 1e3 * (now_seconds() - start);
    }
    *ms = median(times, steps);
    return 0;
}

/* Runs llm.c's train_gpt2 in `dir` with `threads` OpenMP threads; the
 * median of its steps 1..LLMC_LAST_STEP in ms, or a negative value when it
 * could not run (the reason printed). */
static double run_llmc(const char *dir, int32_t threads) {
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0)
        return -1;
    const pid_t pid = fork();
    if (pid < 0) {
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return -1;
    }
    if (pid == 0) {
        char count[16];
        snprintf(count, sizeof count, "%d", (int)threads);
        dup2(pipe_fds[1], STDOUT_FILENO);
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        if (chdir(dir) != 0)
            _exit(126);
        setenv("OMP_NUM_THREADS", count, 1);
        execl("./train_gpt2", "train_gpt2", (char *)NULL);
        _exit(127);
    }
    close(pipe_fds[1]);
    FILE *out = fdopen(pipe_fds[0], "r");
    double times[LLMC_LAST_STEP];
    int n = 0;
    char line[4096];
    while (out != NULL && n < LLMC_LAST_STEP && fgets(line, sizeof line, out) != NULL) {
        int step = -1;
        double loss = 0, ms = 0;
        if (sscanf(line, "step %d: train loss %lf (took %lf ms)", &step, &loss, &ms) == 3 &&
            step >= 1 && step <= LLMC_LAST_STEP)
            times[n++] = ms;
    }
    kill(pid, SIGTERM);
    if (out != NULL)
        fclose(out);
    else
        close(pipe_fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (n < LLMC_LAST_STEP) {
        fprintf(stderr, "bench_gpt2: llm.c's train_gpt2 in '%s' printed %d of "
                "%d step times (is it built, with gpt2_124M.bin and the "
                "tokens files in place?)\n", dir, n, LLMC_LAST_STEP);
        return -1;
    }
    return median(times, n);
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
    fprintf(stderr, "bench_gpt2: %s\nusage: bench_gpt2 [--model 124M|355M] "
            "[--threads 1,2] [--rounds N] [--decode-tokens N] [--train-steps N] "
            "[--llmc DIR]\n       bench_gpt2 --save FILE [--model 124M|355M]\n", why);
    return 2;
}

static int parse_options(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->model = "124M";
    o->rounds = 3;
    o->decode_tokens = 32;
    o->train_steps = 5;
    o->llmc = getenv("TLM_BENCH_LLMC");
    if (o->llmc != NULL && *o->llmc == '\0')
        o->llmc = NULL;
    o->batch = 4;
    o->context = 256;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--mmap") == 0) {
            o->mmap = 1;
            continue;
        }
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        int32_t n = 0;
        if (value == NULL)
            return usage("every option takes a value");
        i++;
        if (strcmp(arg, "--model") == 0) {
            if (strcmp(value, "124M") != 0 && strcmp(value, "355M") != 0)
                return usage("--model expects 124M or 355M");
            o->model = value;
        } else if (strcmp(arg, "--save") == 0) {
            o->save = value;
        } else if (strcmp(arg, "--check") == 0) {
            o->check = value;
        } else if (strcmp(arg, "--batch") == 0) {
            if (parse_int(value, 1, 1024, &o->batch) != 0)
                return usage("--batch expects 1..1024");
        } else if (strcmp(arg, "--context") == 0) {
            if (parse_int(value, 1, 1 << 16, &o->context) != 0)
                return usage("--context expects 1..65536");
        } else if (strcmp(arg, "--llmc") == 0) {
            o->llmc = value;
        } else if (strcmp(arg, "--rounds") == 0) {
            if (parse_int(value, 1, MAX_ROUNDS, &n) != 0)
                return usage("--rounds expects 1..16");
            o->rounds = n;
        } else if (strcmp(arg, "--decode-tokens") == 0) {
            if (parse_int(value, 1, 512, &n) != 0)
                return usage("--decode-tokens expects 1..512");
            o->decode_tokens = n;
        } else if (strcmp(arg, "--train-steps") == 0) {
            if (parse_int(value, 1, 64, &n) != 0)
                return usage("--train-steps expects 1..64");
            o->train_steps = n;
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
    if (o->n_threads == 0) {
        const long cores = sysconf(_SC_NPROCESSORS_ONLN);
        o->threads[o->n_threads++] = 1;
        if (cores > 1)
            o->threads[o->n_threads++] = (int32_t)(cores < 1024 ? cores : 1024);
    }
    return 0;
}

static int save_model(const options *o) {
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    tlm_model_config c;
    gpt2_config(&c, o->model);
    int status = tlm_context_create(&ctx, NULL);
    if (status == TLM_OK)
        status = tlm_model_create(&model, ctx, &c);
    if (status == TLM_OK)
        status = tlm_model_save(model, o->save);
    if (status != TLM_OK)
        fprintf(stderr, "bench_gpt2: %s\n", tlm_last_error());
    else
        fprintf(stderr, "bench_gpt2: saved the %s model (%lld parameters) to '%s'\n",
                o->model, (long long)tlm_model_parameter_count(model), o->save);
    tlm_model_free(model);
    tlm_context_free(ctx);
    return status == TLM_OK ? 0 : 1;
}

/* Load, decode, one training step: the times, for the resident-memory
 * measurement around it. */
static int check_model(const options *o) {
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    tlm_session *session = NULL;
    tlm_dataset *data = NULL;
    tlm_trainer *trainer = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    double load_s = 0, decode_s = 0, step_s = 0, train_setup_s = 0;
    int64_t estimate_inference = 0, estimate_training = 0;
    tlm_model_load_params lp;
    tlm_model_load_params_init(&lp);
    lp.memory_map = o->mmap;
    int status = tlm_context_create(&ctx, NULL);
    double start = now_seconds();
    if (status == TLM_OK)
        status = tlm_model_load(&model, ctx, o->check, &lp);
    load_s = now_seconds() - start;
    tlm_model_config c;
    tlm_model_config_init(&c);
    if (status == TLM_OK)
        status = tlm_model_get_config(model, &c);
    if (status == TLM_OK)
        status = tlm_model_memory_estimate(model, TLM_MEMORY_INFERENCE, 1,
                                           c.max_context, &estimate_inference);
    if (status == TLM_OK)
        status = tlm_model_memory_estimate(model, TLM_MEMORY_TRAINING, o->batch,
                                           o->context, &estimate_training);
    if (status == TLM_OK) {
        ids = malloc(TRAIN_IDS * sizeof *ids);
        logits = malloc((size_t)c.vocab_size * sizeof *logits);
        if (ids == NULL || logits == NULL)
            status = TLM_E_NOMEM;
        for (int i = 0; status == TLM_OK && i < TRAIN_IDS; i++)
            ids[i] = (int32_t)(((uint64_t)i * 2654435761u) % (uint64_t)c.vocab_size);
    }
    if (status == TLM_OK)
        status = tlm_session_create(&session, model, NULL);
    start = now_seconds();
    if (status == TLM_OK)
        status = tlm_session_decode(session, ids, PROMPT_TOKENS, logits, 1);
    for (int i = 0; status == TLM_OK && i < 32; i++) {
        int32_t next = 0;
        for (int32_t v = 1; v < c.vocab_size; v++)
            next = logits[v] > logits[next] ? v : next;
        status = tlm_session_decode(session, &next, 1, logits, 1);
    }
    decode_s = now_seconds() - start;
    tlm_session_free(session);
    session = NULL;
    if (status == TLM_OK && !o->mmap) {
        start = now_seconds();
        tlm_trainer_params tp;
        tlm_trainer_params_init(&tp);
        tp.batch_size = o->batch;
        tp.context = o->context;
        status = tlm_dataset_from_ids(&data, ctx, ids, TRAIN_IDS, NULL);
        if (status == TLM_OK)
            status = tlm_trainer_create(&trainer, model, data, &tp);
        train_setup_s = now_seconds() - start;
        start = now_seconds();
        tlm_step_info info;
        tlm_step_info_init(&info);
        if (status == TLM_OK)
            status = tlm_trainer_step(trainer, &info);
        step_s = now_seconds() - start;
    }
    if (status != TLM_OK)
        fprintf(stderr, "bench_gpt2: %s\n", tlm_last_error());
    else
        printf("{\"bench\":\"gpt2_check\",\"file\":\"%s\",\"mmap\":%d,"
               "\"parameters\":%lld,\"load_s\":%.2f,\"decode_32_s\":%.2f,"
               "\"estimate_inference_mib\":%.1f,\"train_batch\":%d,"
               "\"train_context\":%d,\"estimate_training_mib\":%.1f,"
               "\"train_setup_s\":%.2f,\"train_step_s\":%.2f,"
               "\"context_arena_mib\":%.1f}\n",
               o->check, o->mmap, (long long)tlm_model_parameter_count(model),
               load_s, decode_s, (double)estimate_inference / 1048576.0,
               (int)o->batch, (int)o->context,
               (double)estimate_training / 1048576.0, train_setup_s, step_s,
               (double)tlm_context_arena_bytes(ctx) / 1048576.0);
    tlm_trainer_free(trainer);
    tlm_dataset_free(data);
    tlm_model_free(model);
    tlm_context_free(ctx);
    free(ids);
    free(logits);
    return status == TLM_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    options o;
    int status = parse_options(argc, argv, &o);
    if (status != 0)
        return status;
    if (o.save != NULL)
        return save_model(&o);
    if (o.check != NULL)
        return check_model(&o);
    char name[256], cpu[400];
    cpu_name(name, sizeof name);
    snprintf(cpu, sizeof cpu, "\"cpu\":\"%s\",\"cpu_vectors\":\"%s\"", name,
             cpu_vectors());
    runner runners[MAX_THREAD_COUNTS];
    memset(runners, 0, sizeof runners);
    double decode[MAX_THREAD_COUNTS][MAX_ROUNDS], train[MAX_THREAD_COUNTS][MAX_ROUNDS],
        llmc[MAX_THREAD_COUNTS][MAX_ROUNDS];
    int n_llmc[MAX_THREAD_COUNTS] = {0};
    for (int t = 0; t < o.n_threads && status == 0; t++)
        status = runner_init(&runners[t], &o, o.threads[t]);
    const int tokens_per_step = 4 * 64;
    /* Rounds alternate the implementations and the thread counts, so that
     * a change of load on the machine touches all of them alike. */
    for (int round = 0; round < o.rounds && status == 0; round++)
        for (int t = 0; t < o.n_threads && status == 0; t++) {
            runner *r = &runners[t];
            status = measure_decode(r, o.decode_tokens, &decode[t][round]);
            if (status != 0)
                break;
            printf("{\"bench\":\"gpt2_decode\",\"impl\":\"tlm\",\"model\":\"%s\","
                   "\"threads\":%d,\"round\":%d,\"prompt_tokens\":%d,\"tokens\":%d,"
                   "\"tokens_per_s\":%.2f,\"load\":%.2f,%s}\n",
                   o.model, (int)r->threads, round, PROMPT_TOKENS, o.decode_tokens,
                   decode[t][round], load_average(), cpu);
            fflush(stdout);
            status = measure_train(r, o.train_steps, &train[t][round]);
            if (status != 0)
                break;
            printf("{\"bench\":\"gpt2_train\",\"impl\":\"tlm\",\"model\":\"%s\","
                   "\"threads\":%d,\"round\":%d,\"batch\":4,\"context\":64,"
                   "\"steps\":%d,\"ms_per_step\":%.1f,\"tokens_per_s\":%.1f,"
                   "\"load\":%.2f,%s}\n",
                   o.model, (int)r->threads, round, o.train_steps, train[t][round],
                   tokens_per_step / (train[t][round] / 1e3), load_average(), cpu);
            fflush(stdout);
            if (o.llmc != NULL && strcmp(o.model, "124M") == 0) {
                const double ms = run_llmc(o.llmc, r->threads);
                if (ms > 0) {
                    llmc[t][n_llmc[t]++] = ms;
                    printf("{\"bench\":\"gpt2_train\",\"impl\":\"llm.c\",\"model\":\"%s\","
                           "\"threads\":%d,\"round\":%d,\"batch\":4,\"context\":64,"
                           "\"steps\":%d,\"ms_per_step\":%.1f,\"tokens_per_s\":%.1f,"
                           "\"load\":%.2f,%s}\n",
                           o.model, (int)r->threads, round, LLMC_LAST_STEP, ms,
                           tokens_per_step / (ms / 1e3), load_average(), cpu);
                    fflush(stdout);
                }
            }
        }
    for (int t = 0; t < o.n_threads && status == 0; t++) {
        const double d = median(decode[t], o.rounds);
        const double ms = median(train[t], o.rounds);
        const double ms_llmc = median(llmc[t], n_llmc[t]);
        printf("{\"bench\":\"gpt2_median\",\"model\":\"%s\",\"threads\":%d,"
               "\"rounds\":%d,\"decode_tokens_per_s\":%.2f,"
               "\"train_ms_per_step\":%.1f,\"train_tokens_per_s\":%.1f",
               o.model, (int)o.threads[t], o.rounds, d, ms, tokens_per_step / (ms / 1e3));
        if (n_llmc[t] > 0)
            printf(",\"llmc_rounds\":%d,\"llmc_ms_per_step\":%.1f,"
                   "\"llmc_tokens_per_s\":%.1f,\"tlm_over_llmc\":%.3f",
                   n_llmc[t], ms_llmc, tokens_per_step / (ms_llmc / 1e3), ms_llmc / ms);
        printf(",%s}\n", cpu);
    }
    for (int t = 0; t < o.n_threads; t++)
        runner_free(&runners[t]);
    return status;
}
