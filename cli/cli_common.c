#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("raddino: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_status_error(const raddino_status *st)
{
    cli_error("%s", st->message);
}

bool cli_parse_u64(const char *option, const char *arg, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno || end == arg || *end || arg[0] == '-' || v == 0 || v > max) {
        cli_error("%s: expected a whole number from 1 to %llu, got '%s'", option,
                  (unsigned long long)max, arg);
        return false;
    }
    *out = v;
    return true;
}

/* --window auto | minmax | C,W (numbers; W at least 1). */
static bool parse_window(const char *arg, cli_model_options *o)
{
    if (!strcmp(arg, "auto")) {
        o->window = RADDINO_WINDOW_AUTO;
        return true;
    }
    if (!strcmp(arg, "minmax")) {
        o->window = RADDINO_WINDOW_MINMAX;
        return true;
    }
    char *end;
    errno = 0;
    double c = strtod(arg, &end);
    if (end != arg && *end == ',' && !errno && isfinite(c)) {
        const char *w_text = end + 1;
        double w = strtod(w_text, &end);
        if (end != w_text && !*end && !errno && isfinite(w) && w >= 1) {
            o->window = RADDINO_WINDOW_EXPLICIT;
            o->window_center = c;
            o->window_width = w;
            return true;
        }
    }
    cli_error("--window: expected auto, minmax or CENTER,WIDTH (width at least 1), got '%s'",
              arg);
    return false;
}

bool cli_model_option(cli_model_options *o, int opt, const char *arg, int *exit_code)
{
    uint64_t v;
    switch (opt) {
    case 'm': o->model = arg; return true;
    case 'W': o->weights = arg; return true;
    case CLI_OPT_REPO: o->repo = arg; return true;
    case CLI_OPT_REVISION: o->revision = arg; return true;
    case CLI_OPT_CACHE_DIR: o->cache_dir = arg; return true;
    case 't':
        if (!cli_parse_u64("--threads", arg, 1024, &v)) *exit_code = EXIT_USAGE;
        else o->threads = (int)v;
        return true;
    case 'R':
        if (!strcmp(arg, "fp32")) o->precision = RADDINO_PRECISION_FP32;
        else if (!strcmp(arg, "bf16")) o->precision = RADDINO_PRECISION_BF16;
        else {
            cli_error("--precision: expected fp32 or bf16, got '%s'", arg);
            *exit_code = EXIT_USAGE;
        }
        return true;
    case 'P':
        if (!cli_parse_u64("--max-pixels", arg, UINT64_MAX, &v)) *exit_code = EXIT_USAGE;
        else o->max_pixels = v;
        return true;
    case CLI_OPT_WINDOW:
        if (!parse_window(arg, o)) *exit_code = EXIT_USAGE;
        return true;
    default: return false;
    }
}

raddino_load_options cli_load_options(const cli_model_options *o)
{
    raddino_load_options opts;
    memset(&opts, 0, sizeof opts);
    opts.max_pixels = o->max_pixels;
    opts.window = o->window;
    opts.window_center = o->window_center;
    opts.window_width = o->window_width;
    return opts;
}

static bool copy_dir(cli_model_location *loc, const char *dir)
{
    int n = snprintf(loc->dir, sizeof loc->dir, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof loc->dir) {
        cli_error("%.64s...: path too long", dir);
        return false;
    }
    return true;
}

/* The model where the collection recorded it: its folder, else (a hub cache that moved, e.g.
 * another $HF_HOME) the same repository and commit in the environment's cache. */
static bool locate_recorded(const cli_model_options *o, cli_model_location *loc)
{
    const raddino_store_model_origin *r = o->recorded;
    loc->source = CLI_MODEL_FROM_DB;
    char config[RADDINO_PATH_MAX + 16];
    snprintf(config, sizeof config, "%s/config.json", r->folder);
    if (access(config, R_OK) == 0) return copy_dir(loc, r->folder);
    int err = errno;
    if (r->repository[0] && r->commit[0] &&
        !raddino_hub_find(NULL, r->repository, r->commit, &loc->hub).code)
        return copy_dir(loc, loc->hub.model_dir);
    char where[RADDINO_PATH_MAX + 512];
    if (r->repository[0])
        snprintf(where, sizeof where, "%s (%s at commit %s), and that commit is not in the "
                 "Hugging Face cache either", r->folder, r->repository,
                 r->commit[0] ? r->commit : "?");
    else
        snprintf(where, sizeof where, "%s", r->folder);
    cli_error("%s: the collection's model was found at %s, which is not there any more (%s): "
              "name the model with --model DIR (or RADDINO_MODEL)",
              o->recorded_db ? o->recorded_db : "database", where, strerror(err));
    return false;
}

bool cli_locate_model(const cli_model_options *o, cli_model_location *loc, int *exit_code)
{
    memset(loc, 0, sizeof *loc);
    *exit_code = EXIT_INPUT_FAILED;
    if (o->model && *o->model) {
        if (o->repo || o->revision || o->cache_dir) {
            cli_error("--model names a folder; --repo, --revision and --cache-dir choose one in "
                      "the Hugging Face cache: give one or the other");
            *exit_code = EXIT_USAGE;
            return false;
        }
        loc->source = CLI_MODEL_FROM_FLAG;
        return copy_dir(loc, o->model);
    }
    /* --repo/--revision/--cache-dir on the command line outrank $RADDINO_MODEL. */
    bool hub_flags = o->repo || o->revision || o->cache_dir;
    const char *env = getenv("RADDINO_MODEL");
    if (!hub_flags && env && *env) {
        loc->source = CLI_MODEL_FROM_ENV;
        return copy_dir(loc, env);
    }
    if (!hub_flags && o->recorded && o->recorded->folder[0]) return locate_recorded(o, loc);
    loc->source = CLI_MODEL_FROM_CACHE;
    raddino_status st = raddino_hub_find(o->cache_dir, o->repo, o->revision, &loc->hub);
    if (st.code == RADDINO_ERR_NOT_FOUND && !o->repo && !o->revision) {
        /* Nothing named anywhere: say every way to name a model. */
        cli_error("no model: %s; run 'raddino model fetch', or pass --model DIR or set "
                  "RADDINO_MODEL to a folder holding "
                  "config.json, preprocessor_config.json and model.safetensors "
                  "(for RAD-DINO, the files of https://huggingface.co/microsoft/rad-dino)",
                  st.message);
        return false;   /* a failure, not a usage error: the command line may be right */
    }
    if (st.code == RADDINO_ERR_NOT_FOUND || st.code == RADDINO_ERR_IO) {
        /* Missing or half-downloaded: the library says what is wrong, the command says how
         * to put it right. */
        cli_error("%s; 'raddino model fetch%s%s%s%s' downloads it", st.message,
                  o->repo ? " --repo " : "", o->repo ? o->repo : "",
                  o->revision ? " --revision " : "", o->revision ? o->revision : "");
        *exit_code = EXIT_INPUT_FAILED;
        return false;
    }
    if (st.code) {
        cli_status_error(&st);
        *exit_code = st.code == RADDINO_ERR_ARGUMENT ? EXIT_USAGE : EXIT_INPUT_FAILED;
        return false;
    }
    return copy_dir(loc, loc->hub.model_dir);
}

raddino_encoder *cli_open_encoder_at(const cli_model_options *o, cli_model_location *loc,
                                     int *exit_code)
{
    cli_model_location local;
    if (!loc) loc = &local;
    if (!cli_locate_model(o, loc, exit_code)) return NULL;
    raddino_encoder_params params = raddino_encoder_default_params();
    params.n_threads = o->threads;
    if (o->max_pixels) params.max_pixels = o->max_pixels;
    params.window = o->window;
    params.window_center = o->window_center;
    params.window_width = o->window_width;
    params.weights = o->weights;
    if (loc->source == CLI_MODEL_FROM_DB && !o->weights && o->recorded->weights[0])
        params.weights = o->recorded->weights;
    params.precision = o->precision;
    raddino_encoder *enc;
    raddino_status st = raddino_encoder_open(loc->dir, &params, &enc);
    if (st.code) {
        cli_status_error(&st);
        *exit_code = EXIT_INPUT_FAILED;
        return NULL;
    }
    raddino_model_info info;
    raddino_encoder_info(enc, &info);
    if (loc->source == CLI_MODEL_FROM_DB) {
        /* The place is only trusted with the weights it had: a folder can be refilled. */
        raddino_model_identity id;
        st = raddino_encoder_identity(enc, &id);
        if (!st.code) memcpy(loc->weights_sha256, id.weights_sha256, sizeof loc->weights_sha256);
        bool changed = !st.code && strcmp(loc->weights_sha256, o->recorded->weights_sha256) != 0;
        if (changed)
            cli_error("%s: the collection's model was found at %s, but the weights there changed "
                      "since (%s: sha256 %s, the collection's vectors were made with %s): name "
                      "the model with --model DIR (or RADDINO_MODEL)",
                      o->recorded_db ? o->recorded_db : "database", loc->dir, info.weights_path,
                      loc->weights_sha256, o->recorded->weights_sha256);
        else if (st.code)
            cli_status_error(&st);
        if (changed || st.code) {
            raddino_encoder_close(enc);
            *exit_code = EXIT_INPUT_FAILED;
            return NULL;
        }
    }
    if (o->precision == RADDINO_PRECISION_BF16 && info.precision != RADDINO_PRECISION_BF16)
        cli_error("note: this CPU has no AVX512_BF16 instructions; computing in fp32");
    return enc;
}

raddino_encoder *cli_open_encoder(const cli_model_options *o, int *exit_code)
{
    return cli_open_encoder_at(o, NULL, exit_code);
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF), or 0 when the byte at p does not start one. */
static size_t utf8_sequence(const unsigned char *p)
{
    if (p[0] < 0x80) return 1;
    size_t n;
    unsigned cp;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) n = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef) n = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4) n = 4, cp = p[0] & 0x07;
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;    /* also stops at the terminating NUL */
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* File names are bytes, and JSON text is UTF-8: a byte that is not part of valid UTF-8 is
 * written as the lone surrogate \udcXX, as Python's "surrogateescape" error handler does, so
 * every line parses and json.loads(...).encode("utf-8", "surrogateescape") gives the bytes
 * back. */
void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_sequence(p);
        if (n == 0) {
            fprintf(f, "\\udc%02x", *p++);
            continue;
        }
        if (n > 1) {
            fwrite(p, 1, n, f);
            p += n;
            continue;
        }
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
        p++;
    }
    fputc('"', f);
}

void cli_deprecated(const char *command, const char *old_spelling, const char *new_spelling)
{
    fprintf(stderr,
            "raddino %s: warning: %s is deprecated, use %s (the old spelling goes in the next "
            "release)\n",
            command, old_spelling, new_spelling);
}

int cli_json_csv_conflict(const char *command)
{
    cli_error("%s: --json and --csv exclude each other: give one", command);
    return EXIT_USAGE;
}

raddino_status cli_file_sha256(const char *path, char hex[65])
{
    raddino_status st = {RADDINO_OK, ""};
    FILE *f = fopen(path, "rb");
    if (!f) {
        st.code = RADDINO_ERR_IO;
        snprintf(st.message, sizeof st.message, "%s: %s", path, strerror(errno));
        return st;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char buffer[1 << 16], digest[32];
    unsigned int digest_len = 0;
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    size_t n;
    while (ok && (n = fread(buffer, 1, sizeof buffer, f)) > 0) ok = EVP_DigestUpdate(ctx, buffer, n);
    ok = ok && !ferror(f) && EVP_DigestFinal_ex(ctx, digest, &digest_len) && digest_len == 32;
    EVP_MD_CTX_free(ctx);
    fclose(f);
    if (!ok) {
        st.code = RADDINO_ERR_IO;
        snprintf(st.message, sizeof st.message, "%s: cannot read to hash it", path);
        return st;
    }
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return st;
}

bool cli_read_model_origin(const char *db_path, raddino_store_model_origin *origin)
{
    struct stat sb;
    if (stat(db_path, &sb) != 0 || !S_ISREG(sb.st_mode)) return false;
    raddino_store_params params = raddino_store_default_params();
    params.read_only = 1;
    raddino_store *db;
    if (raddino_store_open(db_path, &params, &db).code) return false;
    int found = 0;
    raddino_status st = raddino_store_get_model_origin(db, origin, &found);
    raddino_store_close(db);
    return !st.code && found;
}

void cli_model_origin_from(const cli_model_options *o, const cli_model_location *loc,
                           const char *sha256, raddino_store_model_origin *origin)
{
    memset(origin, 0, sizeof *origin);
    if (raddino_store_normalise_path(loc->dir, origin->folder, sizeof origin->folder).code)
        snprintf(origin->folder, sizeof origin->folder, "%s", loc->dir);
    const char *weights = o->weights;
    if (!weights && loc->source == CLI_MODEL_FROM_DB) weights = o->recorded->weights;
    if (weights && *weights &&
        raddino_store_normalise_path(weights, origin->weights, sizeof origin->weights).code)
        origin->weights[0] = 0;
    if (loc->source == CLI_MODEL_FROM_CACHE) {
        snprintf(origin->repository, sizeof origin->repository, "%s", loc->hub.repo);
        snprintf(origin->revision, sizeof origin->revision, "%s", loc->hub.revision);
        snprintf(origin->commit, sizeof origin->commit, "%s", loc->hub.commit);
        snprintf(origin->cache_dir, sizeof origin->cache_dir, "%s", loc->hub.cache_dir);
    } else if (loc->source == CLI_MODEL_FROM_DB) {
        const raddino_store_model_origin *r = o->recorded;
        snprintf(origin->repository, sizeof origin->repository, "%s", r->repository);
        snprintf(origin->revision, sizeof origin->revision, "%s", r->revision);
        snprintf(origin->commit, sizeof origin->commit, "%s", r->commit);
        snprintf(origin->cache_dir, sizeof origin->cache_dir, "%s", r->cache_dir);
    }
    snprintf(origin->weights_sha256, sizeof origin->weights_sha256, "%s", sha256);
}

const char *cli_db_path(const char *option)
{
    if (option && *option) return option;
    const char *env = getenv("RADDINO_DB");
    return env && *env ? env : "raddino.db";
}

void cli_csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}
