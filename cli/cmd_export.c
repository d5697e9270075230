/* cmd_export.c — raddino export: all vectors as one N x dim float32 .npy, exactly as stored,
 * and the matching "id,path" CSV in the same row order (image id order), on stdout with --csv
 * (the switch every command's --csv is), or, with the old spelling --csv FILE, into FILE. */
#include "cli.h"
#include "npy.h"
#include "raddino_store.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char export_usage[] =
    "usage: raddino export --npy FILE [--csv] [--db FILE]\n"
    "\n"
    "Writes every vector of the database as an N x dim float32 .npy (the stored values,\n"
    "bit for bit), rows in image id order, and with --csv the matching list of images on\n"
    "stdout (header 'id,path', same order). For numpy: np.load(FILE).\n"
    "\n"
    "options:\n"
    "  --npy FILE         the vectors\n"
    "  --csv              the image id and path of each row, as CSV on stdout\n"
    "                     (--csv FILE: old spelling, writes FILE)\n"
    CLI_DB_HELP
    "  -h, --help         this help\n";

typedef struct {
    npy_writer npy;
    FILE *csv;
    int64_t rows;
    raddino_status st;
} export_state;

static int export_row(void *user, int64_t image_id, const char *path, const char *sha256,
                      const float *vector, int dim)
{
    (void)sha256;
    export_state *e = user;
    e->st = npy_writer_write(&e->npy, vector, (size_t)dim);
    if (e->st.code) return 1;
    if (e->csv) {
        fprintf(e->csv, "%lld,", (long long)image_id);
        cli_csv_field(e->csv, path);
        fputc('\n', e->csv);
    }
    e->rows++;
    return 0;
}

/* The CSV goes to a temporary file renamed into place once complete, like the .npy. */
static FILE *open_csv(const char *path, char *tmp, size_t cap)
{
    snprintf(tmp, cap, "%s.tmp-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) cli_error("%s: %s", path, strerror(errno));
    else fputs("id,path\n", f);
    return f;
}

static bool finish_csv(FILE *f, const char *tmp, const char *path, bool ok)
{
    bool closed = fclose(f) == 0;
    if (ok && closed && rename(tmp, path) == 0) return true;
    if (ok) cli_error("%s: %s", path, strerror(errno));
    unlink(tmp);
    return false;
}

static int export_all(raddino_store *db, const char *npy_path, const char *csv_path)
{
    raddino_store_stats s;
    raddino_status st = raddino_store_read_begin(db);
    if (!st.code) st = raddino_store_get_stats(db, &s);
    if (!st.code && !s.model_id) {
        st.code = RADDINO_ERR_ARGUMENT;
        snprintf(st.message, sizeof st.message, "%s: no vectors to export",
                 raddino_store_path(db));
    }
    export_state e;
    memset(&e, 0, sizeof e);
    int64_t shape[2] = {s.vectors, s.dim};
    if (!st.code) st = npy_writer_open(&e.npy, npy_path, 2, shape);
    char csv_tmp[4096];
    if (!st.code && csv_path && !strcmp(csv_path, "-")) {
        e.csv = stdout;
        fputs("id,path\n", stdout);
    } else if (!st.code && csv_path && !(e.csv = open_csv(csv_path, csv_tmp, sizeof csv_tmp))) {
        npy_writer_abort(&e.npy);
        raddino_store_read_end(db);
        return EXIT_INPUT_FAILED;
    }
    if (!st.code) st = raddino_store_foreach_vector(db, s.model_id, export_row, &e);
    if (!st.code) st = e.st;
    raddino_store_read_end(db);
    if (!st.code) st = npy_writer_finish(&e.npy);
    else npy_writer_abort(&e.npy);
    bool csv_ok = !e.csv || (e.csv == stdout ? fflush(stdout) == 0 && !ferror(stdout)
                                             : finish_csv(e.csv, csv_tmp, csv_path, !st.code));
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    return csv_ok ? EXIT_OK : EXIT_INPUT_FAILED;
}

int cmd_export(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"db", required_argument, NULL, 'd'},  {"npy", required_argument, NULL, 'n'},
        {"csv", optional_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *db_option = NULL, *npy_path = NULL, *csv_path = NULL;
    bool csv = false;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (opt) {
        case 'd': db_option = optarg; break;
        case 'n': npy_path = optarg; break;
        case 'c':
            csv = true;
            csv_path = optarg;  /* --csv=FILE: the old spelling */
            break;
        case 'h': fputs(export_usage, stdout); return EXIT_OK;
        default:
            cli_error("export: unknown or incomplete option '%s' (see raddino export --help)",
                      argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    /* The old spelling `--csv FILE`: export takes no arguments, so one left over after --csv is
     * that FILE. */
    if (csv && !csv_path && optind == argc - 1) csv_path = argv[optind++];
    if (csv && csv_path) cli_deprecated("export", "--csv FILE", "--csv > FILE");
    if (csv && !csv_path) csv_path = "-";
    if (optind < argc || !npy_path) {
        cli_error("export: %s (see raddino export --help)",
                  optind < argc ? "unexpected argument" : "--npy FILE is required");
        return EXIT_USAGE;
    }
    raddino_store_params params = raddino_store_default_params();
    params.read_only = 1;
    raddino_store *db;
    raddino_status st = raddino_store_open(cli_db_path(db_option), &params, &db);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    int exit_code = export_all(db, npy_path, csv_path);
    raddino_store_close(db);
    return exit_code;
}
