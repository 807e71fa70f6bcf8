/*
 * tlm train: a character-level (or byte, or BPE) decoder-only model of a
 * text file. Reads the text, trains the tokenizer, splits the ids 90/10,
 * creates the model, and runs the trainer (AdamW, warm-up and cosine decay)
 * with evaluations and resumable checkpoints, a progress line and a JSONL
 * log. Ctrl-C finishes the current step, saves and stops. With --init the
 * model and its tokenizer come from an existing .tlm file (fine-tuning).
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "input_file.h"
#include "numbers.h"
#include "memory_limit.h"
#include "options.h"
#include "output_file.h"
#include "pairs.h"
#include "paths.h"
#include "progress.h"

volatile sig_atomic_t cli_interrupted = 0;

static void on_interrupt(int signal_number) {
    (void)signal_number;
    cli_interrupted = 1; /* nothing else is safe here */
}

void cli_catch_interrupt(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
}

void train_settings_init(train_settings *s) {
    memset(s, 0, sizeof *s);
    s->tokenizer = "char";
    s->arch = "gpt";
    s->precision = "float32";
    s->layers = 4;
    s->decoder_layers = -1; /* -1: take --layers */
    s->heads = 4;
    s->dim = 128;
    s->ffn = 0;
    s->context = 64;
    s->batch = 12;
    s->steps = 1000;
    s->warmup = -1;     /* -1: min(100, steps / 10) */
    s->accum = 1;
    s->eval_every = 0;  /* 0: steps / 10 */
    s->eval_batches = 8;
    s->lr = 1e-3f;
    s->min_lr = -1.0f;  /* -1: lr / 10 */
    s->weight_decay = 0.1f;
    s->grad_clip = 1.0f;
    s->max_bad_steps = 10;
    s->max_grad_norm = 0.0f; /* off */
    s->seed = 1;
    s->beam = 1;
    s->length_penalty = 0.6f;
    s->out = "model.tlm";
    s->cmd = "train";
}

/* Whether --tokenizer names a file to import rather than a kind to
 * train: anything that is not byte, char or bpe:... */
static int tokenizer_is_path(const char *text) {
    return strcmp(text, "byte") != 0 && strcmp(text, "char") != 0 &&
           strncmp(text, "bpe:", 4) != 0;
}

/* Whether --arch is one tlm train knows. */
static int arch_known(const char *arch) {
    return strcmp(arch, "gpt") == 0 || strcmp(arch, "llama") == 0;
}

/* The architecture --arch names, on top of tlm_model_config_init()'s
 * defaults (gpt: those defaults; llama: rotary positions, RMSNorm with
 * eps 1e-5, SwiGLU, no biases, untied output, pre-norm). */
static void apply_arch(const char *arch, tlm_model_config *c) {
    if (strcmp(arch, "llama") != 0)
        return;
    c->position = TLM_POSITION_ROTARY;
    c->norm = TLM_NORM_RMS;
    c->norm_eps = 1e-5f;
    c->norm_placement = TLM_NORM_PRE;
    c->activation = TLM_ACTIVATION_SWIGLU;
    c->bias = 0;
    c->tied_output = 0;
}

/* The values of --position, --norm, --norm-placement and --activation,
 * named as docs/model.md names the tlm_model_config fields' values. */
typedef struct named_value {
    const char *name;
    int32_t value;
} named_value;

static const named_value positions[] = {{"learned", TLM_POSITION_LEARNED},
                                        {"sinusoidal", TLM_POSITION_SINUSOIDAL},
                                        {"rotary", TLM_POSITION_ROTARY}};
static const named_value norms[] = {{"layer", TLM_NORM_LAYER}, {"rms", TLM_NORM_RMS}};
static const named_value placements[] = {{"pre", TLM_NORM_PRE}, {"post", TLM_NORM_POST}};
static const named_value activations[] = {{"gelu", TLM_ACTIVATION_GELU},
                                          {"gelu_exact", TLM_ACTIVATION_GELU_EXACT},
                                          {"relu", TLM_ACTIVATION_RELU},
                                          {"swiglu", TLM_ACTIVATION_SWIGLU}};

typedef struct architecture_option {
    const char *option; /* "--position" */
    const named_value *values;
    size_t n_values;
    unsigned given;     /* its TRAIN_GIVEN_* bit */
} architecture_option;

#define VALUES(table) table, sizeof table / sizeof table[0]
static const architecture_option named_options[] = {
    {"--position", VALUES(positions), TRAIN_GIVEN_POSITION},
    {"--norm", VALUES(norms), TRAIN_GIVEN_NORM},
    {"--norm-placement", VALUES(placements), TRAIN_GIVEN_NORM_PLACEMENT},
    {"--activation", VALUES(activations), TRAIN_GIVEN_ACTIVATION},
};
#undef VALUES

/* The setting of named_options[i] (NULL when not given). */
static const char *named_setting(const train_settings *s, size_t i) {
    const char *const settings[] = {s->position, s->norm, s->norm_placement,
                                    s->activation};
    return settings[i];
}

/* The field of named_options[i] in a configuration. */
static int32_t *named_field(tlm_model_config *c, size_t i) {
    int32_t *const fields[] = {&c->position, &c->norm, &c->norm_placement,
                               &c->activation};
    return fields[i];
}

/* Whether `given` is `name`, a '-' standing for a '_' (tlm info writes
 * gelu-exact, docs/model.md gelu_exact). */
static int same_name(const char *name, const char *given) {
    for (; *name != '\0' && *given != '\0'; name++, given++)
        if (*name != *given && !(*name == '_' && *given == '-'))
            return 0;
    return *name == *given;
}

/* The value called `name` of named_options[i], or -1. */
static int32_t named_value_of(size_t i, const char *name) {
    for (size_t k = 0; k < named_options[i].n_values; k++)
        if (same_name(named_options[i].values[k].name, name))
            return named_options[i].values[k].value;
    return -1;
}

/* The name of `value` for named_options[i]. */
static const char *named_value_name(size_t i, int32_t value) {
    for (size_t k = 0; k < named_options[i].n_values; k++)
        if (named_options[i].values[k].value == value)
            return named_options[i].values[k].name;
    return "?";
}

/* A usage error for a value the option does not know, listing those it
 * does; 0 when every given value is known. */
static int check_named_values(const train_settings *s) {
    for (size_t i = 0; i < sizeof named_options / sizeof named_options[0]; i++) {
        const char *given = named_setting(s, i);
        if (given == NULL || named_value_of(i, given) >= 0)
            continue;
        char accepted[128] = "";
        for (size_t k = 0; k < named_options[i].n_values; k++) {
            const size_t used = strlen(accepted);
            snprintf(accepted + used, sizeof accepted - used, "%s%s",
                     k == 0 ? "" : k + 1 == named_options[i].n_values ? " or " : ", ",
                     named_options[i].values[k].name);
        }
        return cli_error(CLI_EXIT_USAGE, s->cmd, "%s expects %s, not '%s'",
                         named_options[i].option, accepted, given);
    }
    return 0;
}

/* The whole architecture the command line asks for: --arch's preset, then
 * --position, --norm, --norm-placement, --activation, --no-bias and
 * --untied on top of it (values already checked). */
static void apply_architecture(const train_settings *s, tlm_model_config *c) {
    apply_arch(s->arch, c);
    for (size_t i = 0; i < sizeof named_options / sizeof named_options[0]; i++)
        if (named_setting(s, i) != NULL)
            *named_field(c, i) = named_value_of(i, named_setting(s, i));
    if (s->no_bias)
        c->bias = 0;
    if (s->untied)
        c->tied_output = 0;
}

/* "byte", "char" or "bpe:N" into tokenizer settings; -1 if malformed. */
static int parse_tokenizer(const char *text, tlm_tokenizer_params *p) {
    tlm_tokenizer_params_init(p);
    if (strcmp(text, "byte") == 0) {
        p->kind = TLM_TOKENIZER_BYTE;
        return 0;
    }
    if (strcmp(text, "char") == 0) {
        p->kind = TLM_TOKENIZER_CHAR;
        return 0;
    }
    if (strncmp(text, "bpe:", 4) == 0) {
        p->kind = TLM_TOKENIZER_BPE;
        int64_t vocab_size = 0;
        if (cli_number_int(text + 4, 259, 1 << 20, &vocab_size) != CLI_NUMBER_OK)
            return -1;
        p->vocab_size = (int32_t)vocab_size;
        return 0;
    }
    return -1;
}

typedef struct job {
    const train_settings *s;
    tlm_context *ctx;
    tlm_model *model;
    tlm_tokenizer *trained; /* the tokenizer we trained (the model holds a copy) */
    tlm_dataset *data;
    tlm_trainer *trainer;
    cli_input text;         /* --data, mapped until it is encoded */
    int32_t *ids;           /* --data: the text's ids until the dataset has
                               them; --pairs: every pair's, kept for the
                               exact-match check */
    cli_output *log;        /* --log (rank 0), or NULL */
    tlm_comm *comm;         /* under mpirun: all the job's processes */
    int rank;               /* only rank 0 prints and writes files */
    /* --pairs */
    cli_pairs pairs;        /* the file, until encoded */
    int64_t *offsets;       /* [2 n_pairs + 1], as tlm_dataset_from_pairs */
    int64_t n_pairs, train_pairs;
    int32_t bos_id, eos_id, pad_id;
    double exact_match;     /* of the last check, -1 before one */
    int64_t matched, checked;
} job;

static void job_free(job *j) {
    cli_output_abort(j->log); /* normally closed (and NULL) by train_run */
    tlm_trainer_free(j->trainer);
    tlm_dataset_free(j->data);
    tlm_model_free(j->model);
    tlm_tokenizer_free(j->trained);
    tlm_context_free(j->ctx);
    free(j->ids);
    free(j->offsets);
    cli_pairs_free(&j->pairs);
    cli_input_release(&j->text);
    tlm_comm_free(j->comm); /* finalises MPI when it initialised it */
}

/* Processes started by mpirun (OpenMPI, MPICH, or a PMI/PMIx launcher):
 * the number of processes of the job, or 0 when not started so; -1 after
 * printing that the launcher's variable is not a process count. */
static long mpi_world_size(const char *cmd) {
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE",
                           "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *value = getenv(names[i]);
        if (value == NULL || *value == '\0')
            continue;
        int64_t size = 0;
        const int problem = cli_number_int(value, 1, INT32_MAX, &size);
        if (problem != CLI_NUMBER_OK) {
            char message[512];
            cli_number_message(message, sizeof message, names[i], value, problem,
                               "a number of processes in 1..2147483647");
            cli_error(CLI_EXIT_RUNTIME, cmd, "%s", message);
            return -1;
        }
        return (long)size;
    }
    return getenv("PMIX_RANK") != NULL ? 1 : 0;
}

/* Under mpirun, data-parallel training over every process of the job
 * (docs/distributed.md); alone, nothing. */
static int join_mpi_job(job *j) {
    const train_settings *s = j->s;
    const long size = mpi_world_size(s->cmd);
    if (size < 0)
        return CLI_EXIT_RUNTIME;
    if (size == 0)
        return 0;
    if (!tlm_comm_available()) {
        if (size == 1)
            return 0;
        return cli_error(CLI_EXIT_RUNTIME, s->cmd,
                         "started by mpirun with %ld processes, but this tlm was "
                         "built without MPI: they would all train alone and "
                         "overwrite each other's files (rebuild with "
                         "-Dmpi=enabled, or run one process)", size);
    }
    if (tlm_comm_create_world(&j->comm, NULL) != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s", tlm_last_error());
    j->rank = tlm_comm_rank(j->comm);
    return 0;
}

static const char *tokenizer_kind_name(int32_t kind) {
    static const char *const names[] = {"byte", "char", "bpe", "gpt2", "sentencepiece"};
    return kind >= 0 && kind < 5 ? names[kind] : "another kind";
}

/* Appends "--name value (the model's ...)" to the list of conflicts. */
static void add_conflict(char *list, size_t capacity, const char *text) {
    const size_t used = strlen(list);
    snprintf(list + used, capacity - used, "%s%s", used > 0 ? ", " : "", text);
}

/* Training updates float32 weights only: a quantized model (int8, bf16)
 * is refused as soon as it is loaded (before the corpus is tokenized or
 * a trainer made), with the command that makes it trainable again. */
static int refuse_quantized(const train_settings *s, tlm_model *model, const char *path,
                            const char *option) {
    const int32_t format = tlm_model_weight_format(model);
    if (format == TLM_WEIGHTS_F32)
        return 0;
    return cli_error(CLI_EXIT_RUNTIME, s->cmd,
                     "%s '%s': its weights are %s and training needs float32; "
                     "dequantize first: tlm quantize '%s' --to f32 -o OUT.tlm",
                     option, path, weight_format_text(format), path);
}

/* Whether a model loaded for --init or --resume is of the kind the run
 * trains: decoder-only on a text (--data), encoder-decoder on --pairs. */
static int check_model_kind(const train_settings *s, const tlm_model_config *c,
                            const char *path, const char *option) {
    const int seq2seq = c->n_encoder_layers > 0 && c->n_decoder_layers > 0;
    if (s->pairs == NULL && c->n_encoder_layers != 0)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd,
                         "'%s' is not a decoder-only model: %s with --data trains "
                         "a decoder-only model on a text file%s", path, option,
                         seq2seq ? " (an encoder-decoder model trains on --pairs)" : "");
    if (s->pairs != NULL && !seq2seq)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd,
                         "'%s' is not an encoder-decoder model: %s with --pairs "
                         "trains an encoder-decoder model", path, option);
    return 0;
}

/* --init and --resume keep the architecture and tokenizer of the model
 * they load: the architecture options that disagree with it are refused,
 * by name, rather than ignored. */
static int check_kept_architecture(const train_settings *s, tlm_model *model,
                                   const char *path, const char *option) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    tlm_model_get_config(model, &c);
    tlm_tokenizer *tok = tlm_model_tokenizer(model);
    char conflicts[1024] = "";
    char one[160];
    if (s->given & TRAIN_GIVEN_LAYERS) {
        const int32_t layers = s->decoder_layers >= 0 ? s->decoder_layers : s->layers;
        if (layers != c.n_decoder_layers) {
            snprintf(one, sizeof one, "--layers %d (the model has %d)", (int)layers,
                     (int)c.n_decoder_layers);
            add_conflict(conflicts, sizeof conflicts, one);
        }
    }
    if ((s->given & TRAIN_GIVEN_ENCODER_LAYERS) && s->encoder_layers != c.n_encoder_layers) {
        snprintf(one, sizeof one, "--encoder-layers %d (the model has %d)",
                 (int)s->encoder_layers, (int)c.n_encoder_layers);
        add_conflict(conflicts, sizeof conflicts, one);
    }
    if ((s->given & TRAIN_GIVEN_HEADS) && s->heads != c.n_heads) {
        snprintf(one, sizeof one, "--heads %d (the model has %d)", (int)s->heads,
                 (int)c.n_heads);
        add_conflict(conflicts, sizeof conflicts, one);
    }
    if ((s->given & TRAIN_GIVEN_KV_HEADS) &&
        (s->kv_heads != 0 ? s->kv_heads : c.n_heads) != c.n_kv_heads) {
        snprintf(one, sizeof one, "--kv-heads %d (the model has %d)",
                 (int)s->kv_heads, (int)c.n_kv_heads);
        add_conflict(conflicts, sizeof conflicts, one);
    }
    if (s->given & TRAIN_GIVEN_ARCH) {
        tlm_model_config wanted = c;
        if (strcmp(s->arch, "gpt") == 0) {
            tlm_model_config gpt;
            tlm_model_config_init(&gpt);
            wanted.position = gpt.position;
            wanted.norm = gpt.norm;
            wanted.norm_placement = gpt.norm_placement;
            wanted.activation = gpt.activation;
            wanted.bias = gpt.bias;
            wanted.tied_output = gpt.tied_output;
        }
        apply_arch(s->arch, &wanted);
        /* What an explicit option sets is that option's to answer for. */
        for (size_t i = 0; i < sizeof named_options / sizeof named_options[0]; i++)
            if (named_setting(s, i) != NULL)
                *named_field(&wanted, i) = *named_field(&c, i);
        if (s->no_bias)
            wanted.bias = c.bias;
        if (s->untied)
            wanted.tied_output = c.tied_output;
        if (wanted.position != c.position || wanted.norm != c.norm ||
            wanted.norm_placement != c.norm_placement ||
            wanted.activation != c.activation || wanted.bias != c.bias ||
            wanted.tied_output != c.tied_output || wanted.norm_eps != c.norm_eps) {
            snprintf(one, sizeof one, "--arch %s (the model's positions, "
                     "norms or norm_eps, activation, biases or output tying differ)", s->arch);
            add_conflict(conflicts, sizeof conflicts, one);
        }
    }
    for (size_t i = 0; i < sizeof named_options / sizeof named_options[0]; i++) {
        const char *given = named_setting(s, i);
        const int32_t model_value = *named_field(&c, i);
        if (given != NULL && named_value_of(i, given) != model_value) {
            snprintf(one, sizeof one, "%s %s (the model's is %s)",
                     named_options[i].option, given, named_value_name(i, model_value));
            add_conflict(conflicts, sizeof conflicts, one);
        }
    }
    if (s->no_bias && c.bias)
        add_conflict(conflicts, sizeof conflicts, "--no-bias (the model has biases)");
    if (s->untied && c.tied_output)
        add_conflict(conflicts, sizeof conflicts,
                     "--untied (the model's output projection is its token embedding)");
    if ((s->given & TRAIN_GIVEN_DIM) && s->dim != c.d_model) {
        snprintf(one, sizeof one, "--dim %d (the model's is %d)", (int)s->dim,
                 (int)c.d_model);
        add_conflict(conflicts, sizeof conflicts, one);
    }
    if ((s->given & TRAIN_GIVEN_FFN) && (s->ffn != 0 ? s->ffn : 4 * c.d_model) != c.d_ff) {
        snprintf(one, sizeof one, "--ffn %d (the model's is %d)", (int)s->ffn,
                 (int)c.d_ff);
        add_conflict(conflicts, sizeof conflicts, one);
    }
    if ((s->given & TRAIN_GIVEN_DROPOUT) &&
        (s->dropout != c.embedding_dropout || s->dropout != c.residual_dropout)) {
        snprintf(one, sizeof one, "--dropout %g (the model's is %g)", (double)s->dropout,
                 (double)c.residual_dropout);
        add_conflict(conflicts, sizeof conflicts, one);
    }
    if ((s->given & TRAIN_GIVEN_TOKENIZER) && tok != NULL) {
        tlm_tokenizer_params wanted;
        const int32_t kind = tlm_tokenizer_kind(tok);
        if (parse_tokenizer(s->tokenizer, &wanted) != 0 || wanted.kind != kind ||
            (kind == TLM_TOKENIZER_BPE && wanted.vocab_size != c.vocab_size)) {
            snprintf(one, sizeof one, "--tokenizer %s (the model's is %s with %d ids)",
                     s->tokenizer, tokenizer_kind_name(kind), (int)c.vocab_size);
            add_conflict(conflicts, sizeof conflicts, one);
        }
    }
    if (conflicts[0] != '\0')
        return cli_error(CLI_EXIT_USAGE, s->cmd,
                         "%s: %s keeps the architecture and tokenizer of '%s' "
                         "(leave these options out)", conflicts, option, path);
    return 0;
}

/* Fine-tuning: the model given to --init with its architecture and
 * tokenizer as they are (nothing is re-learned). */
static int load_initial_model(job *j) {
    const train_settings *s = j->s;
    if (tlm_model_load(&j->model, j->ctx, s->init, NULL) != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s", tlm_last_error());
    if (refuse_quantized(s, j->model, s->init, "--init") != 0)
        return CLI_EXIT_RUNTIME;
    tlm_model_config c;
    tlm_model_config_init(&c);
    tlm_model_get_config(j->model, &c);
    if (check_model_kind(s, &c, s->init, "--init") != 0)
        return CLI_EXIT_RUNTIME;
    tlm_tokenizer *tok = tlm_model_tokenizer(j->model);
    if (tok == NULL)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd,
                         "'%s' has no tokenizer: --init trains with the model's "
                         "own tokenizer (attach one with 'tlm import ... "
                         "--tokenizer-from MODEL.tlm')", s->init);
    const int status = check_kept_architecture(s, j->model, s->init, "--init");
    if (status != 0)
        return status;
    if ((s->given & TRAIN_GIVEN_CONTEXT) && s->context > c.max_context)
        return cli_error(CLI_EXIT_USAGE, s->cmd,
                         "--context %d is longer than the max_context %d of '%s'",
                         (int)s->context, (int)c.max_context, s->init);
    return 0;
}

static int create_model(job *j, int32_t max_context);

/* The model: from the checkpoint when resuming, from --init's model when
 * fine-tuning, else a new one with its tokenizer learned from `text`:
 * created at once with `create`, else by create_model() once the
 * tokenizer has measured the pairs. */
static int make_model(job *j, const char *text, size_t length, int create) {
    const train_settings *s = j->s;
    if (s->init != NULL)
        return load_initial_model(j);
    if (s->resume != NULL) {
        if (tlm_model_load(&j->model, j->ctx, s->resume, NULL) != TLM_OK)
            return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s", tlm_last_error());
        if (refuse_quantized(s, j->model, s->resume, "--resume") != 0)
            return CLI_EXIT_RUNTIME;
        if (tlm_model_tokenizer(j->model) == NULL)
            return cli_error(CLI_EXIT_RUNTIME, s->cmd,
                             "'%s' has no tokenizer: it was not written by tlm train",
                             s->resume);
        tlm_model_config c;
        tlm_model_config_init(&c);
        tlm_model_get_config(j->model, &c);
        if (check_model_kind(s, &c, s->resume, "--resume") != 0)
            return CLI_EXIT_RUNTIME;
        return check_kept_architecture(s, j->model, s->resume, "--resume");
    }
    if (tokenizer_is_path(s->tokenizer)) {
        /* A tokenizer file (tokenizer.model, tokenizer.bin, GPT-2's files,
         * a tlm tokenizer), used as it is: nothing is learned. */
        if (tlm_tokenizer_import(&j->trained, j->ctx, s->tokenizer) != TLM_OK)
            return cli_error(CLI_EXIT_RUNTIME, s->cmd, "--tokenizer: %s",
                             tlm_last_error());
    } else {
        tlm_tokenizer_params tp;
        if (parse_tokenizer(s->tokenizer, &tp) != 0)
            return cli_error(CLI_EXIT_USAGE, s->cmd,
                             "--tokenizer expects byte, char, bpe:N (N in "
                             "259..1048576) or a tokenizer file, not '%s'",
                             s->tokenizer);
        if (tlm_tokenizer_train(&j->trained, j->ctx, text, length, &tp) != TLM_OK)
            return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s", tlm_last_error());
    }
    return create ? create_model(j, 0) : 0;
}

/* A new model of the architecture the command line asks for, with the
 * tokenizer make_model() learned and `max_context` positions (0:
 * --context). */
static int create_model(job *j, int32_t max_context) {
    const train_settings *s = j->s;
    tlm_model_config c;
    tlm_model_config_init(&c);
    apply_architecture(s, &c);
    c.vocab_size = tlm_tokenizer_vocab_size(j->trained);
    c.d_model = s->dim;
    c.n_heads = s->heads;
    c.n_kv_heads = s->kv_heads;
    c.d_ff = s->ffn;
    c.n_encoder_layers = s->pairs != NULL ? s->encoder_layers : 0;
    c.n_decoder_layers = s->decoder_layers >= 0 ? s->decoder_layers : s->layers;
    c.max_context = max_context > 0 ? max_context : s->context;
    c.embedding_dropout = s->dropout;
    c.residual_dropout = s->dropout;
    c.init_seed = s->seed;
    const int created = tlm_model_create(&j->model, j->ctx, &c);
    if (created != TLM_OK) /* a refused size is not a usage error */
        return cli_error(created == TLM_E_NOMEM ? CLI_EXIT_RUNTIME : CLI_EXIT_USAGE,
                         s->cmd, "%s", tlm_last_error());
    if (tlm_model_set_tokenizer(j->model, j->trained) != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s", tlm_last_error());
    return 0;
}

static void log_number(FILE *f, const char *key, double value) {
    if (isfinite(value))
        fprintf(f, ",\"%s\":%.6g", key, value);
    else
        fprintf(f, ",\"%s\":null", key);
}

/* One line of the log, handed to the system at once (a run that is
 * killed keeps every line written so far); 0, or CLI_EXIT_RUNTIME after
 * the message when a write failed. */
static int log_step(cli_output *log, const tlm_step_info *info, double val_loss,
                    double tokens_per_s, double elapsed, double exact_match) {
    FILE *f = cli_output_stream(log);
    fprintf(f, "{\"step\":%lld", (long long)info->step);
    log_number(f, "loss", (double)info->loss);
    if (val_loss >= 0)
        log_number(f, "val_loss", val_loss);
    else
        fputs(",\"val_loss\":null", f);
    log_number(f, "lr", (double)info->lr);
    log_number(f, "grad_norm", info->grad_norm);
    log_number(f, "tokens_per_s", tokens_per_s);
    log_number(f, "elapsed", elapsed);
    if (exact_match >= 0) /* --pairs, at the end */
        log_number(f, "exact_match", exact_match);
    if (info->skipped)
        fputs(",\"skipped\":true", f);
    fputs("}\n", f);
    return cli_output_flush(log);
}

/* Under mpirun: whether any rank wants to stop, so that all stop at the
 * same step (a rank alone in the next step would wait forever). */
static int agree(job *j, int stop) {
    int32_t any = stop;
    if (j->comm != NULL && tlm_comm_any(j->comm, stop, &any) != TLM_OK)
        return 1;
    return any != 0;
}

static int check_exact_match(job *j);

/* Validation loss and checkpoint; with --pairs at the `last` evaluation,
 * the exact-match check of the held-out pairs too. */
static int evaluate_and_save(job *j, float *val, int last) {
    const train_settings *s = j->s;
    if (last && s->pairs != NULL && j->rank == 0) {
        const int status = check_exact_match(j);
        if (status != 0)
            return status;
    }
    if (tlm_trainer_evaluate(j->trainer, TLM_SPLIT_VALIDATION, s->eval_batches,
                             val) != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s",
                         tlm_trainer_last_error(j->trainer));
    if (tlm_trainer_save(j->trainer, s->out) != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s",
                         tlm_trainer_last_error(j->trainer));
    return 0;
}

/* --data: the context, the model and the stream dataset of the text's
 * ids; *context is the training sequence length, *n_ids the text's
 * tokens. */
static int prepare_text(job *j, int32_t *context_out, size_t *n_ids_out) {
    const train_settings *s = j->s;
    const char *text = s->text;
    size_t length = s->text_length;
    if (text == NULL) {
        /* Mapped read-only, not copied: the text costs page cache that the
         * kernel can drop, and it is unmapped once encoded. */
        if (cli_input_map(s->cmd, s->data, CLI_INPUT_TEXT, &j->text) != 0)
            return CLI_EXIT_RUNTIME;
        text = j->text.data;
        length = j->text.size;
    }
    if (length == 0)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "'%s' is empty",
                         s->data ? s->data : "the corpus");
    if (cli_context(s->cmd, s->threads, &j->ctx) != 0)
        return CLI_EXIT_RUNTIME;
    int status = join_mpi_job(j);
    if (status != 0)
        return status;
    status = make_model(j, text, length, 1);
    if (status != 0)
        return status;
    tlm_tokenizer *tok = tlm_model_tokenizer(j->model);
    tlm_model_config config;
    tlm_model_config_init(&config);
    tlm_model_get_config(j->model, &config);

    /* Encode: room for one id per byte, which every kind but SentencePiece
     * (byte fallback, a dummy prefix) never exceeds; encode again with
     * the room it asked for when it does. */
    if (length > SIZE_MAX / sizeof *j->ids)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "the text is too large");
    j->ids = malloc(length * sizeof *j->ids);
    if (j->ids == NULL)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "out of memory for %zu ids", length);
    size_t n_ids = 0;
    int encoded = tlm_tokenizer_encode(tok, text, length, j->ids, length, &n_ids);
    if (encoded == TLM_E_RANGE && n_ids > length && n_ids <= SIZE_MAX / sizeof *j->ids) {
        int32_t *more = realloc(j->ids, n_ids * sizeof *j->ids);
        if (more == NULL)
            return cli_error(CLI_EXIT_RUNTIME, s->cmd, "out of memory for %zu ids", n_ids);
        j->ids = more;
        encoded = tlm_tokenizer_encode(tok, text, length, j->ids, n_ids, &n_ids);
    }
    if (encoded != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s", tlm_tokenizer_last_error(tok));
    cli_input_release(&j->text); /* encoded: the text is not read again */
    /* Positions per training sequence: the model's max_context, except
     * when fine-tuning, where --context may take fewer (by default the
     * smaller of --context's default and the model's), and when resuming
     * with --context given (a run started with --init --context N resumes
     * with --context N). */
    int32_t context = config.max_context;
    if (s->resume != NULL && (s->given & TRAIN_GIVEN_CONTEXT) && s->context > context)
        return cli_error(CLI_EXIT_USAGE, s->cmd,
                         "--context %d is longer than the max_context %d of '%s'",
                         (int)s->context, (int)context, s->resume);
    if ((s->init != NULL || (s->resume != NULL && (s->given & TRAIN_GIVEN_CONTEXT))) &&
        s->context < context)
        context = s->context;
    /* 90/10 split; both parts need a window of context + 1 tokens. */
    const int64_t need = (int64_t)context + 1;
    const int64_t n_val = (int64_t)n_ids - (int64_t)((double)n_ids * 0.9);
    if ((int64_t)n_ids - n_val < need || n_val < need)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd,
                         "the text has %zu tokens: too few for a context of %d "
                         "(each part of the 90/10 split needs %lld tokens; "
                         "use a smaller --context or more text)",
                         n_ids, (int)context, (long long)need);
    if (tlm_dataset_from_ids(&j->data, j->ctx, j->ids, n_ids, NULL) != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s", tlm_last_error());
    free(j->ids); /* the dataset holds its own copy */
    j->ids = NULL;
    *context_out = context;
    *n_ids_out = n_ids;
    return 0;
}

/* Encodes `length` bytes into ids + *n (room: `capacity` - *n ids), for
 * pair `pair` of the file; an error names the file and line. */
static int encode_side(job *j, tlm_tokenizer *tok, size_t pair, int side,
                       size_t capacity, size_t *n) {
    const train_settings *s = j->s;
    const size_t *span = j->pairs.span + 4 * pair + 2 * side;
    size_t got = 0;
    const int status = tlm_tokenizer_encode(tok, j->pairs.text + span[0],
                                            span[1] - span[0], j->ids + *n,
                                            capacity - *n, &got);
    if (status == TLM_OK && got == 0)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s:%zu: the %s encodes to no token",
                         s->pairs, j->pairs.line[pair], side ? "target" : "source");
    if (status != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s:%zu: %s", s->pairs,
                         j->pairs.line[pair], tlm_tokenizer_last_error(tok));
    *n += got;
    return 0;
}

/* The largest max_context tlm_model_create accepts: a longer pair is
 * refused naming its line (tlm_model_create's message would not). */
#define CLI_PAIRS_MAX_CONTEXT 1048576

/* --pairs: the context, the model (encoder-decoder) and the pair dataset:
 * every source, and every target followed by the tokenizer's end id
 * (docs/seq2seq.md); the last 10% of the pairs are held out. The model's
 * max_context is the longest source or target + end id, unless --context
 * says more. *longest is the longest of those. */
static int prepare_pairs(job *j) {
    const train_settings *s = j->s;
    if (cli_pairs_read(s->cmd, s->pairs, &j->pairs) != 0)
        return CLI_EXIT_RUNTIME;
    const int64_t n_pairs = j->pairs.n;
    const int64_t held_out = (int64_t)((double)n_pairs * 0.1 + 0.5);
    if (held_out < 1)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd,
                         "'%s' has %lld pairs: too few (the last 10%% are held out "
                         "for validation; at least 5 pairs)", s->pairs,
                         (long long)n_pairs);
    if (cli_context(s->cmd, s->threads, &j->ctx) != 0)
        return CLI_EXIT_RUNTIME;
    int status = join_mpi_job(j);
    if (status != 0)
        return status;
    /* The tokenizer learns from both sides: each source and target once,
     * separated by newlines except for a character-level one (a newline
     * would become a character of its vocabulary). */
    const int newlines = strcmp(s->tokenizer, "char") != 0;
    char *corpus = malloc(j->pairs.size + 1);
    if (corpus == NULL)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "out of memory");
    size_t corpus_length = 0;
    for (int64_t p = 0; p < n_pairs; p++)
        for (int side = 0; side < 2; side++) {
            const size_t *span = j->pairs.span + 4 * p + 2 * side;
            memcpy(corpus + corpus_length, j->pairs.text + span[0], span[1] - span[0]);
            corpus_length += span[1] - span[0];
            if (newlines)
                corpus[corpus_length++] = '\n';
        }
    status = make_model(j, corpus, corpus_length, 0);
    free(corpus);
    if (status != 0)
        return status;
    tlm_tokenizer *tok = j->model != NULL ? tlm_model_tokenizer(j->model) : j->trained;
    j->bos_id = tlm_tokenizer_special_id(tok, TLM_TOKEN_BOS);
    j->eos_id = tlm_tokenizer_special_id(tok, TLM_TOKEN_EOS);
    j->pad_id = tlm_tokenizer_special_id(tok, TLM_TOKEN_PAD);
    if (j->bos_id < 0 || j->eos_id < 0)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd,
                         "the tokenizer has no %s id, which the decoder of an "
                         "encoder-decoder model needs", j->bos_id < 0 ? "begin" : "end");
    if (j->pad_id < 0)
        j->pad_id = j->eos_id; /* padding is masked and ignored: any id does */

    /* Encode: at most one id per byte, except SentencePiece: 3 per byte
     * and 3 more per side (byte fallback, the dummy prefix); plus an end
     * id per target. */
    const size_t capacity = 3 * j->pairs.size + 7 * (size_t)n_pairs;
    j->ids = malloc(capacity * sizeof *j->ids);
    j->offsets = malloc((2 * (size_t)n_pairs + 1) * sizeof *j->offsets);
    if (j->ids == NULL || j->offsets == NULL)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "out of memory for the ids of '%s'",
                         s->pairs);
    size_t n = 0;
    int64_t longest = 0, longest_line = 0;
    const char *longest_side = "source";
    j->offsets[0] = 0;
    for (int64_t p = 0; p < n_pairs; p++) {
        for (int side = 0; side < 2; side++) {
            status = encode_side(j, tok, (size_t)p, side, capacity, &n);
            if (status != 0)
                return status;
            if (side == 1)
                j->ids[n++] = j->eos_id;
            j->offsets[2 * p + side + 1] = (int64_t)n;
            const int64_t length = j->offsets[2 * p + side + 1] - j->offsets[2 * p + side];
            if (length > longest) {
                longest = length;
                longest_line = (int64_t)j->pairs.line[p];
                longest_side = side ? "target (with the end id)" : "source";
            }
        }
    }
    /* A tokenizer from --init, --resume or a file may not know every
     * character (a learned one does). */
    const int32_t unk = tlm_tokenizer_special_id(tok, TLM_TOKEN_UNK);
    size_t unknown = 0;
    for (size_t i = 0; unk >= 0 && i < n; i++)
        unknown += j->ids[i] == unk;
    if (unknown > 0 && j->rank == 0)
        fprintf(stderr, "tlm %s: warning: %zu %s of '%s' %s not in the vocabulary "
                "and map%s to <unk>\n", s->cmd, unknown,
                tlm_tokenizer_kind(tok) == TLM_TOKENIZER_CHAR
                    ? (unknown == 1 ? "character" : "characters")
                    : (unknown == 1 ? "piece" : "pieces"),
                s->pairs, unknown == 1 ? "is" : "are", unknown == 1 ? "s" : "");
    int32_t max_context = (int32_t)(longest < INT32_MAX ? longest : INT32_MAX);
    if (j->model == NULL) {
        if ((s->given & TRAIN_GIVEN_CONTEXT) && s->context < longest)
            return cli_error(CLI_EXIT_USAGE, s->cmd,
                             "--context %d is shorter than the %s of %s:%lld (%lld "
                             "tokens); leave --context out to fit the longest pair",
                             (int)s->context, longest_side, s->pairs,
                             (long long)longest_line, (long long)longest);
        if (s->given & TRAIN_GIVEN_CONTEXT)
            max_context = s->context;
        else if (longest > CLI_PAIRS_MAX_CONTEXT)
            return cli_error(CLI_EXIT_RUNTIME, s->cmd,
                             "%s:%lld: the %s is %lld tokens, more than a model's "
                             "largest max_context (%d)", s->pairs,
                             (long long)longest_line, longest_side, (long long)longest,
                             CLI_PAIRS_MAX_CONTEXT);
        status = create_model(j, max_context);
        if (status != 0)
            return status;
    } else {
        tlm_model_config c;
        tlm_model_config_init(&c);
        tlm_model_get_config(j->model, &c);
        if (c.max_context < longest)
            return cli_error(CLI_EXIT_RUNTIME, s->cmd,
                             "the %s of %s:%lld is %lld tokens, more than the "
                             "max_context %d of '%s'", longest_side, s->pairs,
                             (long long)longest_line, (long long)longest,
                             (int)c.max_context, s->init ? s->init : s->resume);
    }
    tlm_dataset_params dp;
    tlm_dataset_params_init(&dp);
    dp.validation_fraction = 0.1f;
    if (tlm_dataset_from_pairs(&j->data, j->ctx, j->ids, j->offsets, n_pairs, &dp) !=
        TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s", tlm_last_error());
    j->n_pairs = n_pairs;
    j->train_pairs = tlm_dataset_size(j->data, TLM_SPLIT_TRAIN);
    free(j->pairs.text); /* encoded; the spans are not read again */
    j->pairs.text = NULL;
    return 0;
}

/* The exact-match check of --pairs: every held-out source decoded (beam
 * search of width --beam, greedy with 1) and compared with its target,
 * id for id, the end id included (the decoder must stop there). */
static int check_exact_match(job *j) {
    const train_settings *s = j->s;
    cli_decoder d;
    if (cli_decoder_init(&d, s->cmd, j->model, s->beam, s->length_penalty, 0) != 0)
        return CLI_EXIT_RUNTIME;
    int64_t matched = 0, checked = 0;
    for (int64_t p = j->train_pairs; p < j->n_pairs; p++) {
        const int64_t *o = j->offsets + 2 * p;
        const int32_t *out = NULL;
        size_t n_out = 0;
        int ended = 0;
        if (cli_decoder_ids(&d, j->ids + o[0], (size_t)(o[1] - o[0]), &out, &n_out,
                            &ended) != TLM_OK) {
            const int status = cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s",
                                         tlm_session_last_error(d.session));
            cli_decoder_free(&d);
            return status;
        }
        /* The target is o[1] .. o[2]: its ids, then the end id. */
        const size_t n_target = (size_t)(o[2] - o[1]) - 1;
        int same = ended && n_out == n_target;
        for (size_t i = 0; same && i < n_target; i++)
            same = out[i] == j->ids[o[1] + (int64_t)i];
        matched += same;
        checked++;
    }
    cli_decoder_free(&d);
    j->matched = matched;
    j->checked = checked;
    j->exact_match = checked > 0 ? (double)matched / (double)checked : 0.0;
    return 0;
}

static int run_job(job *j) {
    const train_settings *s = j->s;
    int32_t context = 0;
    size_t n_ids = 0;
    int status = s->pairs != NULL ? prepare_pairs(j) : prepare_text(j, &context, &n_ids);
    if (status != 0)
        return status;
    const int talk = j->rank == 0; /* only rank 0 prints and writes */
    tlm_tokenizer *tok = tlm_model_tokenizer(j->model);
    tlm_model_config config;
    tlm_model_config_init(&config);
    tlm_model_get_config(j->model, &config);
    if (s->pairs != NULL)
        context = config.max_context;

    /* Optimizer and schedule. */
    const int32_t steps = s->steps;
    int32_t warmup = s->warmup >= 0 ? s->warmup : (steps / 10 < 100 ? steps / 10 : 100);
    if (warmup >= steps)
        return cli_error(CLI_EXIT_USAGE, s->cmd, "--warmup %d must be below --steps %d",
                         (int)warmup, (int)steps);
    const float min_lr = s->min_lr >= 0 ? s->min_lr : s->lr / 10;
    if (min_lr > s->lr)
        return cli_error(CLI_EXIT_USAGE, s->cmd, "--min-lr %g is above --lr %g",
                         (double)min_lr, (double)s->lr);
    tlm_optimizer_params opt;
    tlm_optimizer_params_init(&opt);
    opt.lr = s->lr;
    opt.beta1 = 0.9f;
    opt.beta2 = 0.99f;
    opt.weight_decay = s->weight_decay;
    tlm_schedule_params schedule;
    tlm_schedule_params_init(&schedule);
    schedule.kind = TLM_SCHEDULE_COSINE;
    schedule.lr = s->lr;
    schedule.min_lr = min_lr;
    schedule.warmup_steps = warmup;
    schedule.decay_end_step = steps;
    tlm_trainer_params tp;
    tlm_trainer_params_init(&tp);
    tp.batch_size = s->batch;
    tp.context = context;
    tp.accumulation = s->accum;
    tp.grad_clip = s->grad_clip;
    tp.max_grad_norm = s->max_grad_norm;
    tp.precision = strcmp(s->precision, "bf16") == 0 ? TLM_PRECISION_BF16
                                                     : TLM_PRECISION_FLOAT32;
    tp.seed = s->seed;
    tp.optimizer = &opt;
    tp.schedule = &schedule;
    tp.comm = j->comm;
    tp.bos_id = j->bos_id; /* --pairs: the decoder's start, the padding */
    tp.pad_id = j->pad_id;
    if (tlm_trainer_create(&j->trainer, j->model, j->data, &tp) != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s", tlm_last_error());
    if (s->resume != NULL && tlm_trainer_resume(j->trainer, s->resume) != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s",
                         tlm_trainer_last_error(j->trainer));
    const int64_t first_step = tlm_trainer_step_count(j->trainer);
    if (first_step >= steps)
        return cli_error(CLI_EXIT_RUNTIME, s->cmd,
                         "'%s' is already at step %lld of --steps %d: nothing to do",
                         s->resume, (long long)first_step, (int)steps);
    /* A new run's log is written to a temporary file that replaces the
     * old log at the first checkpoint (the log then matches the
     * checkpoint) and grows in place from there; a resumed run appends. */
    if (s->log != NULL && talk &&
        cli_output_open(&j->log, s->cmd, s->log,
                        s->resume != NULL ? CLI_OUTPUT_APPEND : CLI_OUTPUT_REPLACE) != 0)
        return CLI_EXIT_RUNTIME;
    const int32_t eval_every = s->eval_every > 0 ? s->eval_every
                               : (steps / 10 > 0 ? steps / 10 : 1);
    if (s->resume != NULL && talk)
        fprintf(stderr, "tlm %s: resuming '%s' at step %lld, context %d\n", s->cmd,
                s->resume, (long long)first_step, (int)context);
    if (s->init != NULL && talk)
        fprintf(stderr, "tlm %s: fine-tuning '%s' with its %s tokenizer (%d ids) "
                "from step 0 with a fresh optimizer, context %d\n", s->cmd, s->init,
                tokenizer_kind_name(tlm_tokenizer_kind(tok)), (int)config.vocab_size,
                (int)context);
    if (j->comm != NULL && talk)
        fprintf(stderr, "tlm %s: data-parallel over %d MPI ranks, %d sequences "
                "per rank and step\n", s->cmd, (int)tlm_comm_size(j->comm),
                (int)s->batch);
    char kv_note[48] = "";
    if (config.n_kv_heads != config.n_heads)
        snprintf(kv_note, sizeof kv_note, " over %d kv heads", (int)config.n_kv_heads);
    if (talk && s->pairs == NULL)
    fprintf(stderr,
            "tlm %s: %lld parameters (%d layers, %d heads%s, width %d, context %d), "
            "vocabulary %d, %zu tokens (%lld train, %lld validation)\n",
            s->cmd, (long long)tlm_model_parameter_count(j->model),
            (int)config.n_decoder_layers, (int)config.n_heads, kv_note, (int)config.d_model,
            (int)config.max_context, (int)config.vocab_size, n_ids,
            (long long)tlm_dataset_size(j->data, TLM_SPLIT_TRAIN),
            (long long)tlm_dataset_size(j->data, TLM_SPLIT_VALIDATION));
    if (talk && s->pairs != NULL)
        fprintf(stderr,
                "tlm %s: %lld parameters (encoder-decoder: %d + %d layers, %d heads%s, "
                "width %d, context %d), vocabulary %d, %lld pairs (%lld train, %lld "
                "held out)\n",
                s->cmd, (long long)tlm_model_parameter_count(j->model),
                (int)config.n_encoder_layers, (int)config.n_decoder_layers,
                (int)config.n_heads, kv_note, (int)config.d_model,
                (int)config.max_context, (int)config.vocab_size, (long long)j->n_pairs,
                (long long)j->train_pairs, (long long)(j->n_pairs - j->train_pairs));

    /* The loop. */
    progress bar;
    progress_init(&bar, steps);
    cli_catch_interrupt();
    const double start = cli_now();
    int64_t tokens = 0, step = first_step;
    tlm_step_info info;
    tlm_step_info_init(&info);
    float val = -1.0f;
    int evaluated_last = 0, stopped_by_time = 0;
    int32_t bad_streak = 0;
    int64_t saved_step = s->resume != NULL ? first_step : -1;
    while (step < steps) {
        if (agree(j, cli_interrupted)) { /* here or on another rank */
            cli_interrupted = 1;
            break;
        }
        if (agree(j, s->time_limit > 0 &&
                         cli_now() - start >= (double)s->time_limit)) {
            stopped_by_time = 1;
            break;
        }
        status = tlm_trainer_step(j->trainer, &info);
        if (status != TLM_OK && !info.skipped) {
            progress_break(&bar);
            return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s",
                             tlm_trainer_last_error(j->trainer));
        }
        step = info.step;
        tokens += info.tokens;
        const double elapsed = cli_now() - start;
        const double rate = elapsed > 0 ? (double)tokens / elapsed : 0.0;
        const double per_step =
            step > first_step ? elapsed / (double)(step - first_step) : 0.0;
        double eta = per_step * (double)(steps - step);
        if (s->time_limit > 0 && (double)s->time_limit - elapsed < eta)
            eta = (double)s->time_limit - elapsed;
        double val_loss = -1.0;
        /* A skipped step leaves the step count (and the weights) where the
         * last good step left them: nothing new to evaluate or save. */
        bad_streak = info.skipped ? bad_streak + 1 : 0;
        evaluated_last = !info.skipped && (step % eval_every == 0 || step == steps);
        if (evaluated_last) {
            status = evaluate_and_save(j, &val, step == steps);
            if (status != 0) {
                progress_break(&bar);
                return status;
            }
            val_loss = (double)val;
            saved_step = step;
        }
        if (j->log != NULL) {
            int log_status = log_step(j->log, &info, val_loss, rate, elapsed,
                                      evaluated_last && step == steps ? j->exact_match : -1);
            if (log_status == 0 && evaluated_last)
                log_status = cli_output_publish(j->log);
            if (log_status != 0) {
                progress_break(&bar);
                return log_status;
            }
        }
        if (info.skipped && talk) {
            progress_break(&bar);
            fprintf(stderr, "tlm %s: step %lld skipped (%s)\n", s->cmd,
                    (long long)step + 1,
                    status == TLM_E_NONFINITE
                        ? "non-finite loss or gradient"
                        : "gradient norm above --max-grad-norm");
            if (bad_streak >= s->max_bad_steps) {
                /* The weights are still those of the last good step; the
                 * checkpoint on disk (if any) is that of the last good
                 * evaluation, and it is left as it is. */
                if (saved_step >= 0)
                    return cli_error(CLI_EXIT_RUNTIME, s->cmd,
                                     "stopped after %d consecutive bad steps "
                                     "(after step %lld); the last good checkpoint "
                                     "is '%s' (step %lld)",
                                     (int)bad_streak, (long long)step, s->out,
                                     (long long)saved_step);
                return cli_error(CLI_EXIT_RUNTIME, s->cmd,
                                 "stopped after %d consecutive bad steps (after "
                                 "step %lld); no checkpoint was written",
                                 (int)bad_streak, (long long)step);
            }
        }
        if (talk)
            progress_update(&bar, step, (double)info.loss, val_loss, rate, eta);
    }
    progress_break(&bar);
    /* The last step evaluated, unless the run stopped early (time limit,
     * Ctrl-C): then evaluate now, with the exact-match check of --pairs
     * even when the step just evaluated. */
    if ((!evaluated_last || (s->pairs != NULL && step != steps)) && step > first_step) {
        status = evaluate_and_save(j, &val, 1);
        if (status != 0)
            return status;
        if (j->log != NULL) {
            const double elapsed = cli_now() - start;
            status = log_step(j->log, &info, (double)val, (double)tokens / elapsed, elapsed,
                              j->exact_match);
            if (status != 0)
                return status;
        }
    }
    if (cli_interrupted) {
        if (step == first_step && tlm_trainer_save(j->trainer, s->out) != TLM_OK)
            return cli_error(CLI_EXIT_RUNTIME, s->cmd, "%s",
                             tlm_trainer_last_error(j->trainer));
        if (talk)
            cli_error(0, s->cmd,
                  "interrupted at step %lld; checkpoint saved to '%s' (continue "
                  "with --resume %s)",
                  (long long)step, s->out, s->out);
        return 130;
    }
    if (!s->quiet_summary && talk) {
        printf("trained to step %lld of %d in %.1fs: loss %.4f, validation loss %.4f%s; "
               "saved %s\n",
               (long long)step, (int)steps, cli_now() - start, (double)info.loss,
               (double)val, stopped_by_time ? " (time limit reached)" : "", s->out);
        if (j->exact_match >= 0)
            printf("exact match on %lld held-out pairs (%s): %.2f%% (%lld right)\n",
                   (long long)j->checked, s->beam > 1 ? "beam search" : "greedy",
                   100.0 * j->exact_match, (long long)j->matched);
    }
    return 0;
}

int train_run(const train_settings *s) {
    job j;
    memset(&j, 0, sizeof j);
    j.s = s;
    j.exact_match = -1;
    int status = run_job(&j);
    /* The log is put in place (synced) whatever the run's outcome: it is
     * the record of what happened. After a failed write it is not: the
     * temporary file goes and the old log stays as it was. */
    if (j.log != NULL) {
        const int log_status = cli_output_close(j.log);
        j.log = NULL;
        if (log_status != 0 && (status == 0 || status == 130))
            status = log_status;
    }
    job_free(&j);
    return status;
}

int cmd_train(int argc, char **argv) {
    train_settings s;
    train_settings_init(&s);
    const char *memory_limit = NULL;
    cli_option options[] = {
        {"data", 0, CLI_STRING, &s.data, 0, 0, "FILE", "the text to train a decoder-only model on (this or --pairs is required)", 0},
        {"pairs", 0, CLI_STRING, &s.pairs, 0, 0, "FILE", "SOURCE<TAB>TARGET lines to train an encoder-decoder model on; the last 10% are held out and checked by exact match at the end", 0},
        {"tokenizer", 0, CLI_STRING, &s.tokenizer, 0, 0, "KIND|PATH", "byte, char (default) or bpe:N (N ids) to learn from the text, or a tokenizer file to use as it is (tokenizer.model, tokenizer.bin, GPT-2's files, a tlm tokenizer)", 0},
        {"arch", 0, CLI_STRING, &s.arch, 0, 0, "NAME", "gpt (default: learned positions, LayerNorm, GELU, biases, tied output) or llama (rotary, RMSNorm eps 1e-5, SwiGLU, no biases, untied output); pre-norm; the other options apply on top", 0},
        {"layers", 0, CLI_INT, &s.layers, 1, 256, "N", "decoder layers (default 4; 2 with --pairs)", 0},
        {"encoder-layers", 0, CLI_INT, &s.encoder_layers, 0, 256, "N", "encoder layers: 1..256 with --pairs (default 2); 0 with --data, which trains a decoder-only model", 0},
        {"decoder-layers", 0, CLI_INT, &s.decoder_layers, 1, 256, "N", "decoder layers (same as --layers)", 0},
        {"heads", 0, CLI_INT, &s.heads, 1, 256, "N", "attention heads (default 4)", 0},
        {"kv-heads", 0, CLI_INT, &s.kv_heads, 1, 256, "N", "key/value heads, dividing --heads: grouped-query attention, 1 = multi-query (default: --heads)", 0},
        {"dim", 0, CLI_INT, &s.dim, 1, 65536, "N", "model width (default 128)", 0},
        {"ffn", 0, CLI_INT, &s.ffn, 0, 1 << 20, "N", "feedforward width (of the gated unit with --activation swiglu); 0 = 4 x dim (default)", 0},
        {"position", 0, CLI_STRING, &s.position, 0, 0, "KIND", "learned, sinusoidal or rotary positions (default: --arch's)", 0},
        {"norm", 0, CLI_STRING, &s.norm, 0, 0, "KIND", "layer (LayerNorm) or rms (RMSNorm) (default: --arch's)", 0},
        {"norm-placement", 0, CLI_STRING, &s.norm_placement, 0, 0, "WHERE", "pre (x + f(norm(x)), a final norm) or post (norm(x + f(x))) (default: pre)", 0},
        {"activation", 0, CLI_STRING, &s.activation, 0, 0, "KIND", "feedforward: gelu (tanh form), gelu_exact, relu, or swiglu (a gated unit, 3 matrices) (default: --arch's)", 0},
        {"no-bias", 0, CLI_FLAG, &s.no_bias, 0, 0, NULL, "no biases in the projections and norms (--arch llama has none)", 0},
        {"untied", 0, CLI_FLAG, &s.untied, 0, 0, NULL, "an output projection of its own, not the token embedding (--arch llama's)", 0},
        {"context", 0, CLI_INT, &s.context, 1, 1 << 16, "N", "positions per sequence (default 64)", 0},
        {"batch", 0, CLI_INT, &s.batch, 1, 1 << 16, "N", "sequences per micro-batch (default 12)", 0},
        {"steps", 0, CLI_INT, &s.steps, 1, 2000000000, "N", "optimisation steps in all (default 1000)", 0},
        {"lr", 0, CLI_FLOAT, &s.lr, 0, 10, "X", "peak learning rate, above 0 (default 1e-3)", 0},
        {"warmup", 0, CLI_INT, &s.warmup, 0, 2000000000, "N", "warm-up steps (default min(100, steps/10))", 0},
        {"min-lr", 0, CLI_FLOAT, &s.min_lr, 0, 10, "X", "final learning rate of the cosine decay (default lr/10)", 0},
        {"weight-decay", 0, CLI_FLOAT, &s.weight_decay, 0, 10, "X", "AdamW weight decay (default 0.1)", 0},
        {"dropout", 0, CLI_FLOAT, &s.dropout, 0, 0.99, "X", "dropout probability (default 0)", 0},
        {"grad-clip", 0, CLI_FLOAT, &s.grad_clip, 0, 1e9, "X", "clip the gradient norm to X; 0 = off (default 1)", 0},
        {"max-grad-norm", 0, CLI_FLOAT, &s.max_grad_norm, 0, 1e30, "X", "skip a step whose gradient norm is above X; 0 = off (default)", 0},
        {"precision", 0, CLI_STRING, &s.precision, 0, 0, "P", "float32 (default) or bf16: the training step's matrix products with bf16 inputs and float32 sums (mixed precision; weights and optimizer stay float32)", 0},
        {"max-bad-steps", 0, CLI_INT, &s.max_bad_steps, 1, 2000000000, "N", "stop after N consecutive skipped steps (default 10)", 0},
        {"accum", 0, CLI_INT, &s.accum, 1, 65536, "N", "micro-batches per step (default 1)", 0},
        {"eval-every", 0, CLI_INT, &s.eval_every, 1, 2000000000, "N", "evaluate and save every N steps (default steps/10)", 0},
        {"eval-batches", 0, CLI_INT, &s.eval_batches, 1, 65536, "N", "validation batches per evaluation (default 8)", 0},
        {"threads", 0, CLI_INT, &s.threads, 0, 1024, "N", "compute threads; 0 = one per core (default)", 0},
        {"seed", 0, CLI_U64, &s.seed, 0, 0, "N", "seed of initialisation, batches and dropout (default 1)", 0},
        {"out", 'o', CLI_STRING, &s.out, 0, 0, "FILE", "checkpoint to write (default model.tlm)", 0},
        {"resume", 0, CLI_STRING, &s.resume, 0, 0, "FILE", "continue a checkpoint of tlm train (its optimizer state and step)", 0},
        {"init", 0, CLI_STRING, &s.init, 0, 0, "MODEL", "fine-tune: start from this .tlm model's weights and tokenizer with a fresh optimizer at step 0 ('tlm import' converts other formats)", 0},
        {"log", 0, CLI_STRING, &s.log, 0, 0, "FILE", "JSON lines log, one object per step", 0},
        {"beam", 0, CLI_INT, &s.beam, 1, 256, "N", "--pairs: beam width of the exact-match check; 1 = greedy (default)", 0},
        {"length-penalty", 0, CLI_FLOAT, &s.length_penalty, 0, 10, "X", "--pairs with --beam: GNMT length penalty alpha; 0 = none (default 0.6)", 0},
        {"time-limit", 0, CLI_FLOAT, &s.time_limit, 0, 1e9, "SECONDS", "stop (and save) after this long; above 0 (default: no limit)", 0},
        {"memory-limit", 0, CLI_STRING, &memory_limit, 0, 0, "BYTES", "refuse a model or batch needing more memory than this (K, M, G, T: powers of 1024; 'none'; default: the memory available to the process)", 0},
    };
    cli_command cmd = {"train", "--data FILE | --pairs FILE [options]",
                       "Train a decoder-only model of a text file: the tokenizer is learned\n"
                       "from the text, 90% trains and 10% validates, checkpoints (with the\n"
                       "tokenizer inside) are written at every evaluation and at the end.\n"
                       "--pairs FILE trains an encoder-decoder model on SOURCE<TAB>TARGET\n"
                       "lines instead (tokenizer learned from both sides, last 10% held out,\n"
                       "exact match of their greedy or beam-searched targets at the end).\n"
                       "Ctrl-C saves a checkpoint that --resume continues. --init MODEL\n"
                       "fine-tunes an existing model instead: its weights, architecture and\n"
                       "tokenizer as they are, a fresh optimizer from step 0; --context may\n"
                       "shorten the training sequences (at most the model's max_context).",
                       options, (int)(sizeof options / sizeof options[0]), 0, 0, NULL};
    const char *positional[1];
    int n_positional = 0;
    int status = cli_parse(&cmd, argc, argv, positional, &n_positional);
    if (status != 0)
        return status < 0 ? 0 : status;
    status = cli_set_memory_limit("train", memory_limit);
    if (status != 0)
        return status;
    if (s.data == NULL && s.pairs == NULL)
        return cli_error(CLI_EXIT_USAGE, "train",
                         "missing --data FILE or --pairs FILE (see 'tlm train --help')");
    if (s.data != NULL && s.pairs != NULL)
        return cli_error(CLI_EXIT_USAGE, "train",
                         "--data and --pairs exclude each other: --data trains a "
                         "decoder-only model on a text, --pairs an encoder-decoder "
                         "model on SOURCE<TAB>TARGET lines");
    /* Zeros that would mean something else than they say: a learning
     * rate of 0 trains nothing, and a time limit of 0 would be no limit. */
    if (s.lr == 0.0f)
        return cli_error(CLI_EXIT_USAGE, "train",
                         "--lr: '0' trains nothing; expected a learning rate above 0 "
                         "and at most 10, such as 3e-4");
    if (cli_find_option(&cmd, "time-limit")->seen && s.time_limit == 0.0f)
        return cli_error(CLI_EXIT_USAGE, "train",
                         "--time-limit: '0' is not a time limit; expected seconds above "
                         "0, such as 600 (leave the option out for no limit)");
    if (s.pairs == NULL && s.encoder_layers > 0)
        return cli_error(CLI_EXIT_USAGE, "train",
                         "--encoder-layers %d: a text file (--data) trains a "
                         "decoder-only model; encoder-decoder models train on "
                         "SOURCE<TAB>TARGET lines (--pairs FILE)",
                         (int)s.encoder_layers);
    if (s.pairs != NULL && cli_find_option(&cmd, "encoder-layers")->seen &&
        s.encoder_layers == 0)
        return cli_error(CLI_EXIT_USAGE, "train",
                         "--encoder-layers 0: --pairs trains an encoder-decoder "
                         "model; expected 1..256 encoder layers");
    static const char *const pairs_only[] = {"beam", "length-penalty"};
    for (size_t i = 0; i < 2; i++)
        if (s.pairs == NULL && cli_find_option(&cmd, pairs_only[i])->seen)
            return cli_error(CLI_EXIT_USAGE, "train",
                             "--%s: only --pairs checks exact match (by beam "
                             "search); a text file (--data) has no targets", pairs_only[i]);
    if (s.pairs != NULL) {
        /* A small encoder-decoder unless told otherwise. */
        if (!cli_find_option(&cmd, "encoder-layers")->seen)
            s.encoder_layers = 2;
        if (!cli_find_option(&cmd, "layers")->seen &&
            !cli_find_option(&cmd, "decoder-layers")->seen)
            s.layers = 2;
    }
    if (s.init != NULL && s.resume != NULL)
        return cli_error(CLI_EXIT_USAGE, "train",
                         "--init and --resume exclude each other: --init starts "
                         "a new run from a model's weights (fresh optimizer, step "
                         "0), --resume continues a checkpoint of tlm train");
    static const struct {
        const char *name;
        unsigned bit;
    } architecture[] = {
        {"tokenizer", TRAIN_GIVEN_TOKENIZER}, {"layers", TRAIN_GIVEN_LAYERS},
        {"decoder-layers", TRAIN_GIVEN_LAYERS}, {"heads", TRAIN_GIVEN_HEADS},
        {"kv-heads", TRAIN_GIVEN_KV_HEADS}, {"arch", TRAIN_GIVEN_ARCH},
        {"dim", TRAIN_GIVEN_DIM}, {"ffn", TRAIN_GIVEN_FFN},
        {"context", TRAIN_GIVEN_CONTEXT}, {"dropout", TRAIN_GIVEN_DROPOUT},
        {"encoder-layers", TRAIN_GIVEN_ENCODER_LAYERS},
        {"position", TRAIN_GIVEN_POSITION}, {"norm", TRAIN_GIVEN_NORM},
        {"norm-placement", TRAIN_GIVEN_NORM_PLACEMENT},
        {"activation", TRAIN_GIVEN_ACTIVATION}, {"no-bias", TRAIN_GIVEN_NO_BIAS},
        {"untied", TRAIN_GIVEN_UNTIED},
    };
    for (size_t i = 0; i < sizeof architecture / sizeof architecture[0]; i++)
        if (cli_find_option(&cmd, architecture[i].name)->seen)
            s.given |= architecture[i].bit;
    if (cli_find_option(&cmd, "layers")->seen && cli_find_option(&cmd, "decoder-layers")->seen &&
        s.layers != s.decoder_layers)
        return cli_error(CLI_EXIT_USAGE, "train",
                         "--layers %d and --decoder-layers %d disagree",
                         (int)s.layers, (int)s.decoder_layers);
    tlm_tokenizer_params tp;
    if (!tokenizer_is_path(s.tokenizer) && parse_tokenizer(s.tokenizer, &tp) != 0)
        return cli_error(CLI_EXIT_USAGE, "train",
                         "--tokenizer expects byte, char, bpe:N (N in 259..1048576) "
                         "or a tokenizer file, not '%s'",
                         s.tokenizer);
    if (!arch_known(s.arch))
        return cli_error(CLI_EXIT_USAGE, "train",
                         "--arch expects gpt or llama, not '%s'", s.arch);
    status = check_named_values(&s);
    if (status != 0)
        return status;
    if (strcmp(s.precision, "float32") != 0 && strcmp(s.precision, "bf16") != 0)
        return cli_error(CLI_EXIT_USAGE, "train",
                         "--precision expects float32 or bf16, not '%s'",
                         s.precision);
    if (s.init == NULL && s.resume == NULL && s.kv_heads != 0 &&
        s.heads % s.kv_heads != 0)
        return cli_error(CLI_EXIT_USAGE, "train",
                         "--kv-heads %d must divide --heads %d (grouped-query "
                         "attention)", (int)s.kv_heads, (int)s.heads);
    /* --resume may name -o: a run continues its checkpoint and replaces
     * it with the next one (atomically, after reading it whole). */
    const cli_path inputs[4] = {{s.data, "--data"}, {s.pairs, "--pairs"},
                                {tokenizer_is_path(s.tokenizer) ? s.tokenizer : NULL,
                                 "--tokenizer"},
                                {s.init, "--init"}};
    const cli_path outputs[2] = {{s.out, "-o"}, {s.log, "--log"}};
    const cli_path resumed = {s.resume, "--resume"};
    if (cli_check_outputs("train", inputs, 4, outputs, 2) != 0 ||
        cli_check_outputs("train", &resumed, 1, &outputs[1], 1) != 0)
        return CLI_EXIT_USAGE;
    return train_run(&s);
}
