/* cli.h — shared pieces of the raddino command: exit codes, errors, model resolution. */
#ifndef RADDINO_CLI_H
#define RADDINO_CLI_H

#include "raddino_encoder.h"

#include <stdbool.h>
#include <stdio.h>

enum { EXIT_OK = 0, EXIT_INPUT_FAILED = 1, EXIT_USAGE = 2 };

/* Options every encoder command takes. */
typedef struct {
    const char *model;      /* --model, else $RADDINO_MODEL */
    const char *weights;    /* --weights FILE (a weights file other than the default) */
    int threads;            /* --threads, 0 = $RADDINO_THREADS or all cores */
    uint64_t max_pixels;    /* --max-pixels */
    int window;             /* --window: raddino_window_mode */
    double window_center, window_width;
} cli_model_options;

/* Prints "raddino: MESSAGE" on stderr (MESSAGE already names the file). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_status_error(const raddino_status *st);

/* getopt value of --window (no short form). */
#define CLI_OPT_WINDOW 0x101

/* Handles the option if it is one of cli_model_options' (returns true). */
bool cli_model_option(cli_model_options *o, int opt, const char *arg, int *exit_code);
#define CLI_MODEL_LONG_OPTIONS                                                           \
    {"model", required_argument, NULL, 'm'}, {"weights", required_argument, NULL, 'W'},  \
        {"threads", required_argument, NULL, 't'},                                       \
        {"max-pixels", required_argument, NULL, 'P'},                                    \
        {"window", required_argument, NULL, CLI_OPT_WINDOW}
#define CLI_MODEL_HELP                                                                   \
    "  --model DIR        model folder (config.json, preprocessor_config.json and\n"       \
    "                     model.safetensors or backbone_compatible.safetensors);\n"        \
    "                     default $RADDINO_MODEL\n"                                        \
    "  --weights FILE     use this weights file instead of the folder's\n"                 \
    "  --threads N        threads (default $RADDINO_THREADS, else all cores)\n"            \
    "  --max-pixels N     refuse images with more pixels (default 200000000)\n"        \
    "  --window auto|C,W  DICOM grey levels: the file's window (first Window Center/\n"   \
    "                     Width, else its VOI LUT), or centre C and width W (DICOM\n"     \
    "                     linear function); default: min-max of the image\n"

/* Opens the encoder named by the options; prints the error and returns NULL on failure, with
 * *exit_code set (usage error when no model was named at all). */
raddino_encoder *cli_open_encoder(const cli_model_options *o, int *exit_code);

/* The image loading options the model options describe (pixel cap, DICOM window). */
raddino_load_options cli_load_options(const cli_model_options *o);

/* Parses a positive integer option value; prints an error naming the option on failure. */
bool cli_parse_u64(const char *option, const char *arg, uint64_t max, uint64_t *out);

/* Writes a JSON string literal (quotes and escapes included). */
void cli_json_string(FILE *f, const char *s);

/* Hex SHA-256 of a file (64 chars + NUL). */
raddino_status cli_file_sha256(const char *path, char hex[65]);

int cmd_embed(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_model(int argc, char **argv);

#endif
