/*
 * tlm demo, the README's main job: train a small character-level model on
 * the fortunes corpus (Debian's fortunes packages) for a fixed time, write
 * the model, the training log and the loss plot, and print samples of one
 * prompt at three temperatures.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "input_file.h"
#include "options.h"
#include "paths.h"

#define FORTUNES_DIR "/usr/share/games/fortunes"
#define DEMO_PROMPT "The "

/* The demo's model: big enough to learn words and layout in a couple of
 * minutes on two cores, small enough to take many steps. */
enum { DEMO_LAYERS = 4, DEMO_HEADS = 4, DEMO_DIM = 128, DEMO_CONTEXT = 64, DEMO_BATCH = 12 };

typedef struct text_buffer {
    char *data;
    size_t length, capacity;
} text_buffer;

static int append(text_buffer *b, const char *data, size_t length) {
    if (length > SIZE_MAX - b->length - 1)
        return -1;
    if (b->length + length + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 1 << 20;
        while (capacity < b->length + length + 1)
            capacity = capacity > SIZE_MAX / 2 ? SIZE_MAX : capacity * 2;
        char *grown = realloc(b->data, capacity);
        if (grown == NULL)
            return -1;
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, data, length);
    b->length += length;
    b->data[b->length] = '\0';
    return 0;
}

/* A fortune file's entries, the "%" separator lines turned into blank
 * lines. */
static int append_fortunes(text_buffer *b, const char *text, size_t length) {
    size_t i = 0;
    while (i < length) {
        const char *nl = memchr(text + i, '\n', length - i);
        const size_t end = nl ? (size_t)(nl - text) : length;
        const size_t line = end - i;
        int status;
        if ((line == 1 && text[i] == '%') || (line == 2 && text[i] == '%' && text[i + 1] == '\r'))
            status = append(b, "\n", 1);
        else
            status = append(b, text + i, line) || append(b, "\n", 1);
        if (status != 0)
            return -1;
        i = end + 1;
    }
    return 0;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every plain-text fortune file of `dir` (no extension, not a symlink),
 * in name order. */
static int read_fortunes(const char *dir, text_buffer *b, int *n_files) {
    *n_files = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return cli_error(CLI_EXIT_RUNTIME, "demo",
                         "no corpus: %s does not exist (install the Debian "
                         "package fortunes or fortunes-min, or pass --corpus FILE)",
                         dir);
    char *names[512];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && count < 512) {
        if (e->d_name[0] == '.' || strchr(e->d_name, '.') != NULL)
            continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        names[count] = malloc(strlen(e->d_name) + 1);
        if (names[count] == NULL)
            break;
        strcpy(names[count++], e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)count, sizeof names[0], compare_names);
    int status = 0;
    for (int i = 0; i < count; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *text = NULL;
        size_t length = 0;
        if (status == 0 && cli_read_file("demo", path, CLI_INPUT_TEXT, &text, &length) == 0) {
            if (append_fortunes(b, text, length) != 0)
                status = cli_error(CLI_EXIT_RUNTIME, "demo", "out of memory reading the corpus");
            else if ((uint64_t)b->length > cli_input_limit(CLI_INPUT_TEXT))
                status = cli_error(CLI_EXIT_RUNTIME, "demo",
                                   "the fortunes of %s hold more than the limit of "
                                   "%llu bytes for a text (raise it with "
                                   "--max-input-size BYTES)", dir,
                                   (unsigned long long)cli_input_limit(CLI_INPUT_TEXT));
            (*n_files)++;
        }
        free(text);
        free(names[i]);
    }
    if (status == 0 && b->length == 0)
        status = cli_error(CLI_EXIT_RUNTIME, "demo",
                           "no corpus: %s holds no fortune files (install the "
                           "Debian package fortunes or fortunes-min, or pass "
                           "--corpus FILE)",
                           dir);
    return status;
}

/* Seconds per training step of the demo's model on this machine,
 * measured on a few steps, or a negative value on failure. */
static double measure_step(const train_settings *s, int32_t vocab) {
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    tlm_dataset *data = NULL;
    tlm_trainer *trainer = NULL;
    double seconds = -1;
    enum { N_IDS = 4096 };
    static int32_t ids[N_IDS];
    for (int i = 0; i < N_IDS; i++)
        ids[i] = (int32_t)((i * 7919) % vocab);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = vocab;
    c.d_model = s->dim;
    c.n_heads = s->heads;
    c.n_decoder_layers = s->layers;
    c.max_context = s->context;
    tlm_trainer_params tp;
    tlm_trainer_params_init(&tp);
    tp.batch_size = s->batch;
    if (cli_context("demo", s->threads, &ctx) == 0 &&
        tlm_model_create(&model, ctx, &c) == TLM_OK &&
        tlm_dataset_from_ids(&data, ctx, ids, N_IDS, NULL) == TLM_OK &&
        tlm_trainer_create(&trainer, model, data, &tp) == TLM_OK &&
        tlm_trainer_step(trainer, NULL) == TLM_OK) {
        const double start = cli_now();
        if (tlm_trainer_step(trainer, NULL) == TLM_OK && tlm_trainer_step(trainer, NULL) == TLM_OK)
            seconds = (cli_now() - start) / 2;
    }
    tlm_trainer_free(trainer);
    tlm_dataset_free(data);
    tlm_model_free(model);
    tlm_context_free(ctx);
    return seconds;
}

int cmd_demo(int argc, char **argv) {
    const char *corpus = NULL, *out_dir = "demo";
    float seconds = 150;
    int32_t threads = 0;
    cli_option options[] = {
        {"corpus", 0, CLI_STRING, &corpus, 0, 0, "FILE", "train on this text instead of the fortunes", 0},
        {"seconds", 0, CLI_FLOAT, &seconds, 1, 1e6, "N", "training time (default 150)", 0},
        {"out-dir", 0, CLI_STRING, &out_dir, 0, 0, "DIR", "where the results go (default ./demo)", 0},
        {"threads", 0, CLI_INT, &threads, 0, 1024, "N", "compute threads; 0 = one per core", 0},
    };
    cli_command cmd = {"demo", "[--seconds N] [--out-dir DIR] [--corpus FILE]",
                       "Train a small character-level model on the fortunes corpus ("
                       FORTUNES_DIR ")\n"
                       "for about two and a half minutes, write DIR/model.tlm, DIR/train.jsonl\n"
                       "and DIR/loss.svg, and print samples at temperatures 0.2, 0.8 and 1.5.",
                       options, 4, 0, 0, NULL};
    const char *positional[1];
    int n_positional = 0;
    int status = cli_parse(&cmd, argc, argv, positional, &n_positional);
    if (status != 0)
        return status < 0 ? 0 : status;
    printf("tlm %s demo\n", tlm_version_string());
    if (tlm_version_number() != TLM_VERSION_NUMBER)
        return cli_error(CLI_EXIT_RUNTIME, "demo", "header version %s does not match library version %s",
                         TLM_VERSION_STRING, tlm_version_string());

    text_buffer text = {NULL, 0, 0};
    int n_files = 1;
    if (corpus != NULL) {
        status = cli_read_file("demo", corpus, CLI_INPUT_TEXT, &text.data, &text.length);
    } else {
        status = read_fortunes(FORTUNES_DIR, &text, &n_files);
    }
    if (status != 0) {
        free(text.data);
        return status;
    }
    printf("corpus: %s (%d file%s, %.2f MB)\n", corpus ? corpus : FORTUNES_DIR, n_files,
           n_files == 1 ? "" : "s", (double)text.length / 1e6);
    char model_path[4096], log_path[4096], svg_path[4096];
    const int model_length = snprintf(model_path, sizeof model_path, "%s/model.tlm", out_dir);
    const int log_length = snprintf(log_path, sizeof log_path, "%s/train.jsonl", out_dir);
    const int svg_length = snprintf(svg_path, sizeof svg_path, "%s/loss.svg", out_dir);
    /* A cut name would be another file than the one asked for. */
    if (model_length < 0 || (size_t)model_length >= sizeof model_path || log_length < 0 ||
        (size_t)log_length >= sizeof log_path || svg_length < 0 ||
        (size_t)svg_length >= sizeof svg_path) {
        free(text.data);
        return cli_error(CLI_EXIT_USAGE, "demo",
                         "--out-dir: the directory's name is %zu bytes long; its files' "
                         "names must fit in %zu bytes",
                         strlen(out_dir), sizeof model_path - 1);
    }
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        free(text.data);
        return cli_error(CLI_EXIT_RUNTIME, "demo", "cannot create '%s': %s", out_dir, strerror(errno));
    }
    const cli_path input = {corpus, "--corpus"};
    const cli_path outputs[3] = {{model_path, "--out-dir"}, {log_path, "--out-dir"},
                                 {svg_path, "--out-dir"}};
    if (cli_check_outputs("demo", &input, 1, outputs, 3) != 0) {
        free(text.data);
        return CLI_EXIT_USAGE;
    }

    train_settings s;
    train_settings_init(&s);
    s.cmd = "demo";
    s.text = text.data;
    s.text_length = text.length;
    s.layers = DEMO_LAYERS;
    s.heads = DEMO_HEADS;
    s.dim = DEMO_DIM;
    s.context = DEMO_CONTEXT;
    s.batch = DEMO_BATCH;
    s.lr = 2e-3f;
    s.threads = threads;
    s.out = model_path;
    s.log = log_path;
    s.time_limit = seconds;
    s.quiet_summary = 1;
    /* Steps that fit in the time: the cosine schedule must end on time
     * whatever the machine's speed (the time limit stops it regardless). */
    const double per_step = measure_step(&s, 128);
    int64_t steps = per_step > 0 ? (int64_t)((double)seconds * 0.85 / per_step) : 1000;
    steps = steps < 20 ? 20 : steps > 100000 ? 100000 : steps;
    s.steps = (int32_t)steps;
    s.eval_every = s.steps / 10 > 0 ? s.steps / 10 : 1;
    s.eval_batches = 8;
    printf("training %d layers x %d heads, width %d, context %d, batch %d for %.0f s "
           "(about %d steps at %.0f ms/step)\n",
           DEMO_LAYERS, DEMO_HEADS, DEMO_DIM, DEMO_CONTEXT, DEMO_BATCH, (double)seconds,
           (int)steps, per_step * 1e3);
    fflush(stdout);
    status = train_run(&s);
    free(text.data);
    if (status != 0)
        return status;
    status = plot_write("demo", log_path, svg_path, "tlm demo: training loss (fortunes, characters)");
    if (status != 0)
        return status;
    printf("wrote %s, %s and %s\n", model_path, log_path, svg_path);

    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    if (cli_load_model("demo", model_path, 1, &ctx, &model) != 0)
        return CLI_EXIT_RUNTIME;
    static const float temperatures[] = {0.2f, 0.8f, 1.5f};
    for (int i = 0; i < 3 && status == 0; i++) {
        printf("\n--- sample at temperature %.1f (prompt \"%s\", seed 1) ---\n",
               (double)temperatures[i], DEMO_PROMPT);
        tlm_sampler_params sp;
        tlm_sampler_params_init(&sp);
        sp.temperature = temperatures[i];
        sp.seed = 1;
        status = generate_stream("demo", model, DEMO_PROMPT, 300, &sp, NULL);
        printf("\n");
    }
    tlm_model_free(model);
    tlm_context_free(ctx);
    if (status == 0)
        printf("\nnext: build/examples/tlm generate %s --prompt \"...\" --temperature 0.8\n"
               "      open %s in a browser to see the loss curves\n",
               model_path, svg_path);
    return status;
}
