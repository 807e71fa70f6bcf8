#define _POSIX_C_SOURCE 200809L

#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include "options.h"

void progress_init(progress *p, int64_t total) {
    p->tty = isatty(fileno(stderr));
    p->line_open = 0;
    p->total = total;
    p->every = total / 20 > 0 ? total / 20 : 1;
}

void progress_update(progress *p, int64_t step, double loss, double val_loss,
                     double tokens_per_s, double eta_seconds) {
    const int evaluated = val_loss >= 0;
    if (!p->tty && !evaluated && step % p->every != 0 && step != p->total)
        return;
    char eta[32], val[32];
    cli_format_duration(eta, sizeof eta, eta_seconds);
    if (evaluated)
        snprintf(val, sizeof val, "%.4f", val_loss);
    else
        snprintf(val, sizeof val, "-");
    if (p->tty) {
        /* \r back to the start, \033[K clears what a longer line left. */
        fprintf(stderr, "\rstep %lld/%lld  loss %.4f  val %s  %.0f tok/s  ETA %s\033[K",
                (long long)step, (long long)p->total, loss, val, tokens_per_s, eta);
        p->line_open = 1;
        if (evaluated) { /* keep evaluations on screen */
            fputc('\n', stderr);
            p->line_open = 0;
        }
    } else {
        fprintf(stderr, "step %lld/%lld  loss %.4f  val %s  %.0f tok/s  ETA %s\n",
                (long long)step, (long long)p->total, loss, val, tokens_per_s, eta);
    }
    fflush(stderr);
}

void progress_break(progress *p) {
    if (p->line_open) {
        fputc('\n', stderr);
        p->line_open = 0;
    }
}
