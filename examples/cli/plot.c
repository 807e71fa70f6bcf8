/*
 * tlm plot: the loss curves of a training log (JSON lines) as an SVG file
 * written by hand: training and validation loss against the step, axes
 * with ticks, labels, a legend and a title.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "input_file.h"
#include "numbers.h"
#include "options.h"
#include "output_file.h"
#include "paths.h"

typedef struct series {
    double *x, *y;
    size_t n, capacity;
} series;

static int series_add(series *s, double x, double y) {
    if (s->n == s->capacity) {
        const size_t capacity = s->capacity ? s->capacity * 2 : 256;
        double *nx = realloc(s->x, capacity * sizeof *nx);
        if (nx == NULL)
            return -1;
        s->x = nx;
        double *ny = realloc(s->y, capacity * sizeof *ny);
        if (ny == NULL)
            return -1;
        s->y = ny;
        s->capacity = capacity;
    }
    s->x[s->n] = x;
    s->y[s->n++] = y;
    return 0;
}

/* The number after "key": in a JSON object line; NAN for null or absent. */
static double json_number(const char *line, const char *key) {
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    const char *p = strstr(line, quoted);
    if (p == NULL)
        return (double)NAN;
    p += strlen(quoted);
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != ':')
        return (double)NAN;
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    double v = 0;
    return cli_number_json(p, &v) > 0 ? v : (double)NAN;
}

/* A "nice" tick spacing (1, 2 or 5 times a power of ten) for a range. */
static double nice_step(double range, int ticks) {
    const double raw = range / ticks;
    const double power = pow(10.0, floor(log10(raw)));
    const double f = raw / power;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * power;
}

enum { WIDTH = 800, HEIGHT = 500, LEFT = 80, RIGHT = 30, TOP = 60, BOTTOM = 70 };

typedef struct frame {
    double x0, x1, y0, y1;
} frame;

static double px(const frame *f, double x) {
    return LEFT + (x - f->x0) / (f->x1 - f->x0) * (WIDTH - LEFT - RIGHT);
}

static double py(const frame *f, double y) {
    return HEIGHT - BOTTOM - (y - f->y0) / (f->y1 - f->y0) * (HEIGHT - TOP - BOTTOM);
}

static void polyline(FILE *out, const frame *f, const series *s, const char *id,
                     const char *color, int dots) {
    if (s->n == 0)
        return;
    fprintf(out, "<polyline id=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
            id, color);
    for (size_t i = 0; i < s->n; i++)
        fprintf(out, "%s%.1f,%.1f", i ? " " : "", px(f, s->x[i]), py(f, s->y[i]));
    fputs("\"/>\n", out);
    if (dots || s->n == 1)
        for (size_t i = 0; i < s->n; i++)
            fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                    px(f, s->x[i]), py(f, s->y[i]), color);
}

static void write_svg(FILE *out, const series *train, const series *val, const char *title) {
    frame f = {(double)INFINITY, -(double)INFINITY, (double)INFINITY, -(double)INFINITY};
    const series *all[2] = {train, val};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < all[k]->n; i++) {
            f.x0 = fmin(f.x0, all[k]->x[i]);
            f.x1 = fmax(f.x1, all[k]->x[i]);
            f.y0 = fmin(f.y0, all[k]->y[i]);
            f.y1 = fmax(f.y1, all[k]->y[i]);
        }
    if (f.x1 <= f.x0)
        f.x1 = f.x0 + 1;
    if (f.y1 <= f.y0) {
        f.y0 -= 0.5;
        f.y1 += 0.5;
    }
    const double xs = nice_step(f.x1 - f.x0, 8), ys = nice_step(f.y1 - f.y0, 6);
    f.x0 = floor(f.x0 / xs) * xs;
    f.x1 = ceil(f.x1 / xs) * xs;
    f.y0 = floor(f.y0 / ys) * ys;
    f.y1 = ceil(f.y1 / ys) * ys;

    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            WIDTH, HEIGHT, WIDTH, HEIGHT);
    fprintf(out, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", WIDTH, HEIGHT);
    fputs("<text id=\"title\" x=\"400\" y=\"30\" text-anchor=\"middle\" font-size=\"16\">", out);
    cli_xml_text(out, title, strlen(title), 0);
    fputs("</text>\n", out);
    /* Grid, ticks and numbers. */
    fputs("<g id=\"x-axis\" stroke=\"#ccc\">\n", out);
    for (double x = f.x0; x <= f.x1 + xs * 1e-9; x += xs) {
        fprintf(out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", px(&f, x), TOP,
                px(&f, x), HEIGHT - BOTTOM + 5);
        fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" stroke=\"none\" "
                     "fill=\"black\">%g</text>\n",
                px(&f, x), HEIGHT - BOTTOM + 20, x);
    }
    fputs("</g>\n<g id=\"y-axis\" stroke=\"#ccc\">\n", out);
    for (double y = f.y0; y <= f.y1 + ys * 1e-9; y += ys) {
        fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", LEFT - 5,
                py(&f, y), WIDTH - RIGHT, py(&f, y));
        fprintf(out, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" stroke=\"none\" "
                     "fill=\"black\">%g</text>\n",
                LEFT - 8, py(&f, y) + 4, fabs(y) < ys * 1e-9 ? 0.0 : y);
    }
    fputs("</g>\n", out);
    fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
                 "stroke=\"black\"/>\n",
            LEFT, TOP, WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    fprintf(out, "<text id=\"x-label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\" "
                 "font-size=\"14\">step</text>\n",
            (LEFT + WIDTH - RIGHT) / 2, HEIGHT - 25);
    fprintf(out, "<text id=\"y-label\" x=\"20\" y=\"%d\" text-anchor=\"middle\" font-size=\"14\" "
                 "transform=\"rotate(-90 20 %d)\">loss (nats/token)</text>\n",
            (TOP + HEIGHT - BOTTOM) / 2, (TOP + HEIGHT - BOTTOM) / 2);
    polyline(out, &f, train, "train-loss", "#1f77b4", 0);
    polyline(out, &f, val, "validation-loss", "#ff7f0e", 1);
    /* Legend, top right inside the plot. */
    const int lx = WIDTH - RIGHT - 170, ly = TOP + 10;
    fprintf(out, "<g id=\"legend\">\n<rect x=\"%d\" y=\"%d\" width=\"160\" height=\"%d\" "
                 "fill=\"white\" stroke=\"#999\"/>\n",
            lx, ly, val->n > 0 ? 48 : 28);
    fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#1f77b4\" "
                 "stroke-width=\"2\"/><text x=\"%d\" y=\"%d\">train loss</text>\n",
            lx + 10, ly + 14, lx + 40, ly + 14, lx + 48, ly + 18);
    if (val->n > 0)
        fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ff7f0e\" "
                     "stroke-width=\"2\"/><text x=\"%d\" y=\"%d\">validation loss</text>\n",
                lx + 10, ly + 34, lx + 40, ly + 34, lx + 48, ly + 38);
    fputs("</g>\n</svg>\n", out);
}

int plot_write(const char *cmd, const char *log_path, const char *svg_path,
               const char *title) {
    char *text = NULL;
    size_t length = 0;
    if (cli_read_file(cmd, log_path, CLI_INPUT_LOG, &text, &length) != 0)
        return CLI_EXIT_RUNTIME;
    series train = {0}, val = {0};
    int status = 0;
    size_t line_number = 0;
    /* The lines are read as C strings: a NUL byte would end the log
     * there, silently dropping what follows. */
    const char *nul = memchr(text, '\0', length);
    if (nul != NULL) {
        size_t nul_line = 1;
        for (const char *c = text; c < nul; c++)
            nul_line += *c == '\n';
        status = cli_error(CLI_EXIT_RUNTIME, cmd,
                           "'%s' line %zu holds a NUL byte: not a training log", log_path,
                           nul_line);
    }
    for (char *line = text; line != NULL && *line != '\0' && status == 0;) {
        char *next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        line_number++;
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p != '\0') {
            const double step = json_number(p, "step");
            if (*p != '{' || !isfinite(step)) {
                status = cli_error(CLI_EXIT_RUNTIME, cmd,
                                   "'%s' line %zu is not a training log entry "
                                   "(a JSON object with \"step\")",
                                   log_path, line_number);
                break;
            }
            const double loss = json_number(p, "loss");
            const double vl = json_number(p, "val_loss");
            if ((isfinite(loss) && series_add(&train, step, loss) != 0) ||
                (isfinite(vl) && series_add(&val, step, vl) != 0))
                status = cli_error(CLI_EXIT_RUNTIME, cmd, "out of memory");
        }
        line = next;
    }
    if (status == 0 && train.n == 0 && val.n == 0)
        status = cli_error(CLI_EXIT_RUNTIME, cmd, "'%s' holds no loss values", log_path);
    cli_output *out = NULL;
    if (status == 0 && cli_output_open(&out, cmd, svg_path, CLI_OUTPUT_REPLACE) != 0)
        status = CLI_EXIT_RUNTIME;
    if (status == 0) {
        write_svg(cli_output_stream(out), &train, &val, title);
        status = cli_output_close(out);
    }
    free(train.x);
    free(train.y);
    free(val.x);
    free(val.y);
    free(text);
    return status;
}

int cmd_plot(int argc, char **argv) {
    const char *out = "loss.svg", *title = "Training loss";
    cli_option options[] = {
        {"output", 'o', CLI_STRING, &out, 0, 0, "FILE", "the SVG file to write (default loss.svg)", 0},
        {"title", 0, CLI_TEXT, &title, 0, 0, "TEXT", "the plot's title (default \"Training loss\")", 0},
    };
    cli_command cmd = {"plot", "LOG.jsonl -o loss.svg",
                       "Plot the training and validation loss of a tlm train --log file as an\n"
                       "SVG picture (open it in a browser).",
                       options, 2, 1, 1, "LOG.jsonl"};
    const char *positional[1];
    int n_positional = 0;
    int status = cli_parse(&cmd, argc, argv, positional, &n_positional);
    if (status != 0)
        return status < 0 ? 0 : status;
    const cli_path input = {positional[0], "LOG.jsonl"}, output = {out, "-o"};
    if (cli_check_outputs("plot", &input, 1, &output, 1) != 0)
        return CLI_EXIT_USAGE;
    status = plot_write("plot", positional[0], out, title);
    if (status == 0)
        printf("wrote %s\n", out);
    return status;
}
