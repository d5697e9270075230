/* cmd_model.c — raddino model info: what a model folder holds. */
#include "cli.h"

#include <getopt.h>
#include <string.h>

static const char model_usage[] =
    "usage: raddino model info [OPTIONS]\n"
    "\n"
    "Prints the model's configuration, preprocessing, tensor and parameter counts and the\n"
    "sha256 of its weights file.\n"
    "\n"
    "options:\n"
    "  --json             one JSON object instead of text\n"
    CLI_MODEL_HELP
    "  -h, --help         this help\n";

static void print_text(const raddino_model_info *i, const char *sha256)
{
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

static void print_json(const raddino_model_info *i, const char *sha256)
{
    fputs("{\"weights\": ", stdout);
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

int cmd_model(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(model_usage, stdout);
        return EXIT_OK;
    }
    if (argc < 2 || strcmp(argv[1], "info") != 0) {
        cli_error("model: expected 'raddino model info' (see raddino model --help)");
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
    raddino_encoder *enc = cli_open_encoder(&model, &exit_code);
    if (!enc) return exit_code;
    raddino_model_info info;
    raddino_encoder_info(enc, &info);
    char sha256[65];
    raddino_status st = cli_file_sha256(info.weights_path, sha256);
    if (!st.code) {
        if (json) print_json(&info, sha256);
        else print_text(&info, sha256);
    } else {
        cli_status_error(&st);
    }
    raddino_encoder_close(enc);
    return st.code ? EXIT_INPUT_FAILED : EXIT_OK;
}
