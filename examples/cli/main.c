/*
 * The tlm command-line program: one subcommand per job a user has, each
 * in its own file, all on the public API of tlm only.
 *
 *   tlm train      train a model of a text file
 *   tlm generate   sample text from a model
 *   tlm eval       loss and perplexity of a model on a text
 *   tlm info       what a model file holds
 *   tlm export     a model to Hugging Face, llama2.c, llm.c or safetensors
 *   tlm import     Hugging Face, llama2.c, llm.c or safetensors files to a model file
 *   tlm plot       the loss curves of a training log, as SVG
 *   tlm attention  attention heat maps for a prompt, as SVG
 *   tlm quantize   a copy of a model with int8, bf16 or float32 weights
 *   tlm demo       the README's main job
 *   tlm version    library version and CPU features
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <tlm.h>

#include "commands.h"
#include "options.h"

typedef struct command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} command;

static void print_cpu_features(FILE *out) {
    uint32_t features = tlm_cpu_features();
    fputs("cpu features:", out);
    if (features == 0)
        fputs(" none detected (portable scalar code only)", out);
    for (int bit = 0; bit < 32; bit++) {
        const char *name = tlm_cpu_feature_name(features & (1u << bit));
        if (name != NULL)
            fprintf(out, " %s", name);
    }
    fputc('\n', out);
}

static int cmd_version(int argc, char **argv) {
    (void)argv;
    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
            printf("usage: tlm version\n\nPrint the version, whether the library was built with MPI, and the CPU\nfeatures tlm will use.\n");
            return 0;
        }
        return cli_error(CLI_EXIT_USAGE, "version", "unexpected argument '%s'", argv[1]);
    }
    printf("tlm %s (library %s)\n", TLM_VERSION_STRING, tlm_version_string());
    /* MPI is opt-in at build time: say which kind of library this is, so
     * that "does mpirun -np N tlm train work here?" has an answer. */
    if (tlm_comm_available())
        printf("mpi: yes (data-parallel tlm train under mpirun)\n");
    else
        printf("mpi: no (build with -Dmpi=enabled for data-parallel training)\n");
    print_cpu_features(stdout);
    return 0;
}

static const command commands[] = {
    {"train", "train a model of a text file", cmd_train},
    {"generate", "generate text from a model", cmd_generate},
    {"eval", "loss and perplexity of a model on a text file", cmd_eval},
    {"info", "configuration, size, tokenizer and memory of a model", cmd_info},
    {"export", "write a model as Hugging Face, llama2.c, llm.c or safetensors", cmd_export},
    {"import", "make a model file from Hugging Face, llama2.c, llm.c or safetensors files", cmd_import},
    {"plot", "draw a training log's loss curves as SVG", cmd_plot},
    {"attention", "draw a layer's attention for a prompt as SVG", cmd_attention},
    {"quantize", "write a copy of a model with int8, bf16 or float32 weights", cmd_quantize},
    {"demo", "train on the fortunes corpus and sample (the README's main job)", cmd_demo},
    {"version", "print the version and the CPU features tlm will use", cmd_version},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(FILE *out) {
    fputs("usage: tlm COMMAND [OPTIONS]\n\ncommands:\n", out);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\nrun 'tlm COMMAND --help' for a command's options\n", out);
}

/* What a command printed on the standard output (generated text, `info`,
 * `version`, "wrote ...") must have arrived: a failed write (a full disk,
 * a closed pipe, > /dev/full) turns a successful exit status into 1. */
static int finish_stdout(const char *cmd, int status) {
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        const int error = errno;
        cli_error(CLI_EXIT_RUNTIME, cmd, "writing the standard output failed%s%s",
                  error != 0 ? ": " : "", error != 0 ? strerror(error) : "");
        return status == 0 ? CLI_EXIT_RUNTIME : status;
    }
    return status;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return finish_stdout("help", 0);
    }
    if (strcmp(argv[1], "--version") == 0)
        return finish_stdout("version", cmd_version(1, argv + 1));
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return finish_stdout(argv[1], commands[i].run(argc - 1, argv + 1));
    return cli_error(CLI_EXIT_USAGE, NULL, "unknown command '%s' (see 'tlm --help')", argv[1]);
}
