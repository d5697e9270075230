/* cmd_stats.c — raddino stats: what a database holds (images by status, model, dim, last run). */
#include "cli.h"
#include "raddino_store.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char stats_usage[] =
    "usage: raddino stats [--db FILE] [--json]\n"
    "\n"
    "Summarises a database: images by status (and the commonest failure reasons), DICOM files\n"
    "by modality, the model and dimension of its vectors, the embeddings generation, and the\n"
    "last run.\n"
    "\n"
    "options:\n"
    CLI_DB_HELP
    "  --json             one JSON object: images, ok, failed, vectors, dim, models, dicom,\n"
    "                     modalities ({\"CR\": N, ...}), model_origin, ...\n"
    "  -h, --help         this help\n";

#define MAX_REASONS 10
/* Modalities listed (most frequent first); the rest are counted together. */
#define MAX_MODALITIES 32

typedef struct {
    const char *reasons[MAX_REASONS];
    int64_t counts[MAX_REASONS];
    char text[MAX_REASONS][RADDINO_MESSAGE_MAX];
    int n;
} reason_list;

static void collect_reason(void *user, const char *reason, int64_t count)
{
    reason_list *r = user;
    if (r->n == MAX_REASONS) return;
    snprintf(r->text[r->n], sizeof r->text[r->n], "%s", reason);
    r->reasons[r->n] = r->text[r->n];
    r->counts[r->n++] = count;
}

typedef struct {
    char names[MAX_MODALITIES][40];
    int64_t counts[MAX_MODALITIES];
    int n;
    int64_t others;         /* images of the modalities past MAX_MODALITIES */
} modality_list;

static void collect_modality(void *user, const char *modality, int64_t count)
{
    modality_list *m = user;
    if (m->n == MAX_MODALITIES) {
        m->others += count;
        return;
    }
    snprintf(m->names[m->n], sizeof m->names[m->n], "%s", modality);
    m->counts[m->n++] = count;
}

static void format_time(double t, char *out, size_t cap)
{
    time_t s = (time_t)t;
    struct tm tm;
    if (t <= 0 || !localtime_r(&s, &tm)) snprintf(out, cap, "-");
    else strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

static void print_counts_json(const raddino_store_counts *c)
{
    printf("\"added\": %lld, \"updated\": %lld, \"reused\": %lld, \"unchanged\": %lld, "
           "\"failed\": %lld, \"removed\": %lld",
           (long long)c->added, (long long)c->updated, (long long)c->reused,
           (long long)c->unchanged, (long long)c->failed, (long long)c->removed);
}

/* "key": "value" or "key": null for an empty field of the model origin. */
static void json_field(const char *key, const char *value)
{
    printf("\"%s\": ", key);
    if (value[0]) cli_json_string(stdout, value);
    else fputs("null", stdout);
}

static void print_json(const char *path, const raddino_store_stats *s, const reason_list *r,
                       const modality_list *m, const raddino_store_model_origin *o)
{
    fputs("{\"database\": ", stdout);
    cli_json_string(stdout, path);
    printf(", \"schema\": %d, \"generation\": %lld, \"images\": %lld, \"ok\": %lld, "
           "\"failed\": %lld, \"vectors\": %lld, \"dim\": %d, \"models\": [",
           s->schema, (long long)s->generation, (long long)s->images, (long long)s->ok,
           (long long)s->failed, (long long)s->vectors, s->dim);
    if (s->model_id) {
        printf("{\"id\": %lld, \"weights_sha256\": \"%s\", \"repository\": ",
               (long long)s->model_id, s->weights_sha256);
        if (s->repository[0]) cli_json_string(stdout, s->repository);
        else fputs("null", stdout);
        fputs(", \"revision\": ", stdout);
        if (s->revision[0]) cli_json_string(stdout, s->revision);
        else fputs("null", stdout);
        printf(", \"dim\": %d, \"vectors\": %lld}", s->dim, (long long)s->vectors);
    }
    fputs("], \"model_origin\": ", stdout);
    if (o) {
        fputc('{', stdout);
        json_field("folder", o->folder);
        fputs(", ", stdout);
        json_field("weights", o->weights);
        fputs(", ", stdout);
        json_field("repository", o->repository);
        fputs(", ", stdout);
        json_field("revision", o->revision);
        fputs(", ", stdout);
        json_field("commit", o->commit);
        fputs(", ", stdout);
        json_field("cache_dir", o->cache_dir);
        fputs(", ", stdout);
        json_field("weights_sha256", o->weights_sha256);
        fputc('}', stdout);
    } else {
        fputs("null", stdout);
    }
    printf(", \"dicom\": %lld, \"modalities\": {", (long long)s->dicom);
    for (int i = 0; i < m->n; i++) {
        if (i) fputs(", ", stdout);
        cli_json_string(stdout, m->names[i]);
        printf(": %lld", (long long)m->counts[i]);
    }
    fputs("}, \"failure_reasons\": [", stdout);
    for (int i = 0; i < r->n; i++) {
        fputs(i ? ", {\"reason\": " : "{\"reason\": ", stdout);
        cli_json_string(stdout, r->reasons[i]);
        printf(", \"count\": %lld}", (long long)r->counts[i]);
    }
    fputs("], \"last_run\": ", stdout);
    if (!s->run_id) {
        puts("null}");
        return;
    }
    printf("{\"id\": %lld, \"started\": %.3f, \"finished\": ", (long long)s->run_id,
           s->run_started);
    if (s->run_finished > 0) printf("%.3f", s->run_finished);
    else fputs("null", stdout);
    fputs(", \"command\": ", stdout);
    cli_json_string(stdout, s->run_command);
    fputs(", ", stdout);
    print_counts_json(&s->run_counts);
    printf(", \"encoder_seconds\": %.3f, \"wall_seconds\": %.3f}}\n", s->run_encoder_seconds,
           s->run_wall_seconds);
}

static void print_text(const char *path, const raddino_store_stats *s, const reason_list *r,
                       const modality_list *m, const raddino_store_model_origin *o)
{
    printf("database:   %s (schema %d, generation %lld)\n", path, s->schema,
           (long long)s->generation);
    printf("images:     %lld: %lld ok, %lld failed\n", (long long)s->images, (long long)s->ok,
           (long long)s->failed);
    for (int i = 0; i < r->n; i++)
        printf("  %8lld  %s\n", (long long)r->counts[i], r->reasons[i]);
    if (s->dicom) {
        printf("dicom:      %lld:", (long long)s->dicom);
        for (int i = 0; i < m->n; i++)
            printf("%s %lld %s", i ? "," : "", (long long)m->counts[i],
                   m->names[i][0] ? m->names[i] : "(no modality)");
        if (m->others) printf(", %lld other", (long long)m->others);
        putchar('\n');
    }
    if (s->model_id) {
        printf("vectors:    %lld x %d float32\n", (long long)s->vectors, s->dim);
        printf("model:      weights sha256 %s", s->weights_sha256);
        if (s->repository[0])
            printf(" (%s%s%s)", s->repository, s->revision[0] ? " @ " : "", s->revision);
        putchar('\n');
    } else {
        printf("vectors:    none\n");
    }
    if (o) {
        printf("model from: %s", o->folder);
        if (o->repository[0])
            printf(" (%s, revision %s, commit %s)", o->repository,
                   o->revision[0] ? o->revision : "?", o->commit[0] ? o->commit : "?");
        if (o->weights[0]) printf(", weights %s", o->weights);
        putchar('\n');
    }
    if (s->run_id) {
        char started[64];
        format_time(s->run_started, started, sizeof started);
        const raddino_store_counts *c = &s->run_counts;
        printf("last run:   %s, %.1f s%s: %lld added, %lld updated, %lld reused, "
               "%lld unchanged, %lld failed, %lld removed\n",
               started, s->run_wall_seconds, s->run_finished > 0 ? "" : " (did not finish)",
               (long long)c->added, (long long)c->updated, (long long)c->reused,
               (long long)c->unchanged, (long long)c->failed, (long long)c->removed);
    }
}

int cmd_stats(int argc, char **argv)
{
    static const struct option long_options[] = {{"db", required_argument, NULL, 'd'},
                                                 {"json", no_argument, NULL, 'j'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {NULL, 0, NULL, 0}};
    const char *db_option = NULL;
    bool json = false;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (opt) {
        case 'd': db_option = optarg; break;
        case 'j': json = true; break;
        case 'h': fputs(stats_usage, stdout); return EXIT_OK;
        default:
            cli_error("stats: unknown or incomplete option '%s' (see raddino stats --help)",
                      argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("stats: unexpected argument '%s' (see raddino stats --help)", argv[optind]);
        return EXIT_USAGE;
    }
    const char *path = cli_db_path(db_option);
    raddino_store_params params = raddino_store_default_params();
    params.read_only = 1;
    raddino_store *db;
    raddino_status st = raddino_store_open(path, &params, &db);
    raddino_store_stats s;
    reason_list reasons;
    memset(&reasons, 0, sizeof reasons);
    modality_list modalities;
    memset(&modalities, 0, sizeof modalities);
    if (!st.code) st = raddino_store_read_begin(db);
    if (!st.code) st = raddino_store_get_stats(db, &s);
    if (!st.code) st = raddino_store_failure_reasons(db, MAX_REASONS, collect_reason, &reasons);
    if (!st.code) st = raddino_store_dicom_modalities(db, collect_modality, &modalities);
    raddino_store_model_origin *origin = malloc(sizeof *origin);   /* 12 KB: not on the stack */
    int has_origin = 0;
    if (!st.code && !origin) st = (raddino_status){RADDINO_ERR_NOMEM, "out of memory"};
    if (!st.code) st = raddino_store_get_model_origin(db, origin, &has_origin);
    raddino_store_read_end(db);
    raddino_store_close(db);
    if (st.code) {
        cli_status_error(&st);
        free(origin);
        return EXIT_INPUT_FAILED;
    }
    if (json) print_json(path, &s, &reasons, &modalities, has_origin ? origin : NULL);
    else print_text(path, &s, &reasons, &modalities, has_origin ? origin : NULL);
    free(origin);
    return EXIT_OK;
}
