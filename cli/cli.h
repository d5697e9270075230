/* cli.h — shared pieces of the raddino command: exit codes, errors, model resolution. */
#ifndef RADDINO_CLI_H
#define RADDINO_CLI_H

#include "raddino_encoder.h"
#include "raddino_hub.h"
#include "raddino_store.h"

#include <stdbool.h>
#include <stdio.h>

enum { EXIT_OK = 0, EXIT_INPUT_FAILED = 1, EXIT_USAGE = 2 };

/* Options every encoder command takes. */
typedef struct {
    const char *model;      /* --model, else $RADDINO_MODEL, else the Hugging Face cache */
    const char *repo;       /* --repo ORG/NAME in the cache (default microsoft/rad-dino) */
    const char *revision;   /* --revision (default main) */
    const char *cache_dir;  /* --cache-dir (default $HF_HUB_CACHE, $HF_HOME/hub, ...) */
    const char *weights;    /* --weights FILE (a weights file other than the default) */
    int threads;            /* --threads, 0 = $RADDINO_THREADS or all cores */
    uint64_t max_pixels;    /* --max-pixels */
    int precision;          /* --precision fp32|bf16 (raddino_precision) */
    int window;             /* --window: raddino_window_mode */
    double window_center, window_width;
    /* The model the collection recorded (cli_read_model_origin), used when no model option
     * and no $RADDINO_MODEL names one; NULL: none. recorded_db names the database. */
    const raddino_store_model_origin *recorded;
    const char *recorded_db;
} cli_model_options;

/* Where the model folder came from. */
typedef enum {
    CLI_MODEL_FROM_FLAG,
    CLI_MODEL_FROM_ENV,
    CLI_MODEL_FROM_CACHE,
    CLI_MODEL_FROM_DB       /* the place the collection recorded */
} cli_model_source;

typedef struct {
    cli_model_source source;
    char dir[RADDINO_PATH_MAX];
    raddino_hub_model hub;  /* source == CLI_MODEL_FROM_CACHE */
    char weights_sha256[65];    /* set by cli_open_encoder_at when it checked the weights */
} cli_model_location;

/* Option codes above any letter, so that commands keep their letters free. */
enum { CLI_OPT_REPO = 0x200, CLI_OPT_REVISION, CLI_OPT_CACHE_DIR, CLI_OPT_WINDOW };

/* What to do about a refusal, in the command's words (library messages name no option). */
#define CLI_HINT_QUERY_MODEL "embed queries with the collection's model (--model)"
#define CLI_HINT_OTHER_MODEL "pass --reembed to replace every vector, or use another --db"

/* Prints "raddino: MESSAGE" on stderr (MESSAGE already names the file). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_status_error(const raddino_status *st);

/* Handles the option if it is one of cli_model_options' (returns true). */
bool cli_model_option(cli_model_options *o, int opt, const char *arg, int *exit_code);
#define CLI_MODEL_LONG_OPTIONS                                                           \
    {"model", required_argument, NULL, 'm'}, {"weights", required_argument, NULL, 'W'},  \
        {"threads", required_argument, NULL, 't'},                                       \
        {"max-pixels", required_argument, NULL, 'P'},                                    \
        {"precision", required_argument, NULL, 'R'},                                     \
        {"repo", required_argument, NULL, CLI_OPT_REPO},                                 \
        {"revision", required_argument, NULL, CLI_OPT_REVISION},                         \
        {"cache-dir", required_argument, NULL, CLI_OPT_CACHE_DIR},                       \
        {"window", required_argument, NULL, CLI_OPT_WINDOW}
#define CLI_HUB_HELP                                                                     \
    "  --repo ORG/NAME    Hugging Face repository (default microsoft/rad-dino)\n"          \
    "  --revision REV     branch, tag or commit (default main)\n"                          \
    "  --cache-dir DIR    Hugging Face hub cache (default $HF_HUB_CACHE, else\n"           \
    "                     $HF_HOME/hub, else ~/.cache/huggingface/hub)\n"
#define CLI_MODEL_HELP                                                                   \
    "  --model DIR        model folder (config.json, preprocessor_config.json and\n"       \
    "                     model.safetensors or backbone_compatible.safetensors);\n"        \
    "                     default $RADDINO_MODEL, else the model in the Hugging Face\n"   \
    "                     cache ('raddino model fetch' puts it there)\n"                   \
    CLI_HUB_HELP                                                                         \
    "  --weights FILE     use this weights file instead of the folder's\n"                 \
    "  --threads N        threads (default $RADDINO_THREADS, else all cores)\n"            \
    "  --max-pixels N     refuse images with more pixels (default 200000000)\n"             \
    "  --precision P      fp32 (default, exact) or bf16 (faster matrix products on CPUs\n"   \
    "                     with AVX512_BF16; CLS within cosine 0.99995 of fp32)\n"          \
    "  --window auto|C,W  DICOM grey levels: the file's window (first Window Center/\n"   \
    "                     Width, else its VOI LUT), or centre C and width W (DICOM\n"     \
    "                     linear function); default: min-max of the image\n"

/* Finds the model folder: --model, else --repo/--revision/--cache-dir in the cache when given,
 * else $RADDINO_MODEL, else the place the collection recorded (o->recorded: its folder, else
 * its repository and commit in the environment's hub cache), else the Hugging Face cache. Prints the error and returns false on failure,
 * with *exit_code set (EXIT_INPUT_FAILED when no model is found, EXIT_USAGE only for options
 * that contradict each other). */
bool cli_locate_model(const cli_model_options *o, cli_model_location *loc, int *exit_code);

/* Opens the encoder named by the options (loc may be NULL); prints the error and returns NULL
 * on failure, with *exit_code set. A model found where the collection recorded it must have
 * the recorded weights (sha256), else it is refused with a message saying what changed. */
raddino_encoder *cli_open_encoder_at(const cli_model_options *o, cli_model_location *loc,
                                     int *exit_code);
raddino_encoder *cli_open_encoder(const cli_model_options *o, int *exit_code);

/* The image loading options the model options describe (pixel cap, DICOM window). */
raddino_load_options cli_load_options(const cli_model_options *o);

/* Parses a positive integer option value; prints an error naming the option on failure. */
bool cli_parse_u64(const char *option, const char *arg, uint64_t max, uint64_t *out);

/* Writes a JSON string literal (quotes and escapes included). Bytes that are not valid UTF-8
 * become the lone surrogates \udc80..\udcff (Python's "surrogateescape"), so the output is
 * always valid JSON and the bytes can be recovered. */
void cli_json_string(FILE *f, const char *s);

/* An old spelling of an option, kept for one release: warns on stderr ("raddino COMMAND:
 * warning: OLD is deprecated, use NEW; ..."). */
void cli_deprecated(const char *command, const char *old_spelling, const char *new_spelling);

/* --json and --csv both given: prints the usage error and returns EXIT_USAGE. */
int cli_json_csv_conflict(const char *command);

/* Hex SHA-256 of a file (64 chars + NUL). */
raddino_status cli_file_sha256(const char *path, char hex[65]);

/* Reads the model origin recorded in the database at db_path into *origin when there is one
 * (true); false when the database does not exist, has none, or cannot be read (no message:
 * the command then looks for the model as it would without a database). */
bool cli_read_model_origin(const char *db_path, raddino_store_model_origin *origin);

/* Fills *origin for the model at loc whose weights hash to sha256 (the indexer records it). */
void cli_model_origin_from(const cli_model_options *o, const cli_model_location *loc,
                           const char *sha256, raddino_store_model_origin *origin);

/* The database a command uses: --db, else $RADDINO_DB, else raddino.db in the current folder. */
const char *cli_db_path(const char *option);
#define CLI_DB_HELP                                                                      \
    "  --db FILE          the collection's database (default $RADDINO_DB, else\n"           \
    "                     raddino.db in the current folder)\n"

/* Writes one CSV field (quoted when it holds a comma, quote, CR or LF; quotes doubled). */
void cli_csv_field(FILE *f, const char *s);

int cmd_embed(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_merge(int argc, char **argv);
/* Hidden: `raddino index` runs it in a child to decode one file alone (index_guard.c). */
int cmd_decode_check(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_index_info(int argc, char **argv);
int cmd_cluster(int argc, char **argv);
int cmd_clusters(int argc, char **argv);
int cmd_dedup(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_version(int argc, char **argv);   /* raddino --version */

/* Merges shard databases into main_db (raddino_store_merge) and prints the outcome: errors
 * with the command's hints, and unless quiet a summary (one JSON object with json). command is
 * recorded as the run. Returns the exit status; *result (may be NULL) receives the counts. */
int cli_merge_with(const char *main_db, const char *const *shards, int n, const char *command,
                   bool quiet, bool json, raddino_store_merge_result *result);
/* The same, without a summary: `index --mpi` prints its own. */
int cli_merge(const char *main_db, const char *const *shards, int n, const char *command,
              raddino_store_merge_result *result);

#endif
