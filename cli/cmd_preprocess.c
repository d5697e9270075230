/* cmd_preprocess.c — raddino preprocess: the network input of one image, as a PNG crop and
 * optionally as the normalised [3, H, W] tensor. */
#include "cli.h"
#include "npy.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#pragma GCC diagnostic pop

static const char preprocess_usage[] =
    "usage: raddino preprocess IMAGE --out CROP.png [--pixels FILE.npy] [OPTIONS]\n"
    "\n"
    "Decodes IMAGE (PNG, JPEG, BMP, PNM, TGA or DICOM) and prepares it as the model's\n"
    "preprocessor_config.json says (RGB, Pillow bicubic resize of the shortest edge, centre\n"
    "crop), writing the 8-bit RGB crop as PNG.\n"
    "\n"
    "options:\n"
    "  --out FILE.png     the resized and cropped RGB image (required)\n"
    "  --pixels FILE.npy  also the network input: float32 [3, H, W] after rescale + normalise\n"
    CLI_MODEL_HELP
    "  -h, --help         this help\n";

/* PNG through stb_image_write, to a temporary file renamed into place. */
static raddino_status write_png(const char *path, const uint8_t *rgb, int w, int h)
{
    raddino_status st = {RADDINO_OK, ""};
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        st.code = RADDINO_ERR_ARGUMENT;
        snprintf(st.message, sizeof st.message, "%s: path too long", path);
        return st;
    }
    if (!stbi_write_png(tmp, w, h, 3, rgb, w * 3) || rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        st.code = RADDINO_ERR_IO;
        snprintf(st.message, sizeof st.message, "%s: cannot write PNG: %s", path,
                 saved ? strerror(saved) : "write failed");
    }
    return st;
}

static raddino_status preprocess_one(raddino_encoder *enc, const raddino_load_options *load,
                                     const char *image_path, const char *out,
                                     const char *pixels_out)
{
    raddino_model_info info;
    raddino_encoder_info(enc, &info);
    raddino_image img;
    raddino_status st = raddino_image_load_ex(image_path, load, &img);
    if (st.code) return st;
    if (info.input_height == 0) {
        raddino_image_free(&img);
        st.code = RADDINO_ERR_UNSUPPORTED;
        snprintf(st.message, sizeof st.message,
                 "%s: the model has no fixed input size (no centre crop)", image_path);
        return st;
    }
    int w = info.input_width, h = info.input_height;
    uint8_t *crop = malloc((size_t)w * h * 3);
    float *pixels = pixels_out ? malloc((size_t)w * h * 3 * sizeof(float)) : NULL;
    if (!crop || (pixels_out && !pixels)) {
        st.code = RADDINO_ERR_NOMEM;
        snprintf(st.message, sizeof st.message, "%s: out of memory", image_path);
    }
    if (!st.code) st = raddino_preprocess(enc, &img, crop, pixels);
    if (!st.code) st = write_png(out, crop, w, h);
    if (!st.code && pixels_out) {
        int64_t shape[3] = {3, h, w};
        st = npy_write_f32(pixels_out, pixels, 3, shape);
    }
    free(crop);
    free(pixels);
    raddino_image_free(&img);
    return st;
}

int cmd_preprocess(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"out", required_argument, NULL, 'o'}, {"pixels", required_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},      CLI_MODEL_LONG_OPTIONS,
        {NULL, 0, NULL, 0}};
    cli_model_options model = {0};
    const char *out = NULL, *pixels_out = NULL;
    int opt, exit_code = -1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "ho:", long_options, NULL)) != -1) {
        if (cli_model_option(&model, opt, optarg, &exit_code)) {
            if (exit_code >= 0) return exit_code;
            continue;
        }
        switch (opt) {
        case 'o': out = optarg; break;
        case 'x': pixels_out = optarg; break;
        case 'h': fputs(preprocess_usage, stdout); return EXIT_OK;
        default:
            cli_error("preprocess: unknown or incomplete option '%s' (see raddino preprocess "
                      "--help)", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !out) {
        cli_error("preprocess: give exactly one IMAGE and --out CROP.png (see raddino "
                  "preprocess --help)");
        return EXIT_USAGE;
    }
    raddino_encoder *enc = cli_open_encoder(&model, &exit_code);
    if (!enc) return exit_code;
    raddino_load_options load = cli_load_options(&model);
    raddino_status st = preprocess_one(enc, &load, argv[optind], out, pixels_out);
    raddino_encoder_close(enc);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    return EXIT_OK;
}
