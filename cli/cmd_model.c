/* cmd_model.c — raddino model info: what a model folder holds and where it was found;
 * raddino model fetch: download a model into the Hugging Face cache. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char model_usage[] =
    "usage: raddino model info [OPTIONS]\n"
    "       raddino model fetch [--repo ORG/NAME] [--revision REV] [--cache-dir DIR]\n"
    "\n"
    "info: prints where the model was found (--model, $RADDINO_MODEL or the Hugging Face\n"
    "cache, with its revision), its configuration, preprocessing, tensor and parameter counts\n"
    "and the sha256 of its weights file.\n"
    "\n"
    "fetch: downloads config.json, preprocessor_config.json and model.safetensors from the\n"
    "Hugging Face Hub ($HF_ENDPOINT, default https://huggingface.co) into the Hugging Face\n"
    "cache, shared with the Python tools; files already there are not downloaded again, and a\n"
    "broken download resumes where it stopped. Sends $HF_TOKEN (or the token\n"
    "'huggingface-cli login' saved) for gated or private repositories. With HF_HUB_OFFLINE=1\n"
    "it only checks the cache. Prints the model folder on stdout.\n"
    "\n"
    "info options:\n"
    "  --json             one JSON object instead of text\n"
    CLI_MODEL_HELP
    "fetch options:\n"
    CLI_HUB_HELP
    "  -h, --help         this help\n";

static const char *source_name(cli_model_source s)
{
    return s == CLI_MODEL_FROM_FLAG  ? "flag"
           : s == CLI_MODEL_FROM_ENV ? "env"
           : s == CLI_MODEL_FROM_DB  ? "database"
                                     : "cache";
}

static void print_location_text(const cli_model_location *loc)
{
    printf("model:          %s\n", loc->dir);
    switch (loc->source) {
    case CLI_MODEL_FROM_FLAG: printf("found by:       --model\n"); break;
    case CLI_MODEL_FROM_ENV: printf("found by:       $RADDINO_MODEL\n"); break;
    case CLI_MODEL_FROM_CACHE:
        printf("found by:       Hugging Face cache %s\n", loc->hub.cache_dir);
        printf("repo:           %s\n", loc->hub.repo);
        printf("revision:       %s (commit %s)\n", loc->hub.revision, loc->hub.commit);
        break;
    case CLI_MODEL_FROM_DB: printf("found by:       the collection's record\n"); break;
    }
}

static void print_location_json(const cli_model_location *loc)
{
    fputs("\"model_dir\": ", stdout);
    cli_json_string(stdout, loc->dir);
    printf(", \"source\": \"%s\"", source_name(loc->source));
    if (loc->source == CLI_MODEL_FROM_CACHE) {
        fputs(", \"cache_dir\": ", stdout);
        cli_json_string(stdout, loc->hub.cache_dir);
        fputs(", \"repo\": ", stdout);
        cli_json_string(stdout, loc->hub.repo);
        fputs(", \"revision\": ", stdout);
        cli_json_string(stdout, loc->hub.revision);
        printf(", \"commit\": \"%s\"", loc->hub.commit);
    } else {
        fputs(", \"cache_dir\": null, \"repo\": null, \"revision\": null, \"commit\": null",
              stdout);
    }
    fputs(", ", stdout);
}

static void print_text(const cli_model_location *loc, const raddino_model_info *i,
                       const char *sha256)
{
    print_location_text(loc);
    printf("weights:        %s\n", i->weights_path);
    printf("layout:         %s\n", i->layout == RADDINO_LAYOUT_HF
                                       ? "Hugging Face (model.safetensors names)"
                                       : "DINOv2 backbone (backbone_compatible names)");
    printf("sha256:         %s\n", sha256);
    printf("kernel:         %s\n", i->kernel);
    printf("tensors:        %llu\n", (unsigned long long)i->n_tensors);
    printf("parameters:     %llu (%llu used by the encoder; the rest is mask_token)\n",
           (unsigned long long)i->n_file_parameters, (unsigned long long)i->n_parameters);
    printf("hidden:         %d\n", i->hidden);
    printf("layers:         %d\n", i->layers);
    printf("heads:          %d (head dim %d)\n", i->heads, i->hidden / i->heads);
    printf("mlp:            %d\n", i->mlp);
    printf("patch:          %d\n", i->patch);
    printf("image_size:     %d\n", i->image_size);
    printf("layer_norm_eps: %g\n", i->layer_norm_eps);
    printf("input:          %dx%d (grid %dx%d, %d tokens)\n", i->input_width, i->input_height,
           i->grid_width, i->grid_height, i->tokens);
    if (i->do_resize) {
        if (i->resize_shortest_edge > 0)
            printf("resize:         shortest edge %d, bicubic\n", i->resize_shortest_edge);
        else
            printf("resize:         %dx%d, bicubic\n", i->resize_width, i->resize_height);
    } else {
        printf("resize:         off\n");
    }
    if (i->do_center_crop) printf("center crop:    %dx%d\n", i->crop_width, i->crop_height);
    else printf("center crop:    off\n");
    printf("rescale:        %s (factor %.17g)\n", i->do_rescale ? "on" : "off", i->rescale_factor);
    printf("normalize:      %s (mean %g %g %g, std %g %g %g)\n", i->do_normalize ? "on" : "off",
           i->image_mean[0], i->image_mean[1], i->image_mean[2], i->image_std[0], i->image_std[1],
           i->image_std[2]);
}

static void print_json(const cli_model_location *loc, const raddino_model_info *i,
                       const char *sha256)
{
    fputc('{', stdout);
    print_location_json(loc);
    fputs("\"weights\": ", stdout);
    cli_json_string(stdout, i->weights_path);
    printf(", \"layout\": \"%s\", \"sha256\": \"%s\", \"tensors\": %llu, \"parameters\": %llu"
           ", \"encoder_parameters\": %llu",
           i->layout == RADDINO_LAYOUT_HF ? "hf" : "backbone", sha256,
           (unsigned long long)i->n_tensors, (unsigned long long)i->n_file_parameters,
           (unsigned long long)i->n_parameters);
    printf(", \"hidden_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d"
           ", \"mlp_size\": %d, \"patch_size\": %d, \"image_size\": %d, \"layer_norm_eps\": %g",
           i->hidden, i->layers, i->heads, i->mlp, i->patch, i->image_size, i->layer_norm_eps);
    printf(", \"input_height\": %d, \"input_width\": %d, \"tokens\": %d", i->input_height,
           i->input_width, i->tokens);
    printf(", \"do_resize\": %s, \"shortest_edge\": %d, \"do_center_crop\": %s, \"crop_height\": "
           "%d, \"crop_width\": %d, \"do_rescale\": %s, \"rescale_factor\": %.17g, "
           "\"do_normalize\": %s, \"image_mean\": [%.9g, %.9g, %.9g], \"image_std\": [%.9g, "
           "%.9g, %.9g]}\n",
           i->do_resize ? "true" : "false", i->resize_shortest_edge,
           i->do_center_crop ? "true" : "false", i->crop_height, i->crop_width,
           i->do_rescale ? "true" : "false", i->rescale_factor,
           i->do_normalize ? "true" : "false", i->image_mean[0], i->image_mean[1],
           i->image_mean[2], i->image_std[0], i->image_std[1], i->image_std[2]);
}

/* ---- model fetch ------------------------------------------------------------------------ */

/* Progress on stderr: a redrawn bar on a terminal, occasional plain lines otherwise. */
typedef struct {
    bool tty;
    double start, last;         /* seconds (monotonic) */
    uint64_t start_bytes;       /* bytes already there when the transfer began (resume) */
    bool bar_drawn;
} fetch_view;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Erases the bar: the line that follows (done, retry, error) takes its place. */
static void end_bar(fetch_view *v)
{
    if (v->bar_drawn) fputs("\r\033[K", stderr);
    v->bar_drawn = false;
}

static void draw_progress(fetch_view *v, const raddino_fetch_progress *p, double t)
{
    double elapsed = t - v->start;
    double rate = elapsed > 0 ? (p->done - v->start_bytes) / elapsed : 0;
    double pct = p->total ? 100.0 * p->done / p->total : 100.0;
    if (v->tty) {
        char eta[32] = "--:--";
        if (rate > 0) {
            long s = (long)((p->total - p->done) / rate);
            snprintf(eta, sizeof eta, "%ld:%02ld", s / 60, s % 60);
        }
        fprintf(stderr, "\r%-24s %3.0f%% %9.1f / %.1f MB  %6.1f MB/s  ETA %s\033[K", p->file, pct,
                p->done / 1e6, p->total / 1e6, rate / 1e6, eta);
        v->bar_drawn = true;
    } else {
        fprintf(stderr, "%s: %.1f of %.1f MB (%.0f%%), %.1f MB/s\n", p->file, p->done / 1e6,
                p->total / 1e6, pct, rate / 1e6);
    }
    fflush(stderr);
}

static void on_fetch_progress(void *user, const raddino_fetch_progress *p)
{
    fetch_view *v = user;
    double t = now_seconds();
    switch (p->event) {
    case RADDINO_FETCH_START:
        v->start = v->last = t;
        v->start_bytes = p->done;
        if (p->done)
            fprintf(stderr, "%s: resuming at %llu of %llu bytes\n", p->file,
                    (unsigned long long)p->done, (unsigned long long)p->total);
        else
            fprintf(stderr, "%s: downloading %llu bytes\n", p->file, (unsigned long long)p->total);
        break;
    case RADDINO_FETCH_PROGRESS:
        /* A terminal is redrawn 10 times a second; a log gets a line every 10 seconds. */
        if (t - v->last >= (v->tty ? 0.1 : 10.0) || (v->tty && p->done == p->total)) {
            v->last = t;
            draw_progress(v, p, t);
        }
        break;
    case RADDINO_FETCH_RETRY:
        end_bar(v);
        fprintf(stderr, "%s: %s; resuming at %llu of %llu bytes\n", p->file, p->message,
                (unsigned long long)p->done, (unsigned long long)p->total);
        break;
    case RADDINO_FETCH_DONE:
        end_bar(v);
        fprintf(stderr, "%s: %llu bytes in %.1f s, sha256 %s verified\n", p->file,
                (unsigned long long)p->total, t - v->start, p->sha256);
        break;
    case RADDINO_FETCH_CACHED:
        fprintf(stderr, "%s: already in the cache (%llu bytes)\n", p->file,
                (unsigned long long)p->total);
        break;
    case RADDINO_FETCH_NOTE:
        end_bar(v);
        if (p->file) fprintf(stderr, "%s: %s\n", p->file, p->message);
        else fprintf(stderr, "%s\n", p->message);
        break;
    }
}

static const char fetch_usage[] =
    "usage: raddino model fetch [--repo ORG/NAME] [--revision REV] [--cache-dir DIR]\n"
    "\n"
    "Downloads the model into the Hugging Face cache (see 'raddino model --help').\n"
    "\n"
    "options:\n"
    CLI_HUB_HELP
    "  -h, --help         this help\n";

static int model_fetch(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"repo", required_argument, NULL, CLI_OPT_REPO},
        {"revision", required_argument, NULL, CLI_OPT_REVISION},
        {"cache-dir", required_argument, NULL, CLI_OPT_CACHE_DIR},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    raddino_fetch_params params = raddino_fetch_default_params();
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (opt) {
        case CLI_OPT_REPO: params.repo = optarg; break;
        case CLI_OPT_REVISION: params.revision = optarg; break;
        case CLI_OPT_CACHE_DIR: params.cache_dir = optarg; break;
        case 'h': fputs(fetch_usage, stdout); return EXIT_OK;
        default:
            cli_error("model fetch: unknown or incomplete option '%s'", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        cli_error("model fetch: unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    fetch_view view = {isatty(STDERR_FILENO) == 1, 0, 0, 0, false};
    params.progress = on_fetch_progress;
    params.user = &view;
    raddino_hub_model m;
    raddino_status st = raddino_hub_fetch(&params, &m);
    end_bar(&view);
    if (st.code) {
        cli_status_error(&st);
        return st.code == RADDINO_ERR_ARGUMENT ? EXIT_USAGE : EXIT_INPUT_FAILED;
    }
    fprintf(stderr, "%s at revision %s (commit %s) is in %s\n", m.repo, m.revision, m.commit,
            m.cache_dir);
    printf("%s\n", m.model_dir);
    return EXIT_OK;
}

int cmd_model(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(model_usage, stdout);
        return EXIT_OK;
    }
    if (argc >= 2 && !strcmp(argv[1], "fetch")) return model_fetch(argc - 1, argv + 1);
    if (argc < 2 || strcmp(argv[1], "info") != 0) {
        cli_error("model: expected 'raddino model info' or 'raddino model fetch' (see raddino "
                  "model --help)");
        return EXIT_USAGE;
    }
    static const struct option long_options[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'},
        CLI_MODEL_LONG_OPTIONS, {NULL, 0, NULL, 0}};
    cli_model_options model = {0};
    bool json = false;
    int opt, exit_code = -1;
    argc--, argv++;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (cli_model_option(&model, opt, optarg, &exit_code)) {
            if (exit_code >= 0) return exit_code;
            continue;
        }
        switch (opt) {
        case 'j': json = true; break;
        case 'h': fputs(model_usage, stdout); return EXIT_OK;
        default:
            cli_error("model info: unknown or incomplete option '%s'", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        cli_error("model info: unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    cli_model_location loc;
    raddino_encoder *enc = cli_open_encoder_at(&model, &loc, &exit_code);
    if (!enc) return exit_code;
    raddino_model_info info;
    raddino_encoder_info(enc, &info);
    raddino_model_identity id;
    raddino_status st = raddino_encoder_identity(enc, &id);
    const char *sha256 = id.weights_sha256;
    if (!st.code) {
        if (json) print_json(&loc, &info, sha256);
        else print_text(&loc, &info, sha256);
    } else {
        cli_status_error(&st);
    }
    raddino_encoder_close(enc);
    return st.code ? EXIT_INPUT_FAILED : EXIT_OK;
}
