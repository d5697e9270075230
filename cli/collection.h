/* collection.h — private to the commands that search a collection (search, index-info, cluster,
 * dedup, eval): the index options they share and opening the collection. */
#ifndef RADDINO_CLI_COLLECTION_H
#define RADDINO_CLI_COLLECTION_H

#include "cli.h"
#include "raddino_collection.h"

typedef struct {
    const char *db;                     /* --db */
    raddino_collection_params params;   /* --index-type, --max-memory, --nprobe, ... */
} cli_collection_options;

enum {
    CLI_OPT_DB = 0x300,
    CLI_OPT_INDEX_TYPE,
    CLI_OPT_MAX_MEMORY,
    CLI_OPT_NPROBE,
    CLI_OPT_EF_SEARCH,
    CLI_OPT_REBUILD
};

#define CLI_COLLECTION_LONG_OPTIONS                                                      \
    {"db", required_argument, NULL, CLI_OPT_DB},                                         \
        {"index-type", required_argument, NULL, CLI_OPT_INDEX_TYPE},                     \
        {"max-memory", required_argument, NULL, CLI_OPT_MAX_MEMORY},                     \
        {"nprobe", required_argument, NULL, CLI_OPT_NPROBE},                             \
        {"ef-search", required_argument, NULL, CLI_OPT_EF_SEARCH},                       \
        {"rebuild", no_argument, NULL, CLI_OPT_REBUILD}
#define CLI_COLLECTION_HELP                                                              \
    CLI_DB_HELP                                                                          \
    "  --index-type T     flat (exact), exact-fp16 or exact-sq8 (exact from half or\n"    \
    "                     a quarter of flat's memory: re-ranked from the store),\n"       \
    "                     auto (flat up to 200,000 vectors, then HNSW32 or\n"              \
    "                     IVF-PQ within --max-memory) or a FAISS factory string\n"         \
    "                     (IVF1024,Flat, HNSW32, IVF4096,PQ64...); default: the type of\n" \
    "                     the saved index (DB.faiss), else auto\n"                         \
    "  --max-memory N     auto's budget: bytes, or with K, M, G (default: half the RAM)\n" \
    "  --nprobe N         IVF lists visited per query (default max(8, nlist/32))\n"       \
    "  --ef-search N      HNSW search beam (default 64)\n"                                 \
    "  --rebuild          build the index afresh (retrain) even when it is current\n"

/* Handles the option if it is one of the above (returns true; *exit_code = EXIT_USAGE when its
 * value is bad). */
bool cli_collection_option(cli_collection_options *o, int opt, const char *arg, int *exit_code);

/* Opens the collection (store snapshot + index kept in step); prints errors and a warning when
 * the index file could not be written. NULL on failure with *exit_code set. */
raddino_collection *cli_open_collection(const cli_collection_options *o, int *exit_code);

/* Opens the encoder the model options name and checks that it is the collection's model
 * (weights sha256, config, DICOM window): vectors of two models do not compare. Prints the error
 * and returns NULL on failure. */
raddino_encoder *cli_open_collection_model(raddino_collection *c, const cli_model_options *m,
                                           int *exit_code);

/* "loaded", "refreshed" or "built" (raddino_index_origin). */
const char *cli_origin_name(int origin);

#endif
