/*
 * The tlm command-line program: one subcommand per job a user has.
 *
 *   tlm demo      the README's main job
 *   tlm version   library version and CPU features
 */
#include <stdio.h>
#include <string.h>

#include <tlm.h>

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

static int command_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("tlm %s (library %s)\n", TLM_VERSION_STRING, tlm_version_string());
    print_cpu_features(stdout);
    return 0;
}

/* The main job. Until the model and trainer exist it checks that the
 * library was built and works on this machine. */
static int command_demo(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("tlm %s\n", tlm_version_string());
    if (tlm_version_number() != TLM_VERSION_NUMBER) {
        fprintf(stderr,
                "tlm: header version %s does not match library version %s\n",
                TLM_VERSION_STRING, tlm_version_string());
        return 1;
    }
    print_cpu_features(stdout);
    tlm_context *ctx = NULL;
    int status = tlm_context_create(&ctx, NULL);
    if (status != TLM_OK) {
        fprintf(stderr, "tlm: %s: %s\n", tlm_strerror(status),
                tlm_last_error());
        return 1;
    }
    printf("compute threads: %d\n", tlm_context_thread_count(ctx));
    tlm_context_free(ctx);
    printf("the build works: library, header and CPU detection agree\n");
    return 0;
}

static const command commands[] = {
    {"demo", "run the demonstration (the README's main job)", command_demo},
    {"version", "print the version and the CPU features tlm will use",
     command_version},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(FILE *out) {
    fputs("usage: tlm COMMAND [OPTIONS]\n\ncommands:\n", out);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\nrun 'tlm COMMAND --help' for a command's options\n", out);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0)
        return command_version(0, NULL);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        for (int a = 2; a < argc; a++) {
            if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
                printf("usage: tlm %s\n\n%s\n", commands[i].name,
                       commands[i].summary);
                return 0;
            }
            fprintf(stderr, "tlm %s: unknown option '%s' (see 'tlm %s --help')\n",
                    commands[i].name, argv[a], commands[i].name);
            return 2;
        }
        return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "tlm: unknown command '%s' (see 'tlm --help')\n", argv[1]);
    return 2;
}
