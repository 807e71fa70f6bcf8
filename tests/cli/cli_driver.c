/*
 * Runs the suite's shell script: cli_driver SCRIPT TLM_PROGRAM [ARG]. A C program
 * rather than the script itself, so that `meson test --setup valgrind`
 * checks this driver (clean) instead of reporting the shell's own leaks;
 * the script and the tlm program it runs are not traced.
 */
#define _POSIX_C_SOURCE 200809L

#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s SCRIPT TLM_PROGRAM [ARG]\n", argv[0]);
        return 2;
    }
    /* the script, the program and an optional argument (a fixtures path) */
    char *args[] = {"sh", argv[1], argv[2], argc == 4 ? argv[3] : NULL, NULL};
    pid_t pid;
    if (posix_spawn(&pid, "/bin/sh", NULL, NULL, args, environ) != 0) {
        perror("cli_driver: posix_spawn /bin/sh");
        return 1;
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        perror("cli_driver: waitpid");
        return 1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
