/* test_preprocess.c — Pillow-exact resize + centre crop against every golden crop, the pixel
 * tensor against expected/pixels, and the edge cases (1x1, zero padding, no resize, no crop). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder_internal.h"
#include "test_util.h"

/* An independent stb_image copy to read the expected crops (8-bit RGB PNGs). */
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wstringop-overflow" /* false positives at -O2 */
#include <stb_image.h>
#pragma GCC diagnostic pop

#define SIDE 518

/* The golden preprocessor_config.json, by hand (config.c is written in parallel). */
static preprocess_config golden_config(void)
{
    preprocess_config c;
    memset(&c, 0, sizeof c);
    c.do_convert_rgb = c.do_resize = c.do_center_crop = c.do_rescale = c.do_normalize = true;
    c.resize_shortest_edge = SIDE;
    c.resample = 3;
    c.crop_height = c.crop_width = SIDE;
    c.rescale_factor = 1 / 255.0;
    for (int i = 0; i < 3; i++) {
        c.mean[i] = 0.5307f;
        c.std[i] = 0.2583f;
    }
    return c;
}

/* Resized sizes from GOLDEN_README.md, in test_golden_images order. */
static const int resized_wh[][2] = {
    {518, 589}, {518, 518}, {1597, 518}, {518, 518}, {25900, 518}, {518, 690},
    {518, 518}, {518, 604}, {518, 621}, {518, 647}, {647, 518}, {690, 518},
    {690, 518}, {518, 518}, {518, 518}, {518, 523}, {518, 550},
};
#define N_GOLDEN ((int)(sizeof resized_wh / sizeof resized_wh[0]))

static void load_image(const char *file, raddino_image *img)
{
    raddino_status st = raddino_image_load(test_path("images/%s", file), 0, img);
    ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
}

static uint8_t *load_expected_crop(const char *file)
{
    size_t size;
    void *bytes = test_read_file(test_path("expected/crops/%s.png", test_golden_key(file)), &size);
    int w, h, n;
    uint8_t *rgb = stbi_load_from_memory(bytes, (int)size, &w, &h, &n, 3);
    free(bytes);
    ck_assert_ptr_nonnull(rgb);
    ck_assert_int_eq(w, SIDE);
    ck_assert_int_eq(h, SIDE);
    return rgb;
}

/* Reports the first difference and how many bytes differ. */
static void assert_same_crop(const uint8_t *got, const uint8_t *want, int w, int h,
                             const char *what)
{
    size_t n = (size_t)w * (size_t)h * 3, bad = 0, first = 0;
    int worst = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            if (!bad) first = i;
            bad++;
            int d = abs(got[i] - want[i]);
            if (d > worst) worst = d;
        }
    ck_assert_msg(bad == 0, "%s: %zu of %zu bytes differ (max %d), first at y %zu x %zu c %zu",
                  what, bad, n, worst, first / 3 / (size_t)w, first / 3 % (size_t)w, first % 3);
}

START_TEST(golden_crop)
{
    const char *file = test_golden_images[_i];
    preprocess_config cfg = golden_config();
    raddino_image img;
    load_image(file, &img);
    int ow, oh;
    preprocess_output_size(&cfg, img.width, img.height, &ow, &oh);
    ck_assert_int_eq(ow, SIDE);
    ck_assert_int_eq(oh, SIDE);
    uint8_t *crop = malloc((size_t)SIDE * SIDE * 3);
    raddino_status st = preprocess_crop(&cfg, &img, crop, ow, oh);
    ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
    uint8_t *want = load_expected_crop(file);
    assert_same_crop(crop, want, SIDE, SIDE, file);
    stbi_image_free(want);
    free(crop);
    raddino_image_free(&img);
}
END_TEST

/* Without the crop, the output is the resized image: the README's sizes. */
START_TEST(golden_resized_size)
{
    preprocess_config cfg = golden_config();
    cfg.do_center_crop = false;
    raddino_image img;
    load_image(test_golden_images[_i], &img);
    int ow, oh;
    preprocess_output_size(&cfg, img.width, img.height, &ow, &oh);
    ck_assert_int_eq(ow, resized_wh[_i][0]);
    ck_assert_int_eq(oh, resized_wh[_i][1]);
    raddino_image_free(&img);
}
END_TEST

/* The full resize (no crop), cropped here at the README's offsets, equals the golden crop. */
START_TEST(resize_without_crop)
{
    const char *files[] = {"gray8_300x400.png", "rgb8_640x480.png", "xray_mhh_0a7faa2a.png"};
    const int top_left[][2] = {{86, 0}, {0, 86}, {2, 0}};
    preprocess_config cfg = golden_config();
    cfg.do_center_crop = false;
    raddino_image img;
    load_image(files[_i], &img);
    int ow, oh;
    preprocess_output_size(&cfg, img.width, img.height, &ow, &oh);
    uint8_t *full = malloc((size_t)ow * (size_t)oh * 3);
    raddino_status st = preprocess_crop(&cfg, &img, full, ow, oh);
    ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
    uint8_t *mine = malloc((size_t)SIDE * SIDE * 3);
    for (int y = 0; y < SIDE; y++)
        memcpy(mine + (size_t)y * SIDE * 3,
               full + ((size_t)(y + top_left[_i][0]) * (size_t)ow + (size_t)top_left[_i][1]) * 3,
               (size_t)SIDE * 3);
    uint8_t *want = load_expected_crop(files[_i]);
    assert_same_crop(mine, want, SIDE, SIDE, files[_i]);
    stbi_image_free(want);
    free(mine);
    free(full);
    raddino_image_free(&img);
}
END_TEST

/* size = {height, width} instead of shortest_edge: a square image resizes the same way. */
START_TEST(resize_to_fixed_size)
{
    preprocess_config cfg = golden_config();
    cfg.resize_shortest_edge = 0;
    cfg.resize_height = cfg.resize_width = SIDE;
    raddino_image img;
    load_image("xray_nih_00000075_000.png", &img);
    uint8_t *crop = malloc((size_t)SIDE * SIDE * 3);
    raddino_status st = preprocess_crop(&cfg, &img, crop, SIDE, SIDE);
    ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
    uint8_t *want = load_expected_crop("xray_nih_00000075_000.png");
    assert_same_crop(crop, want, SIDE, SIDE, "fixed size");
    stbi_image_free(want);
    free(crop);
    raddino_image_free(&img);
}
END_TEST

START_TEST(golden_pixels)
{
    const char *files[] = {"xray_nih_00000075_000.png", "rgb8_640x480.png"};
    preprocess_config cfg = golden_config();
    uint8_t *crop = load_expected_crop(files[_i]);
    size_t n;
    float *want = test_read_f32(
        test_path("expected/pixels/%s.pixel_values.f32", test_golden_key(files[_i])), &n);
    ck_assert_uint_eq(n, (size_t)3 * SIDE * SIDE);
    float *got = malloc(n * sizeof *got);
    preprocess_normalize(&cfg, crop, SIDE, SIDE, got);
    test_diff d = test_compare_f32(got, want, n, n);
    ck_assert_msg(d.max_abs == 0.0, "max abs %g", d.max_abs);
    ck_assert_mem_eq(got, want, n * sizeof *got);
    free(got);
    free(want);
    stbi_image_free(crop);
}
END_TEST

/* Each switch changes the table the way transformers does. */
START_TEST(normalize_switches)
{
    preprocess_config cfg = golden_config();
    cfg.mean[1] = 0.25f;
    cfg.std[2] = 2.0f;
    const uint8_t px[3 * 2] = {0, 126, 255, 1, 2, 3};
    float out[6];
    preprocess_normalize(&cfg, px, 2, 1, out);
    /* planar: R0 R1 G0 G1 B0 B1 */
    ck_assert(out[0] == (0.0f - 0.5307f) / 0.2583f);
    ck_assert(out[2] == ((float)(126 * (1 / 255.0)) - 0.25f) / 0.2583f);
    ck_assert(out[5] == ((float)(3 * (1 / 255.0)) - 0.5307f) / 2.0f);
    cfg.do_normalize = false;
    preprocess_normalize(&cfg, px, 2, 1, out);
    ck_assert(out[4] == 1.0f && out[1] == (float)(1 / 255.0));
    cfg.do_rescale = false;
    preprocess_normalize(&cfg, px, 2, 1, out);
    ck_assert(out[2] == 126.0f && out[5] == 3.0f);
}
END_TEST

static raddino_image make_image(int w, int h, uint8_t (*fill)(int x, int y, int c))
{
    raddino_image img;
    memset(&img, 0, sizeof img);
    img.width = w;
    img.height = h;
    img.rgb = malloc((size_t)w * (size_t)h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                img.rgb[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] = fill(x, y, c);
    return img;
}

static uint8_t fill_200(int x, int y, int c) { return (void)x, (void)y, (void)c, 200; }
static uint8_t fill_code(int x, int y, int c) { return (uint8_t)(1 + x + 16 * y + 100 * c); }

/* A 1x1 image (and any flat image) stays flat through the fixed-point resize. */
START_TEST(one_pixel)
{
    preprocess_config cfg = golden_config();
    const int sizes[][2] = {{1, 1}, {7, 9}, {1, 3}};
    for (int s = 0; s < 3; s++) {
        raddino_image img = make_image(sizes[s][0], sizes[s][1], fill_200);
        uint8_t *crop = malloc((size_t)SIDE * SIDE * 3);
        raddino_status st = preprocess_crop(&cfg, &img, crop, SIDE, SIDE);
        ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
        for (size_t i = 0; i < (size_t)SIDE * SIDE * 3; i++)
            if (crop[i] != 200)
                ck_abort_msg("%dx%d: byte %zu is %d", img.width, img.height, i, crop[i]);
        free(crop);
        free(img.rgb);
    }
}
END_TEST

/* transformers center_crop: offsets floor((size - crop) / 2); a smaller image sits at
 * ceil((crop - size) / 2) in a zero canvas. No resize here, so the values are the input's. */
static void check_crop(int w, int h, int cw, int ch)
{
    preprocess_config cfg = golden_config();
    cfg.do_resize = false;
    cfg.resample = 0;   /* ignored without a resize */
    cfg.crop_width = cw;
    cfg.crop_height = ch;
    raddino_image img = make_image(w, h, fill_code);
    int ow, oh;
    preprocess_output_size(&cfg, w, h, &ow, &oh);
    ck_assert(ow == cw && oh == ch);
    uint8_t *crop = malloc((size_t)cw * (size_t)ch * 3);
    memset(crop, 0xAB, (size_t)cw * (size_t)ch * 3);
    raddino_status st = preprocess_crop(&cfg, &img, crop, cw, ch);
    ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
    /* transformers' own arithmetic, written out. */
    int top = h >= ch ? (h - ch) / 2 : -((ch - h + 1) / 2);
    int left = w >= cw ? (w - cw) / 2 : -((cw - w + 1) / 2);
    for (int y = 0; y < ch; y++)
        for (int x = 0; x < cw; x++)
            for (int c = 0; c < 3; c++) {
                int sy = y + top, sx = x + left;
                int want = sy >= 0 && sy < h && sx >= 0 && sx < w ? fill_code(sx, sy, c) : 0;
                int got = crop[((size_t)y * (size_t)cw + (size_t)x) * 3 + (size_t)c];
                if (got != want)
                    ck_abort_msg("%dx%d crop %dx%d: (%d,%d,%d) = %d, want %d", w, h, cw, ch, x, y,
                                 c, got, want);
            }
    free(crop);
    free(img.rgb);
}

START_TEST(crop_and_pad)
{
    check_crop(4, 6, 10, 10);   /* padding both ways, even margins */
    check_crop(5, 3, 10, 10);   /* odd margins: image at ceil(5/2) = 3, ceil(7/2) = 4 */
    check_crop(20, 16, 10, 10); /* plain crop: top 3, left 5 */
    check_crop(21, 4, 10, 7);   /* crop in x (odd margin floors), pad in y */
    check_crop(8, 8, 8, 8);     /* identity */
}
END_TEST

/* Neither resize nor crop: the image itself. */
START_TEST(no_resize_no_crop)
{
    preprocess_config cfg = golden_config();
    cfg.do_resize = cfg.do_center_crop = false;
    raddino_image img = make_image(9, 5, fill_code);
    int ow, oh;
    preprocess_output_size(&cfg, 9, 5, &ow, &oh);
    ck_assert(ow == 9 && oh == 5);
    uint8_t crop[9 * 5 * 3];
    raddino_status st = preprocess_crop(&cfg, &img, crop, ow, oh);
    ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
    ck_assert_mem_eq(crop, img.rgb, sizeof crop);
    free(img.rgb);
}
END_TEST

/* A very long image: Pillow would make 518 x 5180000; we compute only the crop, quickly. */
START_TEST(long_image)
{
    preprocess_config cfg = golden_config();
    raddino_image img = make_image(1, 10000, fill_200);
    preprocess_config nocrop = cfg;
    nocrop.do_center_crop = false;
    int ow, oh;
    preprocess_output_size(&nocrop, 1, 10000, &ow, &oh);
    ck_assert(ow == SIDE && oh == SIDE * 10000);
    uint8_t *crop = malloc((size_t)SIDE * SIDE * 3);
    raddino_status st = preprocess_crop(&cfg, &img, crop, SIDE, SIDE);
    ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
    ck_assert_int_eq(crop[0], 200);
    ck_assert_int_eq(crop[(size_t)SIDE * SIDE * 3 - 1], 200);
    free(crop);
    free(img.rgb);
}
END_TEST

START_TEST(bad_arguments)
{
    preprocess_config cfg = golden_config();
    raddino_image img = make_image(4, 4, fill_code);
    uint8_t crop[SIDE * 3];
    raddino_status st = preprocess_crop(&cfg, &img, crop, SIDE, 1);
    ck_assert_int_eq(st.code, RADDINO_ERR_ARGUMENT);
    cfg.resample = 2;
    st = preprocess_crop(&cfg, &img, crop, SIDE, SIDE);
    ck_assert_int_eq(st.code, RADDINO_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(st.message, "resample 2"));
    free(img.rgb);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("preprocess");
    TCase *tg = tcase_create("golden");
    tcase_set_timeout(tg, 300);
    tcase_add_loop_test(tg, golden_crop, 0, N_GOLDEN);
    tcase_add_loop_test(tg, golden_resized_size, 0, N_GOLDEN);
    tcase_add_loop_test(tg, resize_without_crop, 0, 3);
    tcase_add_test(tg, resize_to_fixed_size);
    tcase_add_loop_test(tg, golden_pixels, 0, 2);
    suite_add_tcase(s, tg);
    TCase *tu = tcase_create("unit");
    tcase_set_timeout(tu, 120);
    tcase_add_test(tu, normalize_switches);
    tcase_add_test(tu, one_pixel);
    tcase_add_test(tu, crop_and_pad);
    tcase_add_test(tu, no_resize_no_crop);
    tcase_add_test(tu, long_image);
    tcase_add_test(tu, bad_arguments);
    suite_add_tcase(s, tu);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
