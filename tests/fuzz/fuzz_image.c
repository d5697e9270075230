/* fuzz_image.c — image decoding (JPEG through libjpeg-turbo, PNG through libpng, BMP, PNM and
 * TGA through our own decoders in image_formats.c) followed by RAD-DINO's preprocessing (shortest edge 518, bicubic, centre crop
 * 518x518, normalise). The pixel cap is kept at 4 megapixels so that the fuzzer explores
 * headers and bitstreams rather than allocating. */
#include "encoder_internal.h"
#include "fuzz.h"

#include <math.h>
#include <string.h>

#define FUZZ_MAX_PIXELS 4000000ull

/* RAD-DINO's preprocessor_config.json (microsoft/rad-dino). */
static const char rad_dino_preprocess[] =
    "{\"crop_size\": {\"height\": 518, \"width\": 518}, \"do_center_crop\": true, "
    "\"do_convert_rgb\": true, \"do_normalize\": true, \"do_rescale\": true, "
    "\"do_resize\": true, \"image_mean\": [0.5307, 0.5307, 0.5307], "
    "\"image_std\": [0.2583, 0.2583, 0.2583], \"resample\": 3, "
    "\"rescale_factor\": 0.00392156862745098, \"size\": {\"shortest_edge\": 518}}";

static int check_image(const raddino_image *img)
{
    FUZZ_REQUIRE(img->rgb != NULL && img->width > 0 && img->height > 0);
    FUZZ_REQUIRE((uint64_t)img->width * (uint64_t)img->height <= FUZZ_MAX_PIXELS);
    FUZZ_REQUIRE(img->source_bits == 8 || img->source_bits == 16);
    FUZZ_REQUIRE(img->source_channels >= 1 && img->source_channels <= 4);
    FUZZ_REQUIRE(img->format != NULL);
    size_t n = (size_t)img->width * (size_t)img->height * 3;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) sum += img->rgb[i];
    volatile unsigned sink = sum;   /* keeps the reads */
    (void)sink;
    return 0;
}

static int preprocess(const raddino_image *img)
{
    preprocess_config cfg;
    raddino_status st =
        config_parse_preprocess(rad_dino_preprocess, sizeof rad_dino_preprocess - 1, "pre", &cfg);
    FUZZ_REQUIRE(!st.code);
    int w, h;
    preprocess_output_size(&cfg, img->width, img->height, &w, &h);
    FUZZ_REQUIRE(w == 518 && h == 518);
    uint8_t *crop = malloc((size_t)w * h * 3);
    float *pixels = malloc((size_t)w * h * 3 * sizeof *pixels);
    int rc = 0;
    if (crop && pixels) {
        st = preprocess_crop(&cfg, img, crop, w, h);
        /* Any image under the cap has a representable resize at these settings. */
        if (st.code && st.code != RADDINO_ERR_NOMEM) {
            fprintf(stderr, "fuzz: preprocess refused a %dx%d image: %s\n", img->width,
                    img->height, st.message);
            rc = -1;
        }
        if (!st.code) {
            preprocess_normalize(&cfg, crop, w, h, pixels);
            for (size_t i = 0; i < (size_t)w * h * 3 && !rc; i++)
                if (!isfinite(pixels[i])) rc = -1;
        }
    }
    free(crop);
    free(pixels);
    return rc;
}

int fuzz_image(const uint8_t *data, size_t size)
{
    raddino_image img;
    raddino_status st = raddino_image_load_memory(data, size, FUZZ_NAME, FUZZ_MAX_PIXELS, &img);
    if (st.code) {
        FUZZ_REQUIRE(img.rgb == NULL);
        return fuzz_check_error(&st);
    }
    int rc = check_image(&img);
    if (!rc) rc = preprocess(&img);
    raddino_image_free(&img);
    return rc;
}

FUZZ_ENTRY(fuzz_image)
