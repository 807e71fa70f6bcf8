/*
 * Suite "faults": saves survive a process killed at any moment. A child
 * process saves a model of a few MB over and over (each save marks one
 * parameter with its generation number) and the parent SIGKILLs it after a
 * random delay (seeded), 100 times. After each kill:
 *  - the target loads (read and mapped) and its parameters are exactly
 *    those of one complete save: the base model with the marker of a
 *    generation the child reached;
 *  - the directory holds the target and nothing but temporary files
 *    `<target>.tmp-<pid>-<n>` of killed saves, never a half-written file
 *    under the target's name;
 *  - stale temporaries never replace the target, and a later save
 *    succeeds beside them (even when one has the very name that save would
 *    pick first) and leaves its own temporary nowhere;
 *  - a later successful save of the same path, by the parent or the next
 *    child, removes the temporaries the killed children left (their pids
 *    are dead), and never those of a live process (the parent's own).
 * The delays are drawn from a range measured from one save, so that most
 * kills land inside a save; the test asserts on the files, never on time.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "temp_dir.h"
#include "tlm.h"

#define KILLS 100

static char dir[512];
static char target[600];

static tlm_model *base_model(tlm_context *ctx) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 512;
    c.d_model = 128;
    c.n_heads = 4;
    c.n_decoder_layers = 4;
    c.max_context = 64;
    c.init_seed = 2024;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    return m;
}

/* The marker: element 0 of parameter 0 holds the generation number. */
static void set_marker(tlm_model *m, float generation) {
    const char *name;
    tlm_tensor *t;
    assert_int_equal(tlm_model_parameter(m, 0, &name, &t), TLM_OK);
    tlm_tensor_data_f32(t)[0] = generation;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64: the kill delays, reproducible from the seed. */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The child: saves generation after generation until killed. Tells the
 * parent through `ready` when the first save starts. */
static void child_saves(tlm_model *m, int ready, float first_generation) {
    char byte = 1;
    if (write(ready, &byte, 1) != 1)
        _exit(3);
    for (float g = first_generation;; g += 1.0f) {
        set_marker(m, g);
        if (tlm_model_save(m, target) != TLM_OK)
            _exit(2);
    }
}

/* Checks the target against the base model: every parameter equal, the
 * marker a generation in [0, max_generation]. Returns the marker. */
static float check_target(tlm_model *base, int memory_map, float max_generation) {
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_load_params lp;
    tlm_model_load_params_init(&lp);
    lp.memory_map = memory_map;
    tlm_model *m = NULL;
    if (tlm_model_load(&m, ctx, target, &lp) != TLM_OK)
        fail_msg("the target does not load after a kill: %s",
                 tlm_context_last_error(ctx));
    int32_t n = tlm_model_parameter_tensor_count(base);
    assert_int_equal(tlm_model_parameter_tensor_count(m), n);
    float marker = -1;
    for (int32_t i = 0; i < n; i++) {
        const char *na, *nb;
        tlm_tensor *a, *b;
        tlm_model_parameter(base, i, &na, &a);
        tlm_model_parameter(m, i, &nb, &b);
        assert_string_equal(na, nb);
        int64_t count = tlm_tensor_numel(a);
        assert_int_equal(tlm_tensor_numel(b), count);
        const float *va = tlm_tensor_data_f32(a);
        const float *vb = tlm_tensor_data_f32(b);
        int64_t start = 0;
        if (i == 0) {
            marker = vb[0];
            start = 1;
        }
        assert_memory_equal(va + start, vb + start,
                            (size_t)(count - start) * sizeof(float));
    }
    assert_true(marker >= 0.0f && marker <= max_generation);
    assert_true(marker == (float)(int64_t)marker);
    tlm_model_free(m);
    tlm_context_free(ctx);
    return marker;
}

/* Entries of the directory: the target must be there; every other entry
 * must be one of its temporaries. Returns how many temporaries. */
static int count_temporaries(void) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int temporaries = 0, has_target = 0;
    const char *base = strrchr(target, '/') + 1;
    size_t base_length = strlen(base);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (strcmp(e->d_name, base) == 0)
            has_target = 1;
        else if (strncmp(e->d_name, base, base_length) == 0 &&
                 strncmp(e->d_name + base_length, ".tmp-", 5) == 0)
            temporaries++;
        else
            fail_msg("unexpected file '%s' beside the target", e->d_name);
    }
    closedir(d);
    assert_true(has_target);
    return temporaries;
}

static void remove_temporaries(void) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    char path[1200];
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".tmp-") != NULL) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            remove(path);
        }
    }
    closedir(d);
}

static void killed_saves_never_damage_the_target(void **state) {
    (void)state;
    assert_int_equal(temp_dir_create(dir, sizeof dir), 0);
    snprintf(target, sizeof target, "%s/checkpoint.tlm", dir);
    tlm_context_params cp;
    tlm_context_params_init(&cp);
    cp.n_threads = 1; /* no worker threads across fork() */
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, &cp), TLM_OK);
    tlm_model *m = base_model(ctx);
    tlm_model *base = base_model(ctx);

    /* Generation 0, saved by the parent; how long a save takes. */
    set_marker(m, 0.0f);
    double start = now_seconds();
    assert_int_equal(tlm_model_save(m, target), TLM_OK);
    double save_time = now_seconds() - start;
    printf("model: %lld parameters; one save took %.1f ms\n",
           (long long)tlm_model_parameter_count(m), save_time * 1e3);

    uint64_t rng = 20240611;
    float generation = 1.0f; /* the next generation a child starts at */
    int kills_mid_save = 0, completed_saves = 0, cleaned_by_parent = 0;
    for (int kill_round = 0; kill_round < KILLS; kill_round++) {
        int pipe_fds[2];
        assert_int_equal(pipe(pipe_fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pipe_fds[0]);
            child_saves(m, pipe_fds[1], generation);
        }
        close(pipe_fds[1]);
        char byte;
        assert_int_equal(read(pipe_fds[0], &byte, 1), 1);
        close(pipe_fds[0]);
        /* Kill after 0 .. 3 save times. */
        double delay = save_time * 3.0 *
                       (double)(next_random(&rng) >> 11) * 0x1.0p-53;
        struct timespec ts = {(time_t)delay,
                              (long)((delay - (double)(time_t)delay) * 1e9)};
        nanosleep(&ts, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int wstatus = 0;
        assert_int_equal(waitpid(pid, &wstatus, 0), pid);
        if (!(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL))
            fail_msg("the saving child ended on its own (status %d)", wstatus);

        int temporaries = count_temporaries();
        if (temporaries > 0)
            kills_mid_save++;
        /* At most a generation the child can have reached; the child
         * never saves more than a million times in a round. */
        float marker = check_target(base, kill_round % 2, generation + 1e6f);
        if (marker >= generation)
            completed_saves += (int)(marker - generation) + 1;
        generation = (marker >= generation ? marker : generation) + 1.0f;
        /* In some rounds the parent saves at once: its save removes the
         * temporary of the child just killed (and of earlier ones). In
         * the others the stale temporaries stay: the next child's saves
         * must cope with them, and remove them once one completes. */
        if (temporaries > 0 && kill_round % 3 == 2) {
            set_marker(m, generation);
            assert_int_equal(tlm_model_save(m, target), TLM_OK);
            assert_int_equal(count_temporaries(), 0);
            assert_true(check_target(base, 0, generation) == generation);
            generation += 1.0f;
            cleaned_by_parent++;
        }
    }
    printf("%d kills, %d of them inside a save (a temporary left); %d saves "
           "completed by the children; %d saves by the parent removed the "
           "temporaries of killed children\n",
           KILLS, kills_mid_save, completed_saves, cleaned_by_parent);
    assert_true(kills_mid_save > 0);
    assert_true(cleaned_by_parent > 0);

    /* A later save beside temporaries of live processes (this one, one
     * of them with the name its next save tries first, and its parent)
     * and whatever the last child left: it succeeds, the target is the
     * new complete file, the dead child's temporary is gone and the live
     * ones stay as they were. */
    char stale[700];
    for (int i = 0; i < 5; i++) {
        snprintf(stale, sizeof stale, "%s.tmp-%lld-%d", target,
                 (long long)(i < 4 ? getpid() : getppid()), i);
        assert_int_equal(write_whole_file(stale, "stale", 5), 0);
    }
    set_marker(m, generation);
    assert_int_equal(tlm_model_save(m, target), TLM_OK);
    assert_true(check_target(base, 0, generation) == generation);
    assert_int_equal(count_temporaries(), 5);
    char contents[8];
    for (int i = 0; i < 5; i++) {
        snprintf(stale, sizeof stale, "%s.tmp-%lld-%d", target,
                 (long long)(i < 4 ? getpid() : getppid()), i);
        assert_int_equal(read_whole_file(stale, contents, sizeof contents), 5);
    }
    remove_temporaries();
    assert_int_equal(count_temporaries(), 0);

    tlm_model_free(base);
    tlm_model_free(m);
    tlm_context_free(ctx);
    temp_dir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(killed_saves_never_damage_the_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
