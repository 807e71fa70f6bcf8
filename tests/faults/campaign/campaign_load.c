/*
 * The library half of the reliability campaign (scripts/reliability-campaign.py,
 * docs/reliability.md "The campaign"): reads file paths, one per line, on
 * standard input and hands each to one loader of the library in a child
 * process of its own, so that a crash, a sanitizer report, a leak or a
 * hang is caught and attributed to the one file that caused it. Prints one
 * JSON line per file on standard output:
 *
 *   {"tool":"lib","loader":"model","file":"...","outcome":"refused",
 *    "status":"TLM_E_FORMAT","named":true,"message":"..."}
 *
 * outcome: "loaded" (and then used: a model generates a few tokens, a
 * tokenizer encodes and decodes, a resumed trainer takes a step),
 * "refused" (a status and a message; "named" says whether the message
 * names the file), "crash" (a signal), "timeout", "sanitizer" (the child
 * exited with the sanitizer exit code the script sets, 86) or "exit"
 * (any other exit status). The child's standard error (a sanitizer
 * report) is copied into "stderr" for every outcome but loaded and
 * refused.
 *
 * Loaders: model (tlm_model_load, read), model-mmap (memory-mapped),
 * import (tlm_model_import, the format detected), tokenizer
 * (tlm_tokenizer_load), tokenizer-import (tlm_tokenizer_import), resume
 * (tlm_trainer_resume of a trainer made from the valid checkpoint given
 * as the second argument), hf-config (tlm_model_import of the directory
 * given as the second argument with params->config_path the damaged file).
 * A helper mode, `prepare DIR`, writes the tokenizer formats the fuzz
 * corpus lacks (GPT-2's encoder.json + vocab.bpe, a SentencePiece
 * tokenizer.model) from the corpus's tiktoken and tokenizer.bin files.
 *
 * Only the public API of tlm.h is used.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tlm.h>

/* Exit statuses of a child: the outcome travels in the result pipe, the
 * exit status only says the child got that far. */
#define CHILD_DONE 0
#define SANITIZER_EXIT 86 /* ASAN_OPTIONS=exitcode=86, set by the script */
#define CHILD_SECONDS 30

static const char *loader;
static const char *extra; /* resume: the valid checkpoint; hf-config: the directory */

/* The result a child sends its parent: "L" (loaded) or "R<status>\t<message>". */
static char result[2048];

static void set_refused(int status, const char *message) {
    snprintf(result, sizeof result, "R%d\t%s", status, message ? message : "");
}

/* Generate a few tokens: a model that loads must also run. */
static int use_model(tlm_context *ctx, tlm_model *model) {
    tlm_tokenizer *tok = tlm_model_tokenizer(model);
    tlm_session *session = NULL;
    int status = tlm_session_create(&session, model, NULL);
    if (status != TLM_OK)
        return status;
    if (tok != NULL) {
        tlm_sampler *sampler = NULL;
        status = tlm_sampler_create(&sampler, ctx, NULL);
        if (status == TLM_OK) {
            tlm_generate_params gen;
            tlm_generate_params_init(&gen);
            gen.max_tokens = 4;
            int32_t n = 0;
            status = tlm_generate(session, sampler, tok, "the ", 4, &gen, &n);
            tlm_sampler_free(sampler);
        }
    } else {
        tlm_model_config config;
        tlm_model_config_init(&config);
        status = tlm_model_get_config(model, &config);
        if (status == TLM_OK) {
            /* logits [2, vocab]: room for an encoder-only model's two rows */
            float *logits = malloc(2 * (size_t)config.vocab_size * sizeof *logits);
            int32_t ids[2] = {0, config.vocab_size - 1};
            if (logits == NULL)
                status = TLM_E_NOMEM;
            else if (config.n_encoder_layers > 0 && config.n_decoder_layers == 0)
                status = tlm_session_encode(session, ids, 2, NULL, logits);
            else if (config.n_encoder_layers > 0)
                status = tlm_session_encode(session, ids, 2, NULL, NULL);
            if (status == TLM_OK && config.n_decoder_layers > 0)
                status = tlm_session_decode(session, ids, 2, logits, 1);
            free(logits);
        }
    }
    tlm_session_free(session);
    return status;
}

static int use_tokenizer(tlm_tokenizer *tok) {
    int32_t ids[64];
    size_t n = 0, length = 0;
    char text[256];
    int status = tlm_tokenizer_encode(tok, "hello, world", 12, ids, 64, &n);
    if (status == TLM_OK)
        status = tlm_tokenizer_decode(tok, ids, n, text, sizeof text, &length);
    return status;
}

/* The loader, in the child. Leaves `result` set; frees everything. */
static void load(tlm_context *ctx, const char *path) {
    int status = TLM_OK;
    if (strcmp(loader, "model") == 0 || strcmp(loader, "model-mmap") == 0 ||
        strcmp(loader, "import") == 0 || strcmp(loader, "hf-config") == 0) {
        tlm_model *model = NULL;
        if (strcmp(loader, "import") == 0) {
            status = tlm_model_import(&model, ctx, path, NULL);
        } else if (strcmp(loader, "hf-config") == 0) {
            tlm_model_import_params params;
            tlm_model_import_params_init(&params);
            params.format = TLM_MODEL_FORMAT_HF;
            params.config_path = path;
            status = tlm_model_import(&model, ctx, extra, &params);
        } else {
            tlm_model_load_params params;
            tlm_model_load_params_init(&params);
            params.memory_map = strcmp(loader, "model-mmap") == 0;
            status = tlm_model_load(&model, ctx, path, &params);
        }
        if (status != TLM_OK) {
            set_refused(status, tlm_last_error());
            return;
        }
        status = use_model(ctx, model);
        if (status != TLM_OK)
            snprintf(result, sizeof result, "U%d\t%s", status, tlm_last_error());
        else
            snprintf(result, sizeof result, "L");
        tlm_model_free(model);
    } else if (strcmp(loader, "tokenizer") == 0 ||
               strcmp(loader, "tokenizer-import") == 0) {
        tlm_tokenizer *tok = NULL;
        status = strcmp(loader, "tokenizer") == 0
                     ? tlm_tokenizer_load(&tok, ctx, path)
                     : tlm_tokenizer_import(&tok, ctx, path);
        if (status != TLM_OK) {
            set_refused(status, tlm_last_error());
            return;
        }
        status = use_tokenizer(tok);
        if (status != TLM_OK)
            snprintf(result, sizeof result, "U%d\t%s", status, tlm_last_error());
        else
            snprintf(result, sizeof result, "L");
        tlm_tokenizer_free(tok);
    } else if (strcmp(loader, "resume") == 0) {
        tlm_model *model = NULL;
        tlm_dataset *data = NULL;
        tlm_trainer *trainer = NULL;
        status = tlm_model_load(&model, ctx, extra, NULL);
        tlm_model_config config;
        tlm_model_config_init(&config);
        if (status == TLM_OK)
            status = tlm_model_get_config(model, &config);
        if (status == TLM_OK) {
            int32_t ids[512];
            for (int i = 0; i < 512; i++)
                ids[i] = (int32_t)((i * 7) % config.vocab_size);
            status = tlm_dataset_from_ids(&data, ctx, ids, 512, NULL);
        }
        if (status == TLM_OK) {
            tlm_trainer_params params;
            tlm_trainer_params_init(&params);
            params.batch_size = 2;
            params.context = config.max_context < 8 ? config.max_context : 8;
            status = tlm_trainer_create(&trainer, model, data, &params);
        }
        if (status != TLM_OK) {
            /* The valid checkpoint itself failed: not the damaged file's doing. */
            snprintf(result, sizeof result, "E%d\t%s", status, tlm_last_error());
        } else {
            status = tlm_trainer_resume(trainer, path);
            if (status != TLM_OK) {
                /* The trainer's message, else the thread's: on main a
                 * damaged config or tensors section leaves the trainer's
                 * message empty (the model's context records it). */
                const char *message = tlm_trainer_last_error(trainer);
                set_refused(status, message[0] != '\0' ? message : tlm_last_error());
                if (message[0] == '\0')
                    strncat(result, " [tlm_trainer_last_error was empty]",
                            sizeof result - strlen(result) - 1);
            } else {
                tlm_step_info info;
                tlm_step_info_init(&info);
                status = tlm_trainer_step(trainer, &info);
                if (status != TLM_OK)
                    snprintf(result, sizeof result, "U%d\t%s", status,
                             tlm_trainer_last_error(trainer));
                else
                    snprintf(result, sizeof result, "L");
            }
        }
        tlm_trainer_free(trainer);
        tlm_dataset_free(data);
        tlm_model_free(model);
    } else {
        snprintf(result, sizeof result, "E0\tunknown loader");
    }
}

static void put_json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n && s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            printf("\\n");
        else if (c < 0x20 || c >= 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Runs one file in a child; prints its JSON line. */
static void run_one(const char *path, const char *stderr_path) {
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(fds[0]);
        int err = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (err >= 0) {
            dup2(err, 2);
            close(err);
        }
        alarm(CHILD_SECONDS);
        /* The plain build: a damaged size field must not take the machine
         * (ASan reserves address space, so its build uses malloc_limit_mb). */
        const char *limit_mb = getenv("CAMPAIGN_AS_LIMIT_MB");
        if (limit_mb != NULL && atol(limit_mb) > 0) {
            struct rlimit rl;
            rl.rlim_cur = rl.rlim_max = (rlim_t)atol(limit_mb) << 20;
            setrlimit(RLIMIT_AS, &rl);
        }
        tlm_context_params cp;
        tlm_context_params_init(&cp);
        cp.n_threads = 1;
        tlm_context *ctx = NULL;
        if (tlm_context_create(&ctx, &cp) != TLM_OK)
            _exit(1);
        result[0] = '\0';
        load(ctx, path);
        tlm_context_free(ctx);
        size_t n = strlen(result);
        if (write(fds[1], result, n) != (ssize_t)n)
            _exit(1);
        close(fds[1]);
        exit(CHILD_DONE); /* exit, not _exit: LeakSanitizer runs at exit */
    }
    close(fds[1]);
    char got[sizeof result + 1];
    size_t have = 0;
    for (;;) {
        ssize_t r = read(fds[0], got + have, sizeof got - 1 - have);
        if (r > 0) {
            have += (size_t)r;
            if (have == sizeof got - 1)
                break;
        } else if (r == 0 || errno != EINTR) {
            break;
        }
    }
    got[have] = '\0';
    close(fds[0]);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    const char *outcome = "exit";
    int detail = 0;
    if (WIFSIGNALED(wstatus)) {
        detail = WTERMSIG(wstatus);
        outcome = detail == SIGALRM ? "timeout" : "crash";
    } else if (WEXITSTATUS(wstatus) == SANITIZER_EXIT) {
        outcome = "sanitizer";
        detail = SANITIZER_EXIT;
    } else if (WEXITSTATUS(wstatus) != CHILD_DONE) {
        detail = WEXITSTATUS(wstatus);
    } else if (got[0] == 'L') {
        outcome = "loaded";
    } else if (got[0] == 'R') {
        outcome = "refused";
    } else if (got[0] == 'U') {
        outcome = "failed-after-load";
    } else {
        outcome = "setup-error";
    }
    printf("{\"tool\":\"lib\",\"loader\":\"%s\",\"file\":", loader);
    put_json_string(path, strlen(path));
    printf(",\"outcome\":\"%s\"", outcome);
    if (got[0] == 'R' || got[0] == 'U' || got[0] == 'E') {
        int status = atoi(got + 1);
        const char *tab = strchr(got, '\t');
        const char *message = tab ? tab + 1 : "";
        printf(",\"status\":\"%s\",\"named\":%s,\"message\":",
               tlm_status_name(status),
               strstr(message, base_name(path)) ? "true" : "false");
        put_json_string(message, strlen(message));
    }
    if (strcmp(outcome, "loaded") != 0 && strcmp(outcome, "refused") != 0) {
        printf(",\"signal_or_exit\":%d,\"stderr\":", detail);
        char text[1500];
        size_t n = 0;
        FILE *f = fopen(stderr_path, "r");
        if (f) {
            n = fread(text, 1, sizeof text - 1, f);
            fclose(f);
        }
        text[n] = '\0';
        put_json_string(text, n);
    }
    printf("}\n");
    fflush(stdout);
}

/* prepare DIR: GPT-2 and SentencePiece tokenizer files made by the
 * library from the corpus's tiktoken and llama2.c tokenizer files. */
static int prepare(const char *dir, const char *tiktoken, const char *sp_bin) {
    tlm_tokenizer *tok = NULL;
    char path[4096];
    int status = tlm_tokenizer_import(&tok, NULL, tiktoken);
    if (status == TLM_OK) {
        snprintf(path, sizeof path, "%s/gpt2", dir);
        status = tlm_tokenizer_export(tok, path);
        tlm_tokenizer_free(tok);
        tok = NULL;
    }
    if (status == TLM_OK)
        status = tlm_tokenizer_import(&tok, NULL, sp_bin);
    if (status == TLM_OK) {
        snprintf(path, sizeof path, "%s/tokenizer.model", dir);
        status = tlm_tokenizer_export_as(tok, path, TLM_TOKENIZER_FORMAT_SENTENCEPIECE);
        tlm_tokenizer_free(tok);
    }
    if (status != TLM_OK)
        fprintf(stderr, "campaign_load prepare: %s\n", tlm_last_error());
    return status == TLM_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc >= 5 && strcmp(argv[1], "prepare") == 0)
        return prepare(argv[2], argv[3], argv[4]);
    if (argc < 3) {
        fprintf(stderr,
                "usage: %s LOADER SCRATCH_DIR [VALID_FILE_OR_DIR] < paths\n"
                "       %s prepare DIR TIKTOKEN_FILE LLAMA2C_TOKENIZER\n",
                argv[0], argv[0]);
        return 2;
    }
    loader = argv[1];
    extra = argc > 3 ? argv[3] : NULL;
    char stderr_path[4096];
    snprintf(stderr_path, sizeof stderr_path, "%s/child-stderr-%ld.txt", argv[2],
             (long)getpid());
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] != '\0')
            run_one(line, stderr_path);
    }
    remove(stderr_path);
    return 0;
}
