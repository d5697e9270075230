/* cmd_embed.c — raddino embed: CLS vectors (text, JSON lines, .npy), patch maps, all tokens.
 *
 * While the encoder works on one image, a helper thread reads, decodes and preprocesses the
 * next one (when the network input has a fixed size): done in between, as before, that work
 * added to every image's time while the encoder's threads waited. */
#include "cli.h"
#include "npy.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char embed_usage[] =
    "usage: raddino embed [OPTIONS] IMAGE...\n"
    "\n"
    "Embeds each image with RAD-DINO and prints one line per image: the path and the first\n"
    "values of its CLS vector (or, with --json, a JSON line with the whole vector).\n"
    "\n"
    "options:\n"
    "  --npy FILE         write the CLS vectors as an N x hidden float32 .npy, rows in\n"
    "                     argument order (a row of NaN for an image that failed);\n"
    "                     --out FILE / -o FILE: old spelling\n"
    "  --patches DIR      write DIR/NAME.npy per image: the patch tokens as [hidden, h, w]\n"
    "  --tokens DIR       write DIR/NAME.npy per image: all tokens [1 + h*w, hidden], CLS first\n"
    "                     (NAME is the file name without its extension; when two inputs share\n"
    "                     a name, _N is added, N being the argument's position from 1)\n"
    "  --json             one JSON object per line: {\"path\", \"dim\", \"cls\": [...]}\n"
    CLI_MODEL_HELP
    "  -h, --help         this help\n";

typedef struct {
    cli_model_options model;
    const char *out, *patches_dir, *tokens_dir;
    bool json;
} embed_options;

/* File name without folders and without the last extension. */
static void file_stem(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, cap, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

static bool stem_is_shared(char **paths, int n, int index)
{
    char mine[PATH_MAX], other[PATH_MAX];
    file_stem(paths[index], mine, sizeof mine);
    for (int i = 0; i < n; i++) {
        if (i == index) continue;
        file_stem(paths[i], other, sizeof other);
        if (!strcmp(mine, other)) return true;
    }
    return false;
}

static raddino_status output_path(const char *dir, char **paths, int n, int index, char *out,
                                  size_t cap)
{
    char stem[PATH_MAX];
    file_stem(paths[index], stem, sizeof stem);
    int len = stem_is_shared(paths, n, index)
                  ? snprintf(out, cap, "%s/%s_%d.npy", dir, stem, index + 1)
                  : snprintf(out, cap, "%s/%s.npy", dir, stem);
    raddino_status st = {RADDINO_OK, ""};
    if (len < 0 || (size_t)len >= cap) {
        st.code = RADDINO_ERR_ARGUMENT;
        snprintf(st.message, sizeof st.message, "%s: output path too long", paths[index]);
    }
    return st;
}

static bool ensure_dir(const char *dir)
{
    if (mkdir(dir, 0777) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return true;
        cli_error("%s: not a folder", dir);
        return false;
    }
    cli_error("%s: cannot create folder: %s", dir, strerror(errno));
    return false;
}

static void print_cls(const embed_options *o, const char *path, const float *cls, int hidden)
{
    if (o->json) {
        fputs("{\"path\": ", stdout);
        cli_json_string(stdout, path);
        printf(", \"dim\": %d, \"cls\": [", hidden);
        for (int i = 0; i < hidden; i++) printf(i ? ", %.9g" : "%.9g", cls[i]);
        puts("]}");
    } else {
        printf("%s\t", path);
        int shown = hidden < 4 ? hidden : 4;
        for (int i = 0; i < shown; i++) printf(i ? " %.6f" : "%.6f", cls[i]);
        printf("%s (dim %d)\n", hidden > shown ? " ..." : "", hidden);
    }
    fflush(stdout);
}

/* Writes the per-image .npy files asked for. */
static raddino_status write_token_files(const embed_options *o, const raddino_model_info *info,
                                        const float *tokens, float *map, char **paths, int n,
                                        int index)
{
    char path[PATH_MAX];
    raddino_status st = {RADDINO_OK, ""};
    if (o->patches_dir) {
        st = output_path(o->patches_dir, paths, n, index, path, sizeof path);
        if (st.code) return st;
        raddino_tokens_to_patch_map(tokens, info->hidden, info->grid_height, info->grid_width,
                                    map);
        int64_t shape[3] = {info->hidden, info->grid_height, info->grid_width};
        st = npy_write_f32(path, map, 3, shape);
        if (st.code) return st;
    }
    if (o->tokens_dir) {
        st = output_path(o->tokens_dir, paths, n, index, path, sizeof path);
        if (st.code) return st;
        int64_t shape[2] = {info->tokens, info->hidden};
        st = npy_write_f32(path, tokens, 2, shape);
    }
    return st;
}

/* One image's network input, made on a helper thread (raddino_preprocess reads only the
 * encoder's configuration, never its scratch buffers, so it may run while the encoder
 * encodes). */
typedef struct {
    const raddino_encoder *enc;
    const raddino_load_options *load;
    const char *path;
    float *pixels;          /* 3 x input height x input width */
    raddino_status status;
    pthread_t thread;
    bool started;
} prepared_input;

static void *prepare_input(void *arg)
{
    prepared_input *p = arg;
    raddino_image img;
    p->status = raddino_image_load_ex(p->path, p->load, &img);
    if (p->status.code) return NULL;    /* the loader's messages name the file */
    p->status = raddino_preprocess(p->enc, &img, NULL, p->pixels);
    raddino_image_free(&img);
    /* Preprocessing does not know the file: name it, as raddino_embed_file's messages do. */
    if (p->status.code) {
        raddino_status named = {p->status.code, ""};
        snprintf(named.message, sizeof named.message, "%.250s: %.250s", p->path, p->status.message);
        p->status = named;
    }
    return NULL;
}

/* Starts preparing `path` on a helper thread; if no thread can be started, prepares it here. */
static void prepare_start(prepared_input *p, const char *path)
{
    p->path = path;
    p->started = pthread_create(&p->thread, NULL, prepare_input, p) == 0;
    if (!p->started) prepare_input(p);
}

static raddino_status prepare_finish(prepared_input *p)
{
    if (p->started) pthread_join(p->thread, NULL);
    p->started = false;
    return p->status;
}

static int parse_embed_options(int argc, char **argv, embed_options *o)
{
    static const struct option long_options[] = {
        {"out", required_argument, NULL, 'o'},   {"npy", required_argument, NULL, 'n'},
        {"patches", required_argument, NULL, 'p'},
        {"tokens", required_argument, NULL, 'T'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         CLI_MODEL_LONG_OPTIONS,
        {NULL, 0, NULL, 0}};
    int opt, exit_code = -1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "ho:", long_options, NULL)) != -1) {
        if (cli_model_option(&o->model, opt, optarg, &exit_code)) {
            if (exit_code >= 0) return exit_code;
            continue;
        }
        switch (opt) {
        case 'o':
            cli_deprecated("embed", "--out FILE", "--npy FILE");
            o->out = optarg;
            break;
        case 'n': o->out = optarg; break;
        case 'p': o->patches_dir = optarg; break;
        case 'T': o->tokens_dir = optarg; break;
        case 'j': o->json = true; break;
        case 'h': fputs(embed_usage, stdout); return EXIT_OK;
        default:
            cli_error("embed: unknown or incomplete option '%s' (see raddino embed --help)",
                      argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        cli_error("embed: no images given (see raddino embed --help)");
        return EXIT_USAGE;
    }
    return -1;
}

/* The CLS (and, when tokens is not NULL, all tokens) of every image; failed images are
 * reported and get a row of NaN. Returns the number of failures. With a fixed input size, image
 * i + 1 is prepared on a helper thread while image i is encoded. */
static int embed_all(const embed_options *o, raddino_encoder *enc, char **paths, int n)
{
    raddino_model_info info;
    raddino_encoder_info(enc, &info);
    bool want_tokens = o->patches_dir || o->tokens_dir;
    if (want_tokens && info.tokens == 0) {
        cli_error("--patches/--tokens need a model with a fixed input size (centre crop)");
        return EXIT_USAGE;
    }
    if ((o->patches_dir && !ensure_dir(o->patches_dir)) ||
        (o->tokens_dir && !ensure_dir(o->tokens_dir)))
        return EXIT_INPUT_FAILED;
    size_t hidden = (size_t)info.hidden, n_tokens = (size_t)info.tokens;
    float *cls_rows = calloc((size_t)n * hidden, sizeof(float));
    bool ahead = info.input_height > 0;     /* fixed input size: prepare images ahead */
    size_t input = (size_t)3 * info.input_height * info.input_width;
    raddino_load_options load = cli_load_options(&o->model);
    prepared_input next[2];
    memset(next, 0, sizeof next);
    for (int k = 0; ahead && k < 2; k++) {
        next[k].enc = enc;
        next[k].load = &load;
        next[k].pixels = malloc(input * sizeof(float));
    }
    float *tokens = want_tokens || ahead ? malloc(n_tokens * hidden * sizeof(float)) : NULL;
    float *map = o->patches_dir ? malloc(n_tokens * hidden * sizeof(float)) : NULL;
    if (!cls_rows || ((want_tokens || ahead) && !tokens) || (o->patches_dir && !map) ||
        (ahead && (!next[0].pixels || !next[1].pixels))) {
        cli_error("out of memory for %d images", n);
        free(cls_rows), free(tokens), free(map), free(next[0].pixels), free(next[1].pixels);
        return EXIT_INPUT_FAILED;
    }
    int failed = 0;
    if (ahead) prepare_start(&next[0], paths[0]);
    for (int i = 0; i < n; i++) {
        float *cls = cls_rows + (size_t)i * hidden;
        raddino_status st;
        if (ahead) {
            prepared_input *mine = &next[i % 2];
            st = prepare_finish(mine);
            if (i + 1 < n) prepare_start(&next[(i + 1) % 2], paths[i + 1]);
            if (!st.code) st = raddino_encode_pixels(enc, 1, mine->pixels, tokens);
            if (!st.code) memcpy(cls, tokens, hidden * sizeof(float));
        } else {
            st = raddino_embed_file(enc, paths[i], cls, tokens);
        }
        if (!st.code && want_tokens)
            st = write_token_files(o, &info, tokens, map, paths, n, i);
        if (st.code) {
            cli_status_error(&st);
            for (size_t j = 0; j < hidden; j++) cls[j] = NAN;
            failed++;
            continue;
        }
        print_cls(o, paths[i], cls, info.hidden);
    }
    if (o->out) {
        int64_t shape[2] = {n, info.hidden};
        raddino_status st = npy_write_f32(o->out, cls_rows, 2, shape);
        if (st.code) {
            cli_status_error(&st);
            failed++;
        }
    }
    free(cls_rows), free(tokens), free(map), free(next[0].pixels), free(next[1].pixels);
    return failed ? EXIT_INPUT_FAILED : EXIT_OK;
}

int cmd_embed(int argc, char **argv)
{
    embed_options o;
    memset(&o, 0, sizeof o);
    int exit_code = parse_embed_options(argc, argv, &o);
    if (exit_code >= 0) return exit_code;
    raddino_encoder *enc = cli_open_encoder(&o.model, &exit_code);
    if (!enc) return exit_code;
    exit_code = embed_all(&o, enc, argv + optind, argc - optind);
    raddino_encoder_close(enc);
    return exit_code;
}
