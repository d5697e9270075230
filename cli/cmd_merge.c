/* cmd_merge.c — raddino merge: shard databases into one collection (raddino_store_merge in
 * store/store_shard.c does the work; this is the options, the hints and the summary). */
#include "cli.h"
#include "raddino_store.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char merge_usage[] =
    "usage: raddino merge [--db FILE] [SHARD.db...]\n"
    "\n"
    "Merges shard databases ('raddino index --shard', '--mpi') into the collection: it then\n"
    "holds what one 'raddino index' of the same files gives (same paths, ids, vectors bit\n"
    "for bit, failures, DICOM metadata, model). Each shard owns the files whose path hashes\n"
    "to it: its new and changed rows are added or updated, the rows it no longer holds are\n"
    "removed; shards unchanged since the last merge are not read again, and merging again\n"
    "without changes changes nothing. One transaction: a merge that is killed leaves the\n"
    "collection as it was, and running it again does it all. Shards made with different\n"
    "models or DICOM windows, or whose last index run did not finish, are refused.\n"
    "Without SHARD arguments, merges the shards next to the database, DB.shard-I-of-N for\n"
    "I = 0..N-1 (where --shard slurm and --mpi write them), and names any that is missing.\n"
    "\n"
    "options:\n"
    CLI_DB_HELP
    "  --quiet            no summary\n"
    "  --json             one JSON object of counts on stdout\n"
    "  -h, --help         this help\n";

int cli_merge_with(const char *main_db, const char *const *shards, int n, const char *command,
                   bool quiet, bool json, raddino_store_merge_result *result)
{
    raddino_store_merge_result local;
    raddino_store_merge_result *r = result ? result : &local;
    memset(r, 0, sizeof *r);
    raddino_store_params params = raddino_store_default_params();
    raddino_store *db;
    raddino_status st = raddino_store_open(main_db, &params, &db);
    if (!st.code) {
        raddino_store_merge_params p = {command, 0};
        /* Tests only: die just before the commit (tests/test_shard.sh). */
        const char *kill = getenv("RADDINO_TEST_KILL_MERGE");
        p.test_kill_before_commit = kill && !strcmp(kill, "1");
        st = raddino_store_merge(db, shards, n, &p, r);
        raddino_store_close(db);
    }
    if (st.code == RADDINO_ERR_MODEL) {
        cli_error("%s (merge shards made with one model and --window; another model's "
                  "collection needs its own --db)", st.message);
        return EXIT_INPUT_FAILED;
    }
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    if (json)
        printf("{\"shards\": %d, \"shards_unchanged\": %d, \"added\": %lld, \"updated\": %lld, "
               "\"removed\": %lld, \"unchanged\": %lld, \"failed\": %lld}\n",
               r->shards, r->shards_unchanged, (long long)r->added, (long long)r->updated,
               (long long)r->removed, (long long)r->unchanged, (long long)r->failed);
    else if (!quiet)
        printf("raddino merge: %d shard%s into %s (%d unchanged since the last merge): %lld "
               "added, %lld updated, %lld removed, %lld unchanged, %lld failed\n",
               r->shards, r->shards == 1 ? "" : "s", main_db, r->shards_unchanged,
               (long long)r->added, (long long)r->updated, (long long)r->removed,
               (long long)r->unchanged, (long long)r->failed);
    return EXIT_OK;
}

int cli_merge(const char *main_db, const char *const *shards, int n, const char *command,
              raddino_store_merge_result *result)
{
    return cli_merge_with(main_db, shards, n, command, true, false, result);
}

int cmd_merge(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"db", required_argument, NULL, 'd'}, {"quiet", no_argument, NULL, 'q'},
        {"json", no_argument, NULL, 'J'},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *db_option = NULL;
    bool quiet = false, json = false;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "hq", long_options, NULL)) != -1) {
        switch (opt) {
        case 'd': db_option = optarg; break;
        case 'q': quiet = true; break;
        case 'J': json = true; break;
        case 'h': fputs(merge_usage, stdout); return EXIT_OK;
        default:
            cli_error("merge: unknown or incomplete option '%s' (see raddino merge --help)",
                      argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    const char *main_db = cli_db_path(db_option);
    char command[1024];
    size_t used = (size_t)snprintf(command, sizeof command, "merge");
    for (int i = 1; i < argc && used < sizeof command; i++)
        used += (size_t)snprintf(command + used, sizeof command - used, " %s", argv[i]);
    if (optind < argc)
        return cli_merge_with(main_db, (const char *const *)argv + optind, argc - optind,
                              command, quiet, json, NULL);
    char **paths;
    int n;
    raddino_status st = raddino_store_find_shards(main_db, &paths, &n);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    int code = cli_merge_with(main_db, (const char *const *)paths, n, command, quiet, json, NULL);
    raddino_store_free_shard_paths(paths, n);
    return code;
}
