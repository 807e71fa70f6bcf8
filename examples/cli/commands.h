/*
 * The subcommands of the tlm program (one file each) and the pieces the
 * demo reuses: training from settings, the loss plot, sampling a text.
 */
#ifndef TLM_CLI_COMMANDS_H
#define TLM_CLI_COMMANDS_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <tlm.h>

/* Entry points: argv[0] is the subcommand's name; return the exit status. */
int cmd_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_attention(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_demo(int argc, char **argv);

/* How `tlm info` and `tlm quantize` name an enum tlm_weight_format:
 * "float32", "bf16", "int8 (groups of 32, float32 scales)". */
const char *weight_format_text(int32_t format);

/* Everything `tlm train` can be told. */
typedef struct train_settings {
    const char *data;       /* text file (this or pairs is required) */
    const char *pairs;      /* or a file of SOURCE<TAB>TARGET lines: an
                               encoder-decoder model (docs/seq2seq.md) */
    const char *text;       /* or the text itself (the demo), with text_length */
    size_t text_length;
    const char *tokenizer;  /* "byte", "char", "bpe:N" or a tokenizer file */
    const char *arch;       /* "gpt" (default) or "llama" */
    /* Architecture on top of --arch, named as in docs/model.md; NULL: the
     * preset's. */
    const char *position, *norm, *norm_placement, *activation;
    int no_bias, untied;    /* 1: bias 0, tied_output 0 */
    int32_t beam;           /* pairs: beam width of the exact-match check */
    float length_penalty;   /* pairs: its GNMT alpha */
    const char *precision;  /* "float32" (default) or "bf16": the products */
    int32_t layers, encoder_layers, decoder_layers;
    int32_t heads, kv_heads, dim, ffn, context; /* kv_heads 0: = heads */
    int32_t batch, steps, warmup, accum, eval_every, eval_batches, threads;
    int32_t max_bad_steps; /* stop after this many consecutive skipped steps */
    float lr, min_lr, weight_decay, dropout, grad_clip, max_grad_norm, time_limit;
    uint64_t seed;
    const char *out;    /* default model.tlm */
    const char *resume; /* or NULL */
    const char *init;   /* start from this model's weights (fine-tuning), or NULL */
    unsigned given;     /* TRAIN_GIVEN_* bits: the architecture options set */
    const char *log;    /* JSONL or NULL */
    const char *cmd;    /* name in error messages: "train" or "demo" */
    int quiet_summary;  /* 1: no closing summary line (the demo prints its own) */
} train_settings;

/* Which architecture options the command line set (--init refuses those
 * that disagree with the model it starts from). */
enum {
    TRAIN_GIVEN_TOKENIZER = 1u << 0,
    TRAIN_GIVEN_LAYERS = 1u << 1,
    TRAIN_GIVEN_HEADS = 1u << 2,
    TRAIN_GIVEN_DIM = 1u << 3,
    TRAIN_GIVEN_FFN = 1u << 4,
    TRAIN_GIVEN_CONTEXT = 1u << 5,
    TRAIN_GIVEN_DROPOUT = 1u << 6,
    TRAIN_GIVEN_KV_HEADS = 1u << 7,
    TRAIN_GIVEN_ARCH = 1u << 8,
    TRAIN_GIVEN_POSITION = 1u << 9,
    TRAIN_GIVEN_NORM = 1u << 10,
    TRAIN_GIVEN_NORM_PLACEMENT = 1u << 11,
    TRAIN_GIVEN_ACTIVATION = 1u << 12,
    TRAIN_GIVEN_NO_BIAS = 1u << 13,
    TRAIN_GIVEN_UNTIED = 1u << 14,
    TRAIN_GIVEN_ENCODER_LAYERS = 1u << 15
};

/* The defaults of `tlm train`. */
void train_settings_init(train_settings *s);

/* Runs a training job. Returns an exit status (0, 1, 130 after Ctrl-C). */
int train_run(const train_settings *s);

/* Writes the SVG loss plot of a JSONL training log. Returns an exit status
 * (errors printed under `cmd`). */
int plot_write(const char *cmd, const char *log_path, const char *svg_path,
               const char *title);

/* Streams a completion of `prompt` from a loaded model to stdout. */
int generate_stream(const char *cmd, tlm_model *model, const char *prompt,
                    int32_t tokens, const tlm_sampler_params *sampling,
                    const char *stop);

/* Set by the SIGINT handler: finish the current step, save, stop. */
extern volatile sig_atomic_t cli_interrupted;

/* Installs the SIGINT handler that sets cli_interrupted. */
void cli_catch_interrupt(void);

#endif
