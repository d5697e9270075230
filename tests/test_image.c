/* test_image.c — decoding: every golden image, the 16-bit rule, Pillow's RGB rules, and the
 * errors hostile or broken files must give (never a crash). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "encoder_internal.h"
#include "test_util.h"

/* An independent stb_image copy, for reading the raw 16-bit samples of the golden files. */
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

typedef struct {
    const char *file;
    int w, h, bits, channels;
    const char *format;
} golden_image;

/* From GOLDEN_README.md's table (Pillow mode -> channels in the file). */
static const golden_image goldens[] = {
    {"gray16_900x1024.png", 900, 1024, 16, 1, "png"},
    {"gray8_14x14.png", 14, 14, 8, 1, "png"},
    {"gray8_1601x519.png", 1601, 519, 8, 1, "png"},
    {"gray8_1x1.png", 1, 1, 8, 1, "png"},
    {"gray8_2000x40.png", 2000, 40, 8, 1, "png"},
    {"gray8_300x400.png", 300, 400, 8, 1, "png"},
    {"gray8_518x518.png", 518, 518, 8, 1, "png"},
    {"gray8_600x700.png", 600, 700, 8, 1, "png"},
    {"gray8prog_500x600.jpg", 500, 600, 8, 1, "jpeg"},
    {"graya8_320x400.png", 320, 400, 8, 2, "png"},
    {"palette8_400x320.png", 400, 320, 8, 3, "png"},
    {"rgb8_640x480.jpg", 640, 480, 8, 3, "jpeg"},
    {"rgb8_640x480.png", 640, 480, 8, 3, "png"},
    {"xray_nih_00000075_000.png", 1024, 1024, 8, 1, "png"},
    {"xray_nih_00001369_000_rgba.png", 1024, 1024, 8, 4, "png"},
    {"xray_mhh_0a7faa2a.png", 640, 647, 8, 1, "png"},
    {"xray_rg1_chest_15bit.png", 920, 977, 16, 1, "png"},
};
#define N_GOLDEN ((int)(sizeof goldens / sizeof goldens[0]))

static bool is_grey(const raddino_image *img)
{
    size_t n = (size_t)img->width * (size_t)img->height;
    for (size_t i = 0; i < n; i++)
        if (img->rgb[3 * i] != img->rgb[3 * i + 1] || img->rgb[3 * i] != img->rgb[3 * i + 2])
            return false;
    return true;
}

START_TEST(golden_decodes)
{
    const golden_image *g = &goldens[_i];
    raddino_image img;
    raddino_status st = raddino_image_load(test_path("images/%s", g->file), 0, &img);
    ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
    ck_assert_int_eq(img.width, g->w);
    ck_assert_int_eq(img.height, g->h);
    ck_assert_int_eq(img.source_bits, g->bits);
    ck_assert_int_eq(img.source_channels, g->channels);
    ck_assert_str_eq(img.format, g->format);
    ck_assert_ptr_nonnull(img.rgb);
    /* Pillow convert("RGB"): grey modes copy the value into R, G and B. */
    if (g->channels <= 2) ck_assert_msg(is_grey(&img), "%s is not R = G = B", g->file);
    raddino_image_free(&img);
    ck_assert_ptr_null(img.rgb);
}
END_TEST

START_TEST(golden_list_is_complete)
{
    int n = 0;
    for (const char *const *p = test_golden_images; *p; p++, n++) {
        bool found = false;
        for (int i = 0; i < N_GOLDEN; i++) found |= strcmp(goldens[i].file, *p) == 0;
        ck_assert_msg(found, "%s missing from the table", *p);
    }
    ck_assert_int_eq(n, N_GOLDEN);
}
END_TEST

/* The RGBA X-ray is grey with alpha 255: dropping alpha leaves R = G = B; the LA image too. */
START_TEST(alpha_dropped)
{
    const char *files[] = {"xray_nih_00001369_000_rgba.png", "graya8_320x400.png"};
    for (int f = 0; f < 2; f++) {
        raddino_image img;
        raddino_status st = raddino_image_load(test_path("images/%s", files[f]), 0, &img);
        ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
        int w, h, n;
        size_t size;
        void *bytes = test_read_file(test_path("images/%s", files[f]), &size);
        uint8_t *raw = stbi_load_from_memory(bytes, (int)size, &w, &h, &n, 0);
        ck_assert_ptr_nonnull(raw);
        for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
            if (img.rgb[3 * i] != raw[(size_t)n * i]) ck_abort_msg("%s: pixel %zu", files[f], i);
        stbi_image_free(raw);
        free(bytes);
        raddino_image_free(&img);
    }
}
END_TEST

/* The 16-bit rule against the raw samples, and the min/max the README lists. */
static const struct {
    const char *file;
    int mn, mx;
} sixteen[] = {{"gray16_900x1024.png", 1000, 60000}, {"xray_rg1_chest_15bit.png", 6326, 31808}};

START_TEST(sixteen_bit_rule)
{
    const char *path = test_path("images/%s", sixteen[_i].file);
    size_t size;
    void *bytes = test_read_file(path, &size);
    int w, h, n;
    uint16_t *raw = stbi_load_16_from_memory(bytes, (int)size, &w, &h, &n, 1);
    ck_assert_ptr_nonnull(raw);
    raddino_image img;
    raddino_status st = raddino_image_load_memory(bytes, size, "x.png", 0, &img);
    ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
    size_t np = (size_t)w * (size_t)h;
    int mn = 65535, mx = 0;
    for (size_t i = 0; i < np; i++) {
        if (raw[i] < mn) mn = raw[i];
        if (raw[i] > mx) mx = raw[i];
    }
    ck_assert_int_eq(mn, sixteen[_i].mn);
    ck_assert_int_eq(mx, sixteen[_i].mx);
    int seen_lo = 0, seen_hi = 0;
    for (size_t i = 0; i < np; i++) {
        int want = (int)floor((raw[i] - mn) * 255.0 / (mx - mn) + 0.5);
        if (img.rgb[3 * i] != want || img.rgb[3 * i + 1] != want || img.rgb[3 * i + 2] != want)
            ck_abort_msg("pixel %zu: %d %d %d, want %d", i, img.rgb[3 * i], img.rgb[3 * i + 1],
                         img.rgb[3 * i + 2], want);
        seen_lo |= want == 0;
        seen_hi |= want == 255;
    }
    ck_assert(seen_lo && seen_hi);
    raddino_image_free(&img);
    stbi_image_free(raw);
    free(bytes);
}
END_TEST

START_TEST(scale_16_to_8_unit)
{
    const uint16_t v[] = {1000, 60000, 30500, 1001, 59999};
    uint8_t out[5];
    image_scale_16_to_8(v, 5, out);
    ck_assert_int_eq(out[0], 0);
    ck_assert_int_eq(out[1], 255);
    ck_assert_int_eq(out[2], 128);  /* 127.5 + 0.5 = 128 exactly: the rule rounds half up */
    ck_assert_int_eq(out[3], 0);
    ck_assert_int_eq(out[4], 255);
    const uint16_t flat[] = {7, 7, 7};
    uint8_t f[3] = {1, 1, 1};
    image_scale_16_to_8(flat, 3, f);
    ck_assert(f[0] == 0 && f[1] == 0 && f[2] == 0);
    const uint16_t two[] = {0, 65535, 257};
    image_scale_16_to_8(two, 3, out);
    ck_assert(out[0] == 0 && out[1] == 255 && out[2] == 1);
}
END_TEST

/* ---- errors ---- */

static void expect_error(raddino_status st, int code, const char *name, const char *needle)
{
    ck_assert_msg(st.code == code, "code %d, want %d: %s", st.code, code, st.message);
    ck_assert_msg(strstr(st.message, name) != NULL, "message lacks the name: %s", st.message);
    if (needle)
        ck_assert_msg(strstr(st.message, needle) != NULL, "message lacks '%s': %s", needle,
                      st.message);
    ck_assert_msg(strchr(st.message, '\n') == NULL, "message is not one line");
}

/* Writes bytes to a temporary file and loads it by path; *path is set first. */
static raddino_status load_bytes_file(const void *data, size_t size, const char *suffix,
                                      const char **path, raddino_image *img)
{
    *path = test_write_temp(data, size, suffix);
    return raddino_image_load(*path, 0, img);
}

#define EXPECT_FILE_ERROR(data, size, suffix, code, needle)                                    \
    do {                                                                                       \
        const char *path_;                                                                     \
        raddino_image img_;                                                                    \
        raddino_status st_ = load_bytes_file(data, size, suffix, &path_, &img_);               \
        expect_error(st_, code, path_, needle);                                                \
        ck_assert_ptr_null(img_.rgb);                                                          \
    } while (0)

START_TEST(missing_file)
{
    raddino_image img;
    const char *path = test_path("images/no_such_file.png");
    expect_error(raddino_image_load(path, 0, &img), RADDINO_ERR_IO, path, "No such file");
    ck_assert_ptr_null(img.rgb);
    const char *dir = test_temp_dir();
    expect_error(raddino_image_load(dir, 0, &img), RADDINO_ERR_IO, dir, NULL);
}
END_TEST

START_TEST(empty_file)
{
    EXPECT_FILE_ERROR("", 0, ".png", RADDINO_ERR_FORMAT, "empty");
}
END_TEST

START_TEST(random_bytes)
{
    uint8_t junk[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof junk; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (uint8_t)(x >> 24);
    }
    junk[1] = 0x7F;     /* not a TGA colour-map type: stays unrecognised for any seed */
    EXPECT_FILE_ERROR(junk, sizeof junk, ".jpg", RADDINO_ERR_FORMAT, "not a supported image");
    /* Garbage behind JPEG and PNG signatures: decoder errors, not crashes. */
    memcpy(junk, "\xFF\xD8\xFF", 3);
    EXPECT_FILE_ERROR(junk, sizeof junk, ".png", RADDINO_ERR_FORMAT, "JPEG: ");
    memcpy(junk, "\x89PNG\r\n\x1a\n", 8);
    EXPECT_FILE_ERROR(junk, sizeof junk, "", RADDINO_ERR_FORMAT, "png");
}
END_TEST

/* The first half of a golden file must be refused, not padded (Pillow: "image file is
 * truncated"). */
START_TEST(truncated)
{
    const char *files[] = {"gray8_600x700.png", "rgb8_640x480.jpg", "gray8prog_500x600.jpg",
                           "gray16_900x1024.png"};
    size_t size;
    void *bytes = test_read_file(test_path("images/%s", files[_i]), &size);
    bool jpeg = strstr(files[_i], ".jpg") != NULL;
    EXPECT_FILE_ERROR(bytes, size / 2, "", RADDINO_ERR_FORMAT, jpeg ? "JPEG: " : "png");
    free(bytes);
}
END_TEST

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return c ^ 0xFFFFFFFFu;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A valid PNG signature + IHDR (CRC correct) claiming 100000 x 100000 grey pixels. */
START_TEST(huge_png_header)
{
    uint8_t png[8 + 25 + 12] = "\x89PNG\r\n\x1a\n";
    put_be32(png + 8, 13);
    memcpy(png + 12, "IHDR", 4);
    put_be32(png + 16, 100000);
    put_be32(png + 20, 100000);
    png[24] = 8;    /* depth */
    png[25] = 0;    /* grey */
    put_be32(png + 29, crc32_png(png + 12, 17));
    put_be32(png + 33, 0);
    memcpy(png + 37, "IEND", 4);
    put_be32(png + 41, crc32_png(png + 37, 4));
    raddino_image img;
    expect_error(raddino_image_load_memory(png, sizeof png, "huge.png", 0, &img),
                 RADDINO_ERR_TOO_LARGE, "huge.png", "100000x100000 = 10000000000 pixels");
    ck_assert_ptr_null(img.rgb);
}
END_TEST

/* PNG forms the golden images lack (1/2/4-bit grey, Adam7 interlacing, palettes with tRNS,
 * grey+alpha), made by tests/data/png/make_fixtures.py: the RGB must be Pillow's, byte for
 * byte. */
static const char *png_fixtures[] = {
    "gray1_9x5", "gray2_7x3", "gray4_5x4_interlaced", "gray8_13x11_interlaced",
    "rgb8_6x9_interlaced", "palette4_7x5_trns", "palette2_5x6_interlaced", "graya8_4x3",
};

START_TEST(png_forms_match_pillow)
{
    const char *name = png_fixtures[_i];
    raddino_image img;
    raddino_status st = raddino_image_load(test_path("png/%s.png", name), 0, &img);
    ck_assert_msg(!st.code, "%s", st.message);
    size_t size;
    uint8_t *want = test_read_file(test_path("png/%s.rgb", name), &size);
    ck_assert_uint_eq(size, (size_t)img.width * img.height * 3);
    ck_assert_msg(!memcmp(img.rgb, want, size), "%s: pixels differ from Pillow's", name);
    ck_assert_str_eq(img.format, "png");
    free(want);
    raddino_image_free(&img);
}
END_TEST

/* BMP, PNM and TGA edge cases made by tests/tools/make_image_fixtures.py, with Pillow's verdict
 * in formats/cases.tsv: identical pixels to Pillow's (or raddino's 16-bit rule on them), the
 * same pixels on a second decode (nothing read from memory the decoder did not write), or a
 * one-line refusal naming the file where Pillow refuses. */
typedef struct {
    char name[64], file[80], why[200];
    bool ok;
    int w, h;
} format_case;

#define MAX_FORMAT_CASES 256
static format_case format_cases[MAX_FORMAT_CASES];
static int n_format_cases;

static void load_format_cases(void)
{
    /* Plain stdio: this runs before the suite, where Check's asserts cannot report. */
    FILE *f = fopen(test_path("formats/cases.tsv"), "rb");
    if (!f) return;     /* formats_cases_present fails */
    static char text[1 << 16];
    size_t size = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[size] = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || n_format_cases == MAX_FORMAT_CASES) continue;
        format_case *c = &format_cases[n_format_cases];
        char verdict[16];
        int got = sscanf(line, "%63[^\t]\t%79[^\t]\t%15[^\t]\t%199[^\n]", c->name, c->file,
                         verdict, c->why);
        if (got < 3) continue;
        c->ok = strcmp(verdict, "ok") == 0;
        if (c->ok && sscanf(c->why, "%d\t%d", &c->w, &c->h) != 2) continue;
        n_format_cases++;
    }
}

START_TEST(formats_match_pillow)
{
    const format_case *c = &format_cases[_i];
    size_t size;
    uint8_t *bytes = test_read_file(test_path("formats/%s", c->file), &size);
    uint8_t *exact = malloc(size);     /* no NUL past the end to hide an overread */
    memcpy(exact, bytes, size);
    free(bytes);
    raddino_image a, b;
    raddino_status st = raddino_image_load_memory(exact, size, c->file, 0, &a);
    if (!c->ok) {
        ck_assert_msg(st.code != RADDINO_OK, "%s: decoded, Pillow refuses it (%s)", c->name,
                      c->why);
        ck_assert_ptr_null(a.rgb);
        ck_assert_msg(strncmp(st.message, c->file, strlen(c->file)) == 0 &&
                      !strncmp(st.message + strlen(c->file), ": ", 2) &&
                      strlen(st.message) > strlen(c->file) + 2, "%s", st.message);
        ck_assert_msg(strchr(st.message, '\n') == NULL, "message is not one line");
        free(exact);
        return;
    }
    ck_assert_msg(st.code == RADDINO_OK, "%s: %s", c->name, st.message);
    ck_assert_int_eq(a.width, c->w);
    ck_assert_int_eq(a.height, c->h);
    size_t n = (size_t)c->w * (size_t)c->h * 3, want_size;
    uint8_t *want = test_read_file(test_path("formats/%s.rgb", c->name), &want_size);
    ck_assert_uint_eq(want_size, n);
    for (size_t i = 0; i < n; i++)
        if (a.rgb[i] != want[i])
            ck_abort_msg("%s: pixel %zu (x %zu, y %zu) channel %zu: %d, Pillow %d", c->name,
                         i / 3, i / 3 % (size_t)c->w, i / 3 / (size_t)c->w, i % 3, a.rgb[i],
                         want[i]);
    /* Run to run: a second decode gives the same bytes. */
    st = raddino_image_load_memory(exact, size, c->file, 0, &b);
    ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
    ck_assert_mem_eq(a.rgb, b.rgb, n);
    ck_assert_str_eq(a.format, c->file[0] == 'b' ? "bmp" : c->file[0] == 'p' ? "pnm" : "tga");
    ck_assert(a.source_bits == 8 || a.source_bits == 16);
    ck_assert(a.source_channels >= 1 && a.source_channels <= 4);
    raddino_image_free(&a);
    raddino_image_free(&b);
    free(want);
    free(exact);
}
END_TEST

/* The table was read (a parse failure must not pass as zero cases), and it covers each format
 * with both verdicts. */
START_TEST(formats_cases_present)
{
    ck_assert_int_ge(n_format_cases, 90);
    const char *prefix[] = {"bmp_", "pnm_", "tga_"};
    for (int p = 0; p < 3; p++) {
        int ok = 0, refused = 0;
        for (int i = 0; i < n_format_cases; i++)
            if (!strncmp(format_cases[i].name, prefix[p], 4)) format_cases[i].ok ? ok++ : refused++;
        ck_assert_msg(ok >= 10 && refused >= 3, "%s: %d ok, %d refused", prefix[p], ok, refused);
    }
}
END_TEST

/* Indices past a short palette are Pillow's grey ramp, the same on every decode even when the
 * heap is dirty (the bug this replaced: entries read from memory nobody wrote). */
START_TEST(short_palette_is_deterministic)
{
    const char *files[] = {"bmp_info40_pal8_short_palette", "bmp_core12_pal8_short_palette",
                           "bmp_v4_pal8_short_palette", "bmp_rle8_short_palette",
                           "bmp_info40_pal4_short_palette", "tga_cmap8_map24"};
    for (int f = 0; f < 6; f++) {
        size_t size;
        uint8_t *bytes = test_read_file(test_path("formats/%s.%s", files[f],
                                                  files[f][0] == 'b' ? "bmp" : "tga"), &size);
        raddino_image first;
        raddino_status st = raddino_image_load_memory(bytes, size, files[f], 0, &first);
        ck_assert_msg(!st.code, "%s", st.message);
        size_t n = (size_t)first.width * (size_t)first.height * 3;
        for (int round = 0; round < 3; round++) {
            uint8_t *dirt = malloc(4096);
            memset(dirt, 0xA5 + round, 4096);
            free(dirt);
            raddino_image again;
            st = raddino_image_load_memory(bytes, size, files[f], 0, &again);
            ck_assert_msg(!st.code, "%s", st.message);
            ck_assert_mem_eq(first.rgb, again.rgb, n);
            raddino_image_free(&again);
        }
        raddino_image_free(&first);
        free(bytes);
    }
}
END_TEST

/* A 4x2 grey PNG whose image data is a zlib stream of one stored block that is not the last,
 * followed by `extra` (its own IDAT chunk when extra_chunk, else in the same one). */
static size_t png_with_open_stream(uint8_t *png, const uint8_t *extra, size_t extra_len,
                                   bool extra_chunk, bool bad_idat_crc)
{
    static const uint8_t rows[10] = {0, 10, 20, 30, 40, 0, 50, 60, 70, 80};   /* filter 0 */
    size_t n = 0;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8), n = 8;
    uint8_t ihdr[17] = "IHDR";
    put_be32(ihdr + 4, 4), put_be32(ihdr + 8, 2);
    ihdr[12] = 8;   /* depth 8, grey, no interlace */
    put_be32(png + n, 13), memcpy(png + n + 4, ihdr, 17), put_be32(png + n + 21, crc32_png(ihdr, 17));
    n += 25;
    uint8_t idat[256] = "IDAT";
    size_t len = 0;
    idat[4 + len++] = 0x78, idat[4 + len++] = 0x01;                 /* zlib header */
    idat[4 + len++] = 0x00;                                         /* stored, not final */
    idat[4 + len++] = sizeof rows, idat[4 + len++] = 0;
    idat[4 + len++] = (uint8_t)~sizeof rows, idat[4 + len++] = 0xff;
    memcpy(idat + 4 + len, rows, sizeof rows), len += sizeof rows;
    if (!extra_chunk && extra_len) memcpy(idat + 4 + len, extra, extra_len), len += extra_len;
    put_be32(png + n, (uint32_t)len), memcpy(png + n + 4, idat, 4 + len);
    put_be32(png + n + 8 + len, crc32_png(idat, 4 + len) ^ (bad_idat_crc ? 1u : 0u));
    n += 12 + len;
    if (extra_chunk) {
        memcpy(idat + 4, extra, extra_len);
        put_be32(png + n, (uint32_t)extra_len), memcpy(png + n + 4, idat, 4 + extra_len);
        put_be32(png + n + 8 + extra_len, crc32_png(idat, 4 + extra_len));
        n += 12 + extra_len;
    }
    put_be32(png + n, 0), memcpy(png + n + 4, "IEND", 4), put_be32(png + n + 8, crc32_png((const uint8_t *)"IEND", 4));
    return n + 12;
}

static void expect_open_stream_pixels(const uint8_t *png, size_t size)
{
    raddino_image img;
    raddino_status st = raddino_image_load_memory(png, size, "open.png", 0, &img);
    ck_assert_msg(!st.code, "%s", st.message);
    static const uint8_t grey[8] = {10, 20, 30, 40, 50, 60, 70, 80};
    ck_assert_int_eq(img.width, 4);
    ck_assert_int_eq(img.height, 2);
    for (int i = 0; i < 8; i++) ck_assert_int_eq(img.rgb[3 * i + 1], grey[i]);
    raddino_image_free(&img);
}

/* Decoding stops at the last row, as Pillow's does: a stream that never ends, or goes on with
 * anything (here a chunk of bytes that are no deflate data at all; in a hostile file, gigabytes
 * of zeros), costs nothing and is not read. An image-data CRC mismatch is let through as
 * Pillow lets it through; a damaged stream before the last row is an error. */
START_TEST(png_decode_stops_at_last_row)
{
    uint8_t png[512], junk[100];
    memset(junk, 0xff, sizeof junk);
    expect_open_stream_pixels(png, png_with_open_stream(png, NULL, 0, false, false));
    expect_open_stream_pixels(png, png_with_open_stream(png, junk, sizeof junk, true, false));
    expect_open_stream_pixels(png, png_with_open_stream(png, NULL, 0, false, true));
    /* Cut inside the rows: the stored block promises 10 bytes, 6 are there. */
    size_t n = png_with_open_stream(png, NULL, 0, false, false);
    put_be32(png + 33, 11);   /* IDAT length: header + block header + 4 row bytes */
    raddino_image img;
    expect_error(raddino_image_load_memory(png, n, "cut.png", 0, &img), RADDINO_ERR_FORMAT,
                 "cut.png", "cannot decode png");
    ck_assert_ptr_null(img.rgb);
}
END_TEST

/* An uncompressed TGA shorter than its pixels is refused, as Pillow refuses it ("image file is
 * truncated"); stb_image, used before, decoded it with the missing rows as allocated. */
START_TEST(truncated_tga_is_refused)
{
    uint8_t tga[18 + 30] = {0, 0, 2};   /* no id, no colour map, uncompressed true colour */
    tga[12] = 8, tga[14] = 8, tga[16] = 24, tga[17] = 0x20;   /* 8x8, 24 bits, top-left */
    memset(tga + 18, 0x40, 30);
    raddino_image img;
    expect_error(raddino_image_load_memory(tga, sizeof tga, "short.tga", 0, &img),
                 RADDINO_ERR_FORMAT, "short.tga", "truncated pixel data");
    ck_assert_ptr_null(img.rgb);
    /* The header alone passes the pixel cap first. */
    expect_error(raddino_image_load_memory(tga, sizeof tga, "short.tga", 63, &img),
                 RADDINO_ERR_TOO_LARGE, "short.tga", "over the pixel limit of 63");
}
END_TEST

/* PNM headers as Pillow reads them: tokens of at most 10 characters (stb_image 2.27, used
 * before, overflowed an int on long numbers and left short pixel data uninitialised: found by
 * tests/fuzz/fuzz_image), maxval 1..65535, pixel data complete. */
static raddino_status load_text(const char *bytes, raddino_image *img)
{
    return raddino_image_load_memory(bytes, strlen(bytes), "x.pnm", 0, img);
}

START_TEST(pnm_header)
{
    raddino_image img;
    expect_error(load_text("P6 2 1 100100010010", &img), RADDINO_ERR_FORMAT, "x.pnm",
                 "number too long");
    expect_error(load_text("P5 99999999999 1 255\n", &img), RADDINO_ERR_FORMAT, "x.pnm",
                 "number too long");
    expect_error(load_text("P5 -2 1 255\n", &img), RADDINO_ERR_FORMAT, "x.pnm",
                 "not a decimal number");
    expect_error(load_text("P5 2 1 65536\nabcd", &img), RADDINO_ERR_FORMAT, "x.pnm", "maxval");
    expect_error(load_text("P5 3 2 255\nabc", &img), RADDINO_ERR_FORMAT, "x.pnm",
                 "truncated pixel data (6 bytes needed, 3 there)");
    expect_error(load_text("P6 2 1 255\nabcde", &img), RADDINO_ERR_FORMAT, "x.pnm",
                 "truncated");
    expect_error(load_text("P5 2 1 256\nabc", &img), RADDINO_ERR_FORMAT, "x.pnm", "truncated");
    expect_error(load_text("P5 0 1 255\n", &img), RADDINO_ERR_FORMAT, "x.pnm", "zero size");
    expect_error(raddino_image_load_memory("P5 100 100 255\n", 15, "x.pnm", 9999, &img),
                 RADDINO_ERR_TOO_LARGE, "x.pnm", "limit");
    /* Comments, any whitespace, exactly the pixels promised: decoded. */
    raddino_status st = load_text("P5\n# a comment\n3\t2 # another\n255\nabcdef", &img);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_int_eq(img.width, 3);
    ck_assert_int_eq(img.height, 2);
    ck_assert_int_eq(img.rgb[3 * 5], 'f');
    raddino_image_free(&img);
}
END_TEST

START_TEST(pixel_cap)
{
    const char *files[] = {"gray8_600x700.png", "rgb8_640x480.jpg"};
    for (int f = 0; f < 2; f++) {
        const char *path = test_path("images/%s", files[f]);
        raddino_image img;
        expect_error(raddino_image_load(path, 1000, &img), RADDINO_ERR_TOO_LARGE, path,
                     "over the pixel limit of 1000");
        ck_assert_ptr_null(img.rgb);
        /* Exactly at the cap is allowed. */
        raddino_status st = raddino_image_load(path, f ? 640 * 480 : 600 * 700, &img);
        ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
        raddino_image_free(&img);
    }
}
END_TEST

START_TEST(memory_matches_file)
{
    const char *files[] = {"rgb8_640x480.jpg", "palette8_400x320.png"};
    for (int f = 0; f < 2; f++) {
        const char *path = test_path("images/%s", files[f]);
        size_t size;
        void *bytes = test_read_file(path, &size);
        raddino_image a, b;
        raddino_status st = raddino_image_load(path, 0, &a);
        ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
        st = raddino_image_load_memory(bytes, size, NULL, 0, &b);
        ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
        ck_assert_int_eq(a.width, b.width);
        ck_assert_int_eq(a.height, b.height);
        ck_assert_mem_eq(a.rgb, b.rgb, (size_t)a.width * (size_t)a.height * 3);
        raddino_image_free(&a);
        raddino_image_free(&b);
        /* No name: "<memory>" in messages. */
        expect_error(raddino_image_load_memory(bytes, size / 3, NULL, 0, &b), RADDINO_ERR_FORMAT,
                     "<memory>", NULL);
        free(bytes);
    }
}
END_TEST

/* ---- CMYK JPEG: Pillow reads Adobe CMYK inverted ("CMYK;I"), then cmyk2rgb ---- */

static unsigned char *encode_cmyk(const uint8_t cmyk[4], int w, int h, unsigned long *size)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    jpeg_mem_dest(&c, &out, size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 4;
    c.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&c);      /* CMYK: stored as is, with an Adobe marker */
    jpeg_set_quality(&c, 100, TRUE);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * 4);
    for (int x = 0; x < w; x++) memcpy(row + 4 * x, cmyk, 4);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r[1] = {row};
        jpeg_write_scanlines(&c, r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return out;
}

START_TEST(cmyk_jpeg)
{
    /* stored (inverted) values; a flat image compresses without loss at quality 100 */
    const uint8_t stored[4] = {200, 100, 30, 180};
    unsigned long size;
    unsigned char *jpg = encode_cmyk(stored, 16, 16, &size);
    raddino_image img;
    raddino_status st = raddino_image_load_memory(jpg, size, "cmyk.jpg", 0, &img);
    ck_assert_msg(st.code == RADDINO_OK, "%s", st.message);
    ck_assert_int_eq(img.source_channels, 4);
    for (int c = 0; c < 3; c++) {
        int in_c = 255 - stored[c], nk = 255 - (255 - stored[3]);
        int t = in_c * nk + 128, want = nk - (((t >> 8) + t) >> 8);
        ck_assert_int_le(abs(img.rgb[c] - want), 1);
        ck_assert_int_eq(img.rgb[c], img.rgb[3 * 100 + c]);
    }
    raddino_image_free(&img);
    free(jpg);
}
END_TEST


/* Deterministically corrupted golden files: any status is fine, a crash or a leak is not. */
START_TEST(mutated_inputs)
{
    const char *files[] = {"gray8_14x14.png", "rgb8_640x480.jpg", "gray8prog_500x600.jpg",
                           "palette8_400x320.png", "gray16_900x1024.png"};
    size_t size;
    uint8_t *orig = test_read_file(test_path("images/%s", files[_i]), &size);
    uint8_t *buf = malloc(size);
    uint32_t x = 2024u + (uint32_t)_i;
    for (int round = 0; round < 150; round++) {
        memcpy(buf, orig, size);
        int flips = 1 + round % 8;
        for (int f = 0; f < flips; f++) {
            x = x * 1103515245u + 12345u;
            /* mostly the first bytes, where the headers are */
            size_t at = (x >> 8) % (round % 2 ? size : (size < 600 ? size : 600));
            x = x * 1103515245u + 12345u;
            buf[at] = (uint8_t)(x >> 24);
        }
        size_t len = round % 5 == 4 ? size - (x >> 4) % size : size;
        raddino_image img;
        raddino_status st = raddino_image_load_memory(buf, len, "m", 4000000, &img);
        ck_assert_msg((st.code == RADDINO_OK) == (img.rgb != NULL), "%s", st.message);
        if (st.code) ck_assert_msg(strncmp(st.message, "m: ", 3) == 0, "%s", st.message);
        raddino_image_free(&img);
    }
    free(buf);
    free(orig);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, golden_decodes, 0, N_GOLDEN);
    tcase_add_test(tc, golden_list_is_complete);
    tcase_add_test(tc, alpha_dropped);
    tcase_add_loop_test(tc, sixteen_bit_rule, 0, 2);
    tcase_add_test(tc, scale_16_to_8_unit);
    tcase_add_test(tc, cmyk_jpeg);
    tcase_add_loop_test(tc, png_forms_match_pillow, 0,
                        (int)(sizeof png_fixtures / sizeof png_fixtures[0]));
    load_format_cases();
    tcase_add_loop_test(tc, formats_match_pillow, 0, n_format_cases);
    tcase_add_test(tc, formats_cases_present);
    tcase_add_test(tc, short_palette_is_deterministic);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("errors");
    tcase_set_timeout(te, 120);
    tcase_add_test(te, missing_file);
    tcase_add_test(te, empty_file);
    tcase_add_test(te, random_bytes);
    tcase_add_loop_test(te, truncated, 0, 4);
    tcase_add_test(te, huge_png_header);
    tcase_add_test(te, png_decode_stops_at_last_row);
    tcase_add_test(te, truncated_tga_is_refused);
    tcase_add_test(te, pnm_header);
    tcase_add_test(te, pixel_cap);
    tcase_add_test(te, memory_matches_file);
    tcase_add_loop_test(te, mutated_inputs, 0, 5);
    suite_add_tcase(s, te);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
