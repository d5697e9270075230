/* collection.c — the index options of the searching commands and opening a collection. */
#include "collection.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* A byte count with an optional K, M, G or T suffix (powers of 1024). */
static bool parse_bytes(const char *arg, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno || end == arg || arg[0] == '-' || v == 0) return false;
    int shift = 0;
    switch (*end) {
    case 'K': case 'k': shift = 10; end++; break;
    case 'M': case 'm': shift = 20; end++; break;
    case 'G': case 'g': shift = 30; end++; break;
    case 'T': case 't': shift = 40; end++; break;
    default: break;
    }
    if (*end == 'B' || *end == 'b') end++;
    if (*end || v > (UINT64_MAX >> shift)) return false;
    *out = (uint64_t)v << shift;
    return true;
}

bool cli_collection_option(cli_collection_options *o, int opt, const char *arg, int *exit_code)
{
    uint64_t v;
    switch (opt) {
    case CLI_OPT_DB: o->db = arg; return true;
    case CLI_OPT_INDEX_TYPE:
        if (!*arg || strlen(arg) >= RADDINO_INDEX_TYPE_MAX) {
            cli_error("--index-type: expected flat, auto or a FAISS factory string");
            *exit_code = EXIT_USAGE;
        }
        o->params.index.type = arg;
        return true;
    case CLI_OPT_MAX_MEMORY:
        if (parse_bytes(arg, &v)) {
            o->params.index.max_memory = v;
        } else {
            cli_error("--max-memory: expected a size such as 8G or 500M, got '%s'", arg);
            *exit_code = EXIT_USAGE;
        }
        return true;
    case CLI_OPT_NPROBE:
        if (!cli_parse_u64("--nprobe", arg, 1 << 20, &v)) *exit_code = EXIT_USAGE;
        else o->params.index.nprobe = (int)v;
        return true;
    case CLI_OPT_EF_SEARCH:
        if (!cli_parse_u64("--ef-search", arg, 1 << 20, &v)) *exit_code = EXIT_USAGE;
        else o->params.index.ef_search = (int)v;
        return true;
    case CLI_OPT_REBUILD: o->params.rebuild = 1; return true;
    default: return false;
    }
}

const char *cli_origin_name(int origin)
{
    switch (origin) {
    case RADDINO_INDEX_LOADED: return "loaded";
    case RADDINO_INDEX_REFRESHED: return "refreshed";
    default: return "built";
    }
}

raddino_collection *cli_open_collection(const cli_collection_options *o, int *exit_code)
{
    raddino_collection *c;
    raddino_status st = raddino_collection_open(cli_db_path(o->db), &o->params, &c);
    if (st.code) {
        cli_status_error(&st);
        /* A bad --index-type is refused while parsing (EXIT_USAGE); what fails here, an
         * unknown factory string included, is the collection's failure. */
        *exit_code = EXIT_INPUT_FAILED;
        return NULL;
    }
    raddino_collection_info info;
    raddino_collection_get_info(c, &info);
    if (info.save_error[0])
        fprintf(stderr, "raddino: warning: search index kept in memory only: %s\n",
                info.save_error);
    return c;
}

raddino_encoder *cli_open_collection_model(raddino_collection *c, const cli_model_options *m,
                                           int *exit_code)
{
    /* Without a model option, the model the collection recorded (checked by its sha256). */
    cli_model_options mo = *m;
    raddino_store_model_origin origin;
    int found = 0;
    raddino_collection_info ci;
    raddino_collection_get_info(c, &ci);
    if (!mo.recorded &&
        !raddino_store_get_model_origin(raddino_collection_store(c), &origin, &found).code &&
        found) {
        mo.recorded = &origin;
        mo.recorded_db = ci.db_path;
    }
    cli_model_location loc;
    raddino_encoder *enc = cli_open_encoder_at(&mo, &loc, exit_code);
    if (!enc) return NULL;
    raddino_model_identity id;
    raddino_status st = raddino_encoder_identity(enc, &id);
    raddino_store_model model = {id.weights_sha256, id.config_json, NULL, NULL, id.dim};
    if (!st.code) st = raddino_collection_check_model(c, &model);
    if (st.code == RADDINO_ERR_MODEL) {
        cli_error("%s: %s", st.message, CLI_HINT_QUERY_MODEL);
        raddino_encoder_close(enc);
        *exit_code = EXIT_INPUT_FAILED;
        return NULL;
    }
    if (st.code) {
        cli_status_error(&st);
        raddino_encoder_close(enc);
        *exit_code = EXIT_INPUT_FAILED;
        return NULL;
    }
    return enc;
}
