/* cmd_index_info.c — raddino index-info: the collection's search index (type, size, memory),
 * brought up to date first, and for approximate types its recall@10 against exact search. */
#include "collection.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char index_info_usage[] =
    "usage: raddino index-info [--db FILE] [--index-type T] [--recall-queries N] [--json]\n"
    "\n"
    "Describes the collection's search index (DB.faiss), building or refreshing it first when\n"
    "the collection changed: type, vectors, dimension, memory, search parameters, and for\n"
    "approximate types recall@10 against exact search for N stored vectors as queries\n"
    "(and the recall measured when the index was built, on held-out stored vectors).\n"
    "\n"
    "options:\n"
    "  --recall-queries N  stored vectors used as queries for the recall measurement\n"
    "                     (default 200; --sample N: old spelling)\n"
    "  --seed S           their choice (default 1234)\n"
    "  --json             one JSON object\n"
    CLI_COLLECTION_HELP
    "  -h, --help         this help\n";

typedef struct {
    cli_collection_options coll;
    uint64_t sample, seed;
    int json;
} info_options;

static int parse_info_options(int argc, char **argv, info_options *o)
{
    enum { OPT_SAMPLE = 0x400, OPT_SEED, OPT_JSON, OPT_RECALL_QUERIES };
    static const struct option long_options[] = {
        {"sample", required_argument, NULL, OPT_SAMPLE},
        {"recall-queries", required_argument, NULL, OPT_RECALL_QUERIES},
        {"seed", required_argument, NULL, OPT_SEED},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        CLI_COLLECTION_LONG_OPTIONS,
        {NULL, 0, NULL, 0}};
    int opt, exit_code = -1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (cli_collection_option(&o->coll, opt, optarg, &exit_code)) {
            if (exit_code >= 0) return exit_code;
            continue;
        }
        switch (opt) {
        case OPT_SAMPLE:
            cli_deprecated("index-info", "--sample N", "--recall-queries N");
            if (!cli_parse_u64("--sample", optarg, 1000000, &o->sample)) return EXIT_USAGE;
            break;
        case OPT_RECALL_QUERIES:
            if (!cli_parse_u64("--recall-queries", optarg, 1000000, &o->sample))
                return EXIT_USAGE;
            break;
        case OPT_SEED:
            if (!cli_parse_u64("--seed", optarg, UINT64_MAX, &o->seed)) return EXIT_USAGE;
            break;
        case OPT_JSON: o->json = 1; break;
        case 'h': fputs(index_info_usage, stdout); return EXIT_OK;
        default:
            cli_error("index-info: unknown or incomplete option '%s' (see --help)",
                      argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("index-info: unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    return -1;
}

static raddino_status measure(raddino_collection *c, const info_options *o, double *recall)
{
    float *vectors;
    int64_t *ids;
    size_t n;
    raddino_status st = raddino_collection_read_all(c, &vectors, &ids, &n);
    if (st.code) return st;
    size_t queries = o->sample < n ? o->sample : n;
    int k = n < 10 ? (int)n : 10;
    st = raddino_index_measure_recall(raddino_collection_index(c), vectors, ids, n, queries, k,
                                      o->seed, recall);
    free(vectors);
    free(ids);
    return st;
}

static void print_info(const raddino_collection_info *ci, const raddino_index_info *ii,
                       int json, int measured, double recall, size_t sample)
{
    if (json) {
        fputs("{\"database\": ", stdout);
        cli_json_string(stdout, ci->db_path);
        fputs(", \"index\": ", stdout);
        cli_json_string(stdout, ci->index_path);
        fputs(", \"type\": ", stdout);
        cli_json_string(stdout, ii->type);
        printf(", \"exact\": %s, \"vectors\": %lld, \"dim\": %d, \"memory_bytes\": %llu, "
               "\"generation\": %lld, \"origin\": \"%s\", \"seconds\": %.3f, \"nprobe\": %d, "
               "\"ef_search\": %d, \"nlist\": %d",
               ii->exact ? "true" : "false", (long long)ii->ntotal, ii->dim,
               (unsigned long long)ii->memory_bytes, (long long)ci->generation,
               cli_origin_name(ci->origin), ci->seconds, ii->nprobe, ii->ef_search, ii->nlist);
        if (ii->on_disk) {   /* only then: the other types' output stays as it was */
            fputs(", \"lists_file\": ", stdout);
            cli_json_string(stdout, ii->lists_path);
            printf(", \"lists_bytes\": %llu, \"rerank\": %d", (unsigned long long)ii->lists_bytes,
                   ii->rerank);
        }
        if (ii->build_recall_queries > 0)   /* only then, as above */
            printf(", \"build_recall\": {\"recall\": %.4f, \"k\": %d, \"queries\": %d, "
                   "\"nprobe\": %d}",
                   ii->build_recall, ii->build_recall_k, ii->build_recall_queries,
                   ii->build_recall_nprobe);
        fputs(", \"recall_at_10\": ", stdout);
        if (measured) printf("%.4f, \"recall_queries\": %zu}\n", recall, sample);
        else puts("null}");
        return;
    }
    printf("database:   %s (generation %lld)\n", ci->db_path, (long long)ci->generation);
    printf("index:      %s (%s in %.3f s)\n", ci->index_path, cli_origin_name(ci->origin),
           ci->seconds);
    printf("type:       %s (%s)\n", ii->type, ii->exact ? "exact" : "approximate");
    printf("vectors:    %lld of dim %d\n", (long long)ii->ntotal, ii->dim);
    printf("memory:     %.1f MiB\n", (double)ii->memory_bytes / (1024.0 * 1024.0));
    if (ii->nlist) printf("ivf:        %d lists, nprobe %d\n", ii->nlist, ii->nprobe);
    if (ii->on_disk) {
        printf("lists file: %s (%.1f MiB, memory-mapped)\n", ii->lists_path,
               (double)ii->lists_bytes / (1024.0 * 1024.0));
        printf("re-rank:    shortlist of %d x k re-scored from the stored vectors\n",
               ii->rerank);
    }
    if (ii->ef_search) printf("hnsw:       efSearch %d\n", ii->ef_search);
    if (ii->build_recall_queries > 0) {
        printf("built with: recall@%d %.4f (%d held-out vectors against exact search",
               ii->build_recall_k, ii->build_recall, ii->build_recall_queries);
        if (ii->build_recall_nprobe > 0) printf(", nprobe %d", ii->build_recall_nprobe);
        puts(")");
    }
    if (measured) printf("recall@10:  %.4f (%zu queries against exact search)\n", recall, sample);
}

int cmd_index_info(int argc, char **argv)
{
    info_options o;
    memset(&o, 0, sizeof o);
    o.coll.params = raddino_collection_default_params();
    o.sample = 200;
    o.seed = 1234;  /* the one default seed of every command */
    int exit_code = parse_info_options(argc, argv, &o);
    if (exit_code >= 0) return exit_code;
    raddino_collection *c = cli_open_collection(&o.coll, &exit_code);
    if (!c) return exit_code;
    raddino_collection_info ci;
    raddino_collection_get_info(c, &ci);
    raddino_index_info ii;
    raddino_status st = raddino_index_get_info(raddino_collection_index(c), &ii);
    double recall = 0;
    int measured = !st.code && !ii.exact;
    if (measured) st = measure(c, &o, &recall);
    if (st.code) {
        cli_status_error(&st);
        exit_code = EXIT_INPUT_FAILED;
    } else {
        size_t sample = o.sample < (uint64_t)ii.ntotal ? o.sample : (size_t)ii.ntotal;
        print_info(&ci, &ii, o.json, measured, recall, sample);
        exit_code = EXIT_OK;
    }
    raddino_collection_close(c);
    return exit_code;
}
