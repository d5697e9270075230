/* test_dicom.c — DICOM: grey levels equal to pydicom references for every file
 * (tests/data/dicom/refs.tsv, made by tests/tools/make_dicom_refs.py), lossless twins identical
 * down to the 518x518 crop, MONOCHROME1 bone-white, windowing, multi-frame, metadata, and the
 * errors malformed files must give.
 *
 * Files keyed "dicom/..." are in tests/data; files keyed "shared/..." are read from the shared
 * data folder beside the clone (../shared/data, as in CI) and skipped with a note when it is
 * absent. */
#define _GNU_SOURCE     /* memmem */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "encoder_internal.h"
#include "test_util.h"

#define SALT "raddino-test-salt"

typedef struct {
    char key[256];
    int rows, cols, frames;
    char grey[65], minmax[65], autow[65];
    double mean;
    char twin[32], patient_key[65], sop[65], ts[65], pi[32];
} ref_line;

static ref_line refs[64];
static int n_refs;

/* Reads refs.tsv; called before the tests run (no ck_assert here). Returns false on error. */
static bool read_refs(void)
{
    FILE *f = fopen(test_path("dicom/refs.tsv"), "r");
    if (!f) return false;
    char line[2048];
    while (fgets(line, sizeof line, f) && n_refs < 64) {
        if (line[0] == '#') continue;
        ref_line *r = &refs[n_refs];
        int got = sscanf(line, "%255s %d %d %d %64s %64s %64s %lf %31s %64s %64s %64s %31s", r->key,
                         &r->rows, &r->cols, &r->frames, r->grey, r->minmax, r->autow, &r->mean,
                         r->twin, r->patient_key, r->sop, r->ts, r->pi);
        if (got != 13) break;
        n_refs++;
    }
    bool ok = !ferror(f) && feof(f) && n_refs > 20;
    fclose(f);
    return ok;
}

static void load_refs(void) { ck_assert_int_gt(n_refs, 20); }

/* The file of a key, or NULL when it is a shared file and the shared folder is absent. */
static const char *ref_path(const ref_line *r)
{
    static char path[4096];
    if (strncmp(r->key, "shared/", 7) == 0) {
        snprintf(path, sizeof path, "%s/../../../shared/data/%s", RADDINO_TEST_DATA, r->key + 7);
        FILE *f = fopen(path, "rb");
        if (!f) return NULL;
        fclose(f);
        return path;
    }
    snprintf(path, sizeof path, "%s/%s", RADDINO_TEST_DATA, r->key);
    return path;
}

static void sha256_hex(const void *data, size_t n, char hex[65])
{
    unsigned char d[32];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ck_assert(ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
              EVP_DigestUpdate(ctx, data, n) && EVP_DigestFinal_ex(ctx, d, &len));
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* 8-bit image as the references hash it: one byte per pixel for grey, RGB for colour. */
static void image_hash(const raddino_image *img, bool colour, char hex[65])
{
    size_t n = (size_t)img->width * img->height;
    if (colour) {
        sha256_hex(img->rgb, n * 3, hex);
        return;
    }
    uint8_t *grey = malloc(n);
    bool grey_rgb = true;   /* one ck_assert, not one per pixel (each one is a write to a pipe) */
    for (size_t i = 0; i < n; i++) {
        grey_rgb &= img->rgb[3 * i] == img->rgb[3 * i + 1] && img->rgb[3 * i] == img->rgb[3 * i + 2];
        grey[i] = img->rgb[3 * i];
    }
    ck_assert(grey_rgb);
    sha256_hex(grey, n, hex);
    free(grey);
}

static raddino_status load(const char *path, int window, int frame, raddino_image *img)
{
    raddino_load_options o;
    memset(&o, 0, sizeof o);
    o.window = window;
    o.frame = frame;
    return raddino_image_load_ex(path, &o, img);
}

/* ---- every file against its reference ---------------------------------------------------- */

START_TEST(test_references)
{
    load_refs();
    const ref_line *r = &refs[_i];
    const char *path = ref_path(r);
    if (!path) {
        fprintf(stderr, "test_dicom: %s skipped (no ../shared/data)\n", r->key);
        return;
    }
    bool colour = strcmp(r->grey, "-") == 0;
    int frame = r->frames > 1 ? 1 : 0;

    /* Grey levels after the Modality LUT. */
    if (!colour) {
        size_t size;
        uint8_t *data = test_read_file(path, &size);
        dicom_frame f;
        raddino_status st = dicom_decode_frame(data, size, path, 0, frame - 1, &f);
        ck_assert_msg(st.code == 0, "%s", st.message);
        ck_assert_int_eq(f.header.rows, r->rows);
        ck_assert_int_eq(f.header.columns, r->cols);
        size_t n = (size_t)r->rows * r->cols;
        double *grey = malloc(n * sizeof *grey);
        st = dicom_grey_values(&f, path, grey, NULL);
        ck_assert_msg(st.code == 0, "%s", st.message);
        for (size_t i = 0; i < n; i++) {   /* the references hash little-endian float64 */
            uint64_t bits;
            memcpy(&bits, &grey[i], 8);
            for (int b = 0; b < 8; b++) ((uint8_t *)&grey[i])[b] = (uint8_t)(bits >> (8 * b));
        }
        char hex[65];
        sha256_hex(grey, n * sizeof *grey, hex);
        ck_assert_msg(strcmp(hex, r->grey) == 0, "%s: grey levels differ from the reference",
                      r->key);
        free(grey);
        dicom_frame_free(&f);
        free(data);
    }

    /* The 8-bit image, min-max and --window auto. */
    const int windows[2] = {RADDINO_WINDOW_MINMAX, RADDINO_WINDOW_AUTO};
    const char *want[2] = {r->minmax, r->autow};
    for (int w = 0; w < 2; w++) {
        raddino_image img;
        raddino_status st = load(path, windows[w], frame, &img);
        ck_assert_msg(st.code == 0, "%s", st.message);
        ck_assert_int_eq(img.width, r->cols);
        ck_assert_int_eq(img.height, r->rows);
        ck_assert_str_eq(img.format, "dicom");
        char hex[65];
        image_hash(&img, colour, hex);
        ck_assert_msg(strcmp(hex, want[w]) == 0, "%s: 8-bit image (%s) differs from the reference",
                      r->key, w ? "auto" : "minmax");
        raddino_image_free(&img);
    }

    /* Metadata. */
    raddino_dicom_info info;
    raddino_status st = raddino_dicom_read_info(path, SALT, &info);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_str_eq(info.sop_instance_uid, r->sop);
    ck_assert_str_eq(info.transfer_syntax_uid, r->ts);
    ck_assert_str_eq(info.photometric_interpretation, r->pi);
    ck_assert_str_eq(info.patient_key, strcmp(r->patient_key, "-") ? r->patient_key : "");
    ck_assert_int_eq(info.rows, r->rows);
    ck_assert_int_eq(info.columns, r->cols);
    ck_assert_int_eq(info.frames, r->frames);
}
END_TEST

/* ---- lossless twins ------------------------------------------------------------------------ */

static preprocess_config rad_dino_preprocess(void)
{
    preprocess_config cfg;
    raddino_status st =
        config_load_preprocess(test_path("models/tiny/preprocessor_config.json"), &cfg);
    ck_assert_msg(st.code == 0, "%s", st.message);
    return cfg;
}

static uint8_t *crop_of(const preprocess_config *cfg, const char *path, int *w, int *h)
{
    raddino_image img;
    raddino_status st = raddino_image_load(path, 0, &img);
    ck_assert_msg(st.code == 0, "%s", st.message);
    preprocess_output_size(cfg, img.width, img.height, w, h);
    uint8_t *crop = malloc((size_t)*w * *h * 3);
    st = preprocess_crop(cfg, &img, crop, *w, *h);
    ck_assert_msg(st.code == 0, "%s", st.message);
    raddino_image_free(&img);
    return crop;
}

START_TEST(test_lossless_twins)
{
    load_refs();
    preprocess_config cfg = rad_dino_preprocess();
    int groups_checked = 0;
    for (int i = 0; i < n_refs; i++) {
        if (!strcmp(refs[i].twin, "-")) continue;
        int first;
        for (first = 0; strcmp(refs[first].twin, refs[i].twin); first++) {}
        if (first == i) continue;
        const char *a_path = ref_path(&refs[first]);
        if (!a_path) continue;
        char a_copy[4096];
        snprintf(a_copy, sizeof a_copy, "%s", a_path);
        const char *b_path = ref_path(&refs[i]);
        if (!b_path) continue;
        ck_assert_str_eq(refs[i].grey, refs[first].grey);   /* the references agree */
        int aw, ah, bw, bh;
        uint8_t *a = crop_of(&cfg, a_copy, &aw, &ah);
        uint8_t *b = crop_of(&cfg, b_path, &bw, &bh);
        ck_assert_int_eq(aw, 518);
        ck_assert_int_eq(ah, 518);
        ck_assert_int_eq(bw, aw);
        ck_assert_int_eq(bh, ah);
        ck_assert_msg(memcmp(a, b, (size_t)aw * ah * 3) == 0, "%s and %s: crops differ",
                      refs[first].key, refs[i].key);
        free(a);
        free(b);
        groups_checked++;
    }
    ck_assert_int_ge(groups_checked, 6);   /* RG1q x3, 966q, RG2q x2 in the repository */
}
END_TEST

/* ---- MONOCHROME1 --------------------------------------------------------------------------- */

static double correlation(const uint8_t *a, const uint8_t *b, size_t n)
{
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    for (size_t i = 0; i < n; i++) {
        sa += a[i], sb += b[i];
        saa += (double)a[i] * a[i], sbb += (double)b[i] * b[i], sab += (double)a[i] * b[i];
    }
    double ca = saa - sa * sa / n, cb = sbb - sb * sb / n;
    return (sab - sa * sb / n) / sqrt(ca * cb);
}

/* The 16-bit PNG of RG1 was stored flipped to MONOCHROME2 (bone white): the MONOCHROME1 DICOM
 * must come out like it, not like its negative. Same for 966 (MONOCHROME1 + INVERSE), when the
 * shared data is there. */
START_TEST(test_monochrome1_bone_white)
{
    preprocess_config cfg = rad_dino_preprocess();
    const char *pairs[2][2] = {
        {"dicom/RG1_chest_q_ExplVRLE.dcm", "images/xray_rg1_chest_15bit.png"},
        {"dicom/966_chest_q_ExplVRLE.dcm", "../../../shared/data/derived_png16/"
                                           "966_chest_PA_DX_12bit_half.png"},
    };
    for (int p = 0; p < 2; p++) {
        char png[4096];
        snprintf(png, sizeof png, "%s", test_path("%s", pairs[p][1]));
        FILE *f = fopen(png, "rb");
        if (!f) {
            fprintf(stderr, "test_dicom: %s skipped (no ../shared/data)\n", pairs[p][1]);
            continue;
        }
        fclose(f);
        int w1, h1, w2, h2;
        uint8_t *a = crop_of(&cfg, test_path("%s", pairs[p][0]), &w1, &h1);
        uint8_t *b = crop_of(&cfg, png, &w2, &h2);
        ck_assert_int_eq(w1 * h1, w2 * h2);
        double c = correlation(a, b, (size_t)w1 * h1 * 3);
        ck_assert_msg(c > 0.9, "%s: correlation %.3f with its bone-white twin", pairs[p][0], c);
        free(a);
        free(b);
    }
}
END_TEST

/* ---- windows, frames ----------------------------------------------------------------------- */

START_TEST(test_explicit_window)
{
    /* The synthetic file's own window is C 50, W 600 (LINEAR): the same numbers given
     * explicitly give the same image; a different window gives another. */
    const char *path = test_path("dicom/synthetic/signed12_rescale_padding.dcm");
    raddino_image a, b, c;
    ck_assert_int_eq(load(path, RADDINO_WINDOW_AUTO, 0, &a).code, 0);
    raddino_load_options o;
    memset(&o, 0, sizeof o);
    o.window = RADDINO_WINDOW_EXPLICIT;
    o.window_center = 50;
    o.window_width = 600;
    ck_assert_int_eq(raddino_image_load_ex(path, &o, &b).code, 0);
    ck_assert_int_eq(memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3), 0);
    o.window_width = 1;     /* a threshold at 50 */
    ck_assert_int_eq(raddino_image_load_ex(path, &o, &c).code, 0);
    bool binary = true;
    for (int i = 0; i < c.width * c.height; i++) binary &= c.rgb[3 * i] == 0 || c.rgb[3 * i] == 255;
    ck_assert(binary);
    ck_assert(memcmp(a.rgb, c.rgb, (size_t)a.width * a.height * 3) != 0);
    /* Padding (the first two rows) is black whatever the window. */
    for (int i = 0; i < 2 * a.width; i++) ck_assert_int_eq(a.rgb[3 * i], 0);
    raddino_image_free(&a);
    raddino_image_free(&b);
    raddino_image_free(&c);
    o.window_width = 0.5;
    ck_assert_int_eq(raddino_image_load_ex(path, &o, &c).code, RADDINO_ERR_ARGUMENT);
}
END_TEST

START_TEST(test_multi_frame)
{
    const char *path = test_path("dicom/synthetic/two_frames.dcm");
    raddino_image img, f1, f2;
    raddino_status st = raddino_image_load(path, 0, &img);
    ck_assert_int_eq(st.code, RADDINO_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(st.message, "2 frames") && strstr(st.message, path), "%s", st.message);
    ck_assert_int_eq(load(path, 0, 1, &f1).code, 0);
    ck_assert_int_eq(load(path, 0, 2, &f2).code, 0);
    /* Frame 2 is the negative of frame 1. */
    bool negative = true;
    for (int i = 0; i < f1.width * f1.height * 3; i++) negative &= f1.rgb[i] == 255 - f2.rgb[i];
    ck_assert(negative);
    raddino_image_free(&f1);
    raddino_image_free(&f2);
    st = load(path, 0, 3, &img);
    ck_assert_int_eq(st.code, RADDINO_ERR_ARGUMENT);
    ck_assert_msg(strstr(st.message, "frame 3"), "%s", st.message);
}
END_TEST

START_TEST(test_info)
{
    raddino_dicom_info info;
    const char *path = test_path("dicom/966_chest_q_ExplVRLE.dcm");
    ck_assert_int_eq(raddino_dicom_read_info(path, SALT, &info).code, 0);
    ck_assert_str_eq(info.modality, "DX");
    ck_assert_str_eq(info.view_position, "PA");
    ck_assert_str_eq(info.body_part_examined, "CHEST");
    ck_assert(fabs(info.pixel_spacing[0] - 0.64) < 1e-9 && fabs(info.pixel_spacing[1] - 0.64) < 1e-9);
    ck_assert(info.study_instance_uid[0] && info.series_instance_uid[0]);
    ck_assert_int_eq(strlen(info.patient_key), 64);
    /* No salt: no key; empty salt: refused; another salt: another key. */
    char key[65];
    memcpy(key, info.patient_key, sizeof key);
    ck_assert_int_eq(raddino_dicom_read_info(path, NULL, &info).code, 0);
    ck_assert_str_eq(info.patient_key, "");
    ck_assert_int_eq(raddino_dicom_read_info(path, "", &info).code, RADDINO_ERR_ARGUMENT);
    ck_assert_int_eq(raddino_dicom_read_info(path, "other", &info).code, 0);
    ck_assert_str_ne(info.patient_key, key);
    /* The plain ID appears nowhere in the struct. */
    ck_assert_ptr_null(memmem(&info, sizeof info, "2010101610-1", 12));
    /* Not DICOM. */
    raddino_status st = raddino_dicom_read_info(test_path("images/gray8_14x14.png"), SALT, &info);
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
}
END_TEST

/* ---- malformed files ----------------------------------------------------------------------- */

/* Offset of a tag's explicit-VR element header in the data set, or -1. */
static long find_tag(const uint8_t *d, size_t n, uint16_t group, uint16_t element)
{
    uint8_t pat[4] = {(uint8_t)group, (uint8_t)(group >> 8), (uint8_t)element,
                      (uint8_t)(element >> 8)};
    for (size_t i = 132; i + 8 <= n; i++)
        if (!memcmp(d + i, pat, 4)) return (long)i;
    return -1;
}

static raddino_status load_bytes(const uint8_t *d, size_t n, raddino_image *img)
{
    const char *p = test_write_temp(d, n, ".dcm");
    return raddino_image_load(p, 0, img);
}

static void expect_error(const uint8_t *d, size_t n, int code, const char *what)
{
    raddino_image img;
    raddino_status st = load_bytes(d, n, &img);
    ck_assert_msg(st.code != 0, "%s: accepted", what);
    if (code) ck_assert_msg(st.code == code, "%s: code %d (%s)", what, st.code, st.message);
    ck_assert_msg(strlen(st.message) > 10 && !strchr(st.message, '\n'), "%s: '%s'", what,
                  st.message);
    ck_assert_ptr_null(img.rgb);
}

START_TEST(test_malformed)
{
    const char *names[] = {"dicom/RG1_chest_q_ExplVRLE.dcm", "dicom/RG2_hip_q_JLSL.dcm",
                           "dicom/RG2_hip_q_J2KR.dcm", "dicom/RG1_chest_q_RLE.dcm",
                           "dicom/RG2_JPLY_fixed.dcm", "dicom/RG1_chest_q_JPEGLossless_P14_SV6.dcm"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        size_t n;
        uint8_t *orig = test_read_file(test_path("%s", names[k]), &n);
        uint8_t *d = malloc(n);
        long px = find_tag(orig, n, 0x7fe0, 0x0010);
        ck_assert_int_gt(px, 0);

        /* Truncated: in the header, just after the pixel data tag, halfway through pixels. */
        size_t cuts[] = {140, 300, (size_t)px + 6, (size_t)px + 40, px + (n - px) / 2, n - 3};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++)
            expect_error(orig, cuts[c], 0, "truncated");

        /* Missing pixel data: the file ends before its tag. */
        expect_error(orig, (size_t)px, RADDINO_ERR_FORMAT, "no pixel data");

        /* Huge Rows x Columns: refused by the pixel cap before decoding. */
        memcpy(d, orig, n);
        long rows = find_tag(d, n, 0x0028, 0x0010), cols = find_tag(d, n, 0x0028, 0x0011);
        ck_assert(rows > 0 && cols > 0);
        d[rows + 8] = d[rows + 9] = d[cols + 8] = d[cols + 9] = 0xFF;
        expect_error(d, n, RADDINO_ERR_TOO_LARGE, "huge size");
        /* Zero rows. */
        memcpy(d, orig, n);
        d[rows + 8] = d[rows + 9] = 0;
        expect_error(d, n, 0, "zero rows");
        /* Rows that disagree with the pixel data. */
        memcpy(d, orig, n);
        d[rows + 8] ^= 0x10;
        if (d[px + 4] == 'O' && !(d[px + 8] == 0xFF && d[px + 9] == 0xFF)) {
            expect_error(d, n, 0, "native: rows beyond the pixel data");
        } else {    /* a codec may decode what its stream holds: an error or an image */
            raddino_image img;
            if (load_bytes(d, n, &img).code == 0) raddino_image_free(&img);
        }

        /* Lying lengths: the pixel data's (native) and the Rows element's. */
        memcpy(d, orig, n);
        if (d[px + 4] == 'O' && !(d[px + 8] == 0xFF && d[px + 9] == 0xFF)) {
            d[px + 8] = 0xF0, d[px + 9] = 0xFF, d[px + 10] = 0xFF, d[px + 11] = 0x7F;
            expect_error(d, n, 0, "pixel data length");
        }
        memcpy(d, orig, n);
        d[rows + 6] = 0xF0, d[rows + 7] = 0x7F;
        expect_error(d, n, 0, "rows length");

        /* A sequence delimiter with a length (the standard says 0): GDCM read it as a fragment
         * of that many bytes and allocated them (4 GB for a 1 kB fuzzer input). Refused before
         * any decoder sees it. */
        if (d[px + 8] == 0xFF && d[px + 9] == 0xFF) {
            static const uint8_t delimiter[4] = {0xFE, 0xFF, 0xDD, 0xE0};
            long at = -1;
            for (size_t i = (size_t)px; i + 8 <= n; i++)
                if (!memcmp(orig + i, delimiter, 4)) at = (long)i;
            ck_assert_int_gt(at, px);
            memcpy(d, orig, n);
            d[at + 7] = 0xFC;
            expect_error(d, n, RADDINO_ERR_FORMAT, "delimiter length");
            raddino_image img;
            raddino_status st = load_bytes(d, n, &img);
            ck_assert_msg(strstr(st.message, "sequence delimiter with a non-zero length"), "%s",
                          st.message);
        }

        /* Corrupted compressed stream (bytes inside the pixel data flipped): an error or an
         * image, never a crash. */
        memcpy(d, orig, n);
        for (size_t i = (size_t)px + 60; i < n; i += 97) d[i] ^= 0x5A;
        raddino_image img;
        raddino_status st = load_bytes(d, n, &img);
        if (st.code == 0) raddino_image_free(&img);
        free(d);
        free(orig);
    }
    /* DICM marker and nothing else. */
    uint8_t tiny[132] = {0};
    memcpy(tiny + 128, "DICM", 4);
    expect_error(tiny, sizeof tiny, 0, "empty data set");
}
END_TEST

START_TEST(test_sniff_by_content)
{
    /* A DICOM file named .png is still read as DICOM. */
    size_t n;
    uint8_t *d = test_read_file(test_path("dicom/dx_image.dcm"), &n);
    raddino_image img;
    raddino_status st = raddino_image_load(test_write_temp(d, n, ".png"), 0, &img);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_str_eq(img.format, "dicom");
    ck_assert_int_eq(img.width, 211);
    raddino_image_free(&img);
    st = raddino_image_load_memory(d, n, "mem", 0, &img);
    ck_assert_msg(st.code == 0, "%s", st.message);
    raddino_image_free(&img);
    free(d);
}
END_TEST

/* ---- issue 16: the cases raddino once got wrong, and the refusals -------------------------- */

/* RT Dose, one frame, Frame Increment Pointer without Number of Frames: GDCM's image reader
 * asserts (SIGABRT) on that pairing. The three encodings of pydicom's rtdose_*_1frame.dcm and a
 * JPEG 2000 one (the only kind GDCM still reads) decode, again and again, in this process: the
 * references test checks their pixels. */
START_TEST(test_frame_pointer_without_frames)
{
    const char *files[] = {"rtdose_1frame_implicit.dcm", "rtdose_1frame_big_endian.dcm",
                           "rtdose_1frame_rle.dcm", "j2k_frame_pointer_no_frames.dcm"};
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            raddino_image img;
            raddino_status st = load(test_path("dicom/synthetic/%s", files[i]), 0, 0, &img);
            ck_assert_msg(st.code == 0, "%s", st.message);
            raddino_image_free(&img);
        }
}
END_TEST

/* GDCM's codecs run in a child process: one that aborts (the test hook makes it, as damaged
 * streams once did: the fuzzer's tests/fuzz/corpus/dicom/crash_j2k_unknown_photometric_by_syntax.dcm, now
 * refused before GDCM) is a refusal naming the signal, and this process goes on decoding. */
START_TEST(test_codec_abort_isolated)
{
    const char *path = test_path("dicom/RG2_hip_q_J2KR.dcm");
    raddino_image img;
    memset(&img, 0, sizeof img);
    setenv("RADDINO_TEST_DICOM_CODEC_ABORT", "1", 1);
    raddino_status st = load(path, 0, 0, &img);
    unsetenv("RADDINO_TEST_DICOM_CODEC_ABORT");
#ifdef RADDINO_DICOM_NO_FORK_TEST    /* -DRADDINO_DICOM_FORK=OFF: no child, no hook */
    if (!st.code) raddino_image_free(&img);
#else
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    ck_assert_msg(strstr(st.message, "decoder died on this file (signal 6") &&
                      strstr(st.message, path) && !strchr(st.message, '\n'),
                  "%s", st.message);
    ck_assert_ptr_null(img.rgb);
#endif
    st = load(path, 0, 0, &img);
    ck_assert_msg(st.code == 0, "%s", st.message);
    raddino_image_free(&img);
    /* Native and RLE data never reach a child (nor the hook). */
    setenv("RADDINO_TEST_DICOM_CODEC_ABORT", "1", 1);
    st = load(test_path("dicom/synthetic/rtdose_1frame_rle.dcm"), 0, 0, &img);
    unsetenv("RADDINO_TEST_DICOM_CODEC_ABORT");
    ck_assert_msg(st.code == 0, "%s", st.message);
    raddino_image_free(&img);
}
END_TEST

/* A codec child that hangs (a lock held at the fork, a codec loop) is killed at its time limit
 * and the file refused: the caller never waits for ever. */
START_TEST(test_codec_hang_stopped)
{
#ifndef RADDINO_DICOM_NO_FORK_TEST    /* -DRADDINO_DICOM_FORK=OFF: no child, no hook */
    const char *path = test_path("dicom/RG2_hip_q_J2KR.dcm");
    raddino_image img;
    memset(&img, 0, sizeof img);
    setenv("RADDINO_TEST_DICOM_CODEC_HANG", "1", 1);
    setenv("RADDINO_TEST_DICOM_CODEC_LIMIT_S", "1", 1);
    raddino_status st = load(path, 0, 0, &img);
    unsetenv("RADDINO_TEST_DICOM_CODEC_HANG");
    unsetenv("RADDINO_TEST_DICOM_CODEC_LIMIT_S");
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    ck_assert_msg(strstr(st.message, "decoder did not finish within 1 s") &&
                      strstr(st.message, path) && !strchr(st.message, '\n'),
                  "%s", st.message);
    ck_assert_ptr_null(img.rgb);
#endif
}
END_TEST

/* The second frame of multi-frame files whose frames are not whole bytes apart (1-bit: 91
 * pixels a frame) or are one RLE fragment each: frame 2 is frame 1 inverted. */
START_TEST(test_second_frames)
{
    raddino_image f1, f2;
    const char *bits = test_path("dicom/synthetic/bits1_2frames.dcm");
    ck_assert_int_eq(load(bits, 0, 1, &f1).code, 0);
    ck_assert_int_eq(load(bits, 0, 2, &f2).code, 0);
    bool inverse = true, binary = true;
    for (int i = 0; i < f1.width * f1.height * 3; i++) {
        inverse &= f1.rgb[i] == 255 - f2.rgb[i];
        binary &= f1.rgb[i] == 0 || f1.rgb[i] == 255;
    }
    ck_assert(inverse && binary);
    raddino_image_free(&f1);
    raddino_image_free(&f2);

    const char *rle = test_path("dicom/synthetic/rgb_rle_16bit_2frames.dcm");
    ck_assert_int_eq(load(rle, 0, 1, &f1).code, 0);
    ck_assert_int_eq(load(rle, 0, 2, &f2).code, 0);
    int worst = 0;
    for (int i = 0; i < f1.width * f1.height * 3; i++) {
        int d = abs(255 - f1.rgb[i] - f2.rgb[i]);   /* min-max rounding: at most 1 apart */
        if (d > worst) worst = d;
    }
    ck_assert_int_le(worst, 1);
    ck_assert(memcmp(f1.rgb, f2.rgb, (size_t)f1.width * f1.height * 3) != 0);
    raddino_image_free(&f1);
    raddino_image_free(&f2);
}
END_TEST

/* Files refused with one line that says why (tests/data/dicom/refused, made by
 * make_dicom_refs.py): the status, the reason, no image, no signal. */
START_TEST(test_refused)
{
    static const struct {
        const char *file;
        int code;
        const char *reason;
    } cases[] = {
        /* pydicom's JPEG2000-embedded-sequence-delimiter.dcm: the delimiter's bytes sit in the
         * codestream's SIZ marker, which then declares a 3722444820-column image */
        {"j2k_siz_overwritten_by_delimiter.dcm", RADDINO_ERR_FORMAT,
         "codestream in the pixel data declares 3722444820x24, the header says 20x24"},
        {"bits1_rgb.dcm", RADDINO_ERR_UNSUPPORTED, "1-bit images are greyscale"},
        {"bits1_rle.dcm", RADDINO_ERR_UNSUPPORTED, "RLE with Bits Allocated 1"},
        {"rle_segment_count.dcm", RADDINO_ERR_FORMAT, "RLE header has 3 segments, 1 sample(s) "
                                                      "of 32 bit(s) need 4"},
        {"rle_segment_short.dcm", RADDINO_ERR_FORMAT, "RLE segment 4 decodes to 81 bytes, 120 "
                                                      "expected"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = test_path("dicom/refused/%s", cases[i].file);
        raddino_image img;
        memset(&img, 0, sizeof img);
        raddino_status st = load(path, 0, 0, &img);
        ck_assert_msg(st.code == cases[i].code, "%s: code %d (%s)", cases[i].file, st.code,
                      st.message);
        ck_assert_msg(strstr(st.message, cases[i].reason) && strstr(st.message, path) &&
                          !strchr(st.message, '\n'),
                      "%s: '%s'", cases[i].file, st.message);
        ck_assert_ptr_null(img.rgb);
    }
    /* A fuzzer's JPEG 2000 file whose codestream has one component under Samples per Pixel 3:
     * GDCM's codec asserted (an abort, or a dead decoder process); refused before it runs. */
    const char *path = test_path("../fuzz/corpus/dicom/crash_j2k_components_vs_samples.dcm");
    raddino_image img;
    memset(&img, 0, sizeof img);
    raddino_status st = load(path, 0, 0, &img);
    ck_assert_msg(st.code == RADDINO_ERR_FORMAT &&
                      strstr(st.message, "codestream has 1 component, the header says 3 "
                                         "samples per pixel"),
                  "%s", st.message);
    /* The same with Samples per Pixel 1 but a photometric interpretation GDCM reads as 3
     * samples ('YBR_FULL_42'): its codec asserted on that count too. */
    path = test_path("../fuzz/corpus/dicom/crash_j2k_components_vs_photometric.dcm");
    st = load(path, 0, 0, &img);
    ck_assert_msg(st.code == RADDINO_ERR_FORMAT &&
                      strstr(st.message, "codestream has 1 component, photometric "
                                         "interpretation 'YBR_FULL_42' has 3"),
                  "%s", st.message);
}
END_TEST

/* Our RLE decoder against hand-made segments: literal and repeated runs, the no-op 128, a run
 * cut by the end of its segment, padding beyond the plane, and the byte order of 16-bit
 * samples (segment 0 is the most significant byte). */
START_TEST(test_rle_decoder)
{
    uint8_t frame[64 + 16];
    memset(frame, 0, sizeof frame);
    frame[0] = 2;                       /* two segments: MSB, LSB of one 16-bit sample */
    frame[4] = 64;
    frame[8] = 64 + 8;
    const uint8_t msb[8] = {0x80, 0x01, 0x12, 0x34, 0xFE, 0x56, 0x00, 0x00};   /* 12 34 56x3 */
    const uint8_t lsb[8] = {0xFC, 0x07, 0x04, 1, 2, 3, 4, 5};                  /* 07x5 then cut */
    memcpy(frame + 64, msb, 8);
    memcpy(frame + 72, lsb, 8);
    uint16_t out[5];
    memset(out, 0xAA, sizeof out);
    raddino_status st = dicom_rle_decode(frame, sizeof frame, "rle", 1, 5, 1, 2, (uint8_t *)out);
    ck_assert_msg(st.code == 0, "%s", st.message);
    /* MSB plane 12 34 56 56 56 (the last literal 00 is padding past the plane); LSB plane
     * 07 07 07 07 07 (the literal run after it lies past the plane). */
    const uint16_t want[5] = {0x1207, 0x3407, 0x5607, 0x5607, 0x5607};
    for (int i = 0; i < 5; i++) {
        const uint8_t *b = (const uint8_t *)&out[i];   /* little endian words */
        ck_assert_int_eq(b[0] | b[1] << 8, want[i]);
    }
    /* A plane one byte longer than the LSB segment gives: refused. */
    const uint8_t short_lsb[8] = {0xFD, 0x07, 0x80, 0x80, 0x80, 0x80, 0x80, 0x07};
    memcpy(frame + 72, short_lsb, 8);   /* 07 x 4, no-ops, a literal header without its bytes */
    st = dicom_rle_decode(frame, sizeof frame, "rle", 1, 5, 1, 2, (uint8_t *)out);
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    ck_assert_msg(strstr(st.message, "segment 2 decodes to 4 bytes, 5 expected"), "%s",
                  st.message);
    /* Offsets past the end or backwards are empty segments, never reads outside. */
    frame[4] = 200;
    st = dicom_rle_decode(frame, sizeof frame, "rle", 1, 5, 1, 2, (uint8_t *)out);
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    ck_assert_int_eq(dicom_rle_decode(frame, 63, "rle", 1, 5, 1, 2, (uint8_t *)out).code,
                     RADDINO_ERR_FORMAT);
}
END_TEST

/* The table conversion of greyscale frames (up to 16 stored bits) against the per-pixel one,
 * byte for byte, on synthetic frames that reach every branch: 8 and 16 bits allocated, stored
 * bits below the high bit, signed values, rescale, a Modality LUT, padding values and ranges,
 * MONOCHROME1 and INVERSE, min-max, each VOI function, a VOI LUT, an explicit window, and flat
 * frames. The reference files check it against pydicom too (test_references). */
static void fill_lut(dicom_lut *lut, int n, int64_t first, int bits, uint64_t *seed)
{
    lut->n = n;
    lut->first = first;
    lut->bits = bits;
    lut->data = malloc((size_t)n * sizeof *lut->data);
    ck_assert_ptr_nonnull(lut->data);
    for (int i = 0; i < n; i++) {
        *seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
        lut->data[i] = (uint16_t)((*seed >> 33) & ((1u << bits) - 1));
    }
}

START_TEST(test_grey_table_equals_per_pixel)
{
    const int rows = 37, cols = 41;
    size_t n = (size_t)rows * cols;
    uint64_t seed = 12345;
    for (int variant = 0; variant < 400; variant++) {
        dicom_frame f;
        memset(&f, 0, sizeof f);
        dicom_header *h = &f.header;
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t r = seed >> 11;
        h->rows = rows;
        h->columns = cols;
        h->samples_per_pixel = 1;
        h->frames = 1;
        h->bits_allocated = r & 1 ? 16 : 8;
        h->bits_stored = 1 + (int)((r >> 1) % (uint64_t)h->bits_allocated);
        h->high_bit = h->bits_stored - 1 +
                      (int)((r >> 6) % (uint64_t)(h->bits_allocated - h->bits_stored + 1));
        h->pixel_representation = (int)((r >> 10) & 1);
        strcpy(h->photometric, (r >> 11) & 1 ? "MONOCHROME1" : "MONOCHROME2");
        if ((r >> 12) % 5 == 0) strcpy(h->presentation_lut_shape, "INVERSE");
        h->rescale_slope = (r >> 15) & 1 ? 1 : 0.37 + (double)((r >> 16) % 7);
        h->rescale_intercept = (r >> 19) & 1 ? 0 : -1024.5;
        h->has_padding = (r >> 20) % 3 == 0;
        h->has_padding_limit = h->has_padding && (r >> 22) & 1;
        h->padding_value = (int64_t)((r >> 23) % 64);
        h->padding_limit = (int64_t)((r >> 29) % 300);
        /* A flat frame now and then (every pixel one value, or only padding and one value). */
        bool flat = (r >> 38) % 11 == 0;
        if ((r >> 35) % 4 == 0) fill_lut(&h->modality_lut, 1 + (int)((r >> 40) % 300),
                                         -(int64_t)((r >> 44) % 50), 12, &seed);
        const char *functions[3] = {"LINEAR", "LINEAR_EXACT", "SIGMOID"};
        h->has_window = (r >> 48) % 3 != 0;
        strcpy(h->voi_function, functions[(r >> 50) % 3]);
        h->window_center = (double)((r >> 52) % 200) - 50;
        h->window_width = (double)((r >> 56) % 300) + ((r >> 60) & 1 ? 0.5 : 0);
        if (!h->has_window && (r >> 61) & 1) fill_lut(&h->voi_lut, 256, 0, 10, &seed);
        size_t bytes = (size_t)h->bits_allocated / 8;
        f.size = n * bytes;
        f.pixels = malloc(f.size);
        ck_assert_ptr_nonnull(f.pixels);
        for (size_t i = 0; i < f.size; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            f.pixels[i] = flat ? (uint8_t)(i % bytes ? 0 : 5) : (uint8_t)(seed >> 56);
        }
        for (int mode = RADDINO_WINDOW_MINMAX; mode <= RADDINO_WINDOW_EXPLICIT; mode++) {
            raddino_load_options o;
            memset(&o, 0, sizeof o);
            o.window = mode;
            o.window_center = 40;
            o.window_width = 1 + (double)(variant % 90);
            uint8_t *a = malloc(3 * n), *b = malloc(3 * n);
            ck_assert(a && b);
            raddino_status sa = dicom_greyscale_to_rgb(&f, "synthetic", &o, false, a);
            raddino_status sb = dicom_greyscale_to_rgb(&f, "synthetic", &o, true, b);
            ck_assert_int_eq(sa.code, 0);
            ck_assert_int_eq(sb.code, 0);
            ck_assert_msg(memcmp(a, b, 3 * n) == 0,
                          "variant %d window mode %d: table and per-pixel bytes differ (bits "
                          "%d/%d/%d signed %d)", variant, mode, h->bits_allocated,
                          h->bits_stored, h->high_bit, h->pixel_representation);
            free(a);
            free(b);
        }
        free(h->modality_lut.data);
        free(h->voi_lut.data);
        free(f.pixels);
    }
}
END_TEST

/* Greyscale JPEG 2000 and JPEG-LS straight through OpenJPEG and CharLS (dicom_direct.c) give
 * the bytes GDCM gives, and the plain radiographs do take that path (the direct decoder says it
 * decoded them); the two hip images, whose codestreams have 16-bit precision under Bits
 * Stored 10, are left to GDCM. */
START_TEST(test_direct_equals_gdcm)
{
    const char *keys[] = {"dicom/RG2_hip_q_J2KR.dcm", "dicom/RG3_J2KI.dcm",
                          "shared/dicom_pydicom-pylibjpeg-data/RG1_J2KI.dcm",
                          "shared/dicom_pydicom-pylibjpeg-data/RG3_J2KR.dcm",
                          "dicom/RG2_hip_q_JLSL.dcm",
                          "shared/dicom_pydicom-pylibjpeg-data/RG1_JLSN.dcm",
                          "shared/dicom_pydicom-pylibjpeg-data/RG2_JLSL.dcm"};
    const int first_jpeg_ls = 4;
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const ref_line *r = NULL;
        for (int i = 0; i < n_refs; i++)
            if (strcmp(refs[i].key, keys[k]) == 0) r = &refs[i];
        ck_assert_msg(r != NULL, "%s: not in refs.tsv", keys[k]);
        const char *path = ref_path(r);
        if (!path) {
            fprintf(stderr, "test_dicom: %s skipped (no ../shared/data)\n", keys[k]);
            continue;
        }
        size_t size;
        uint8_t *data = test_read_file(path, &size);
        dicom_frame direct, gdcm;
        raddino_status st = dicom_decode_frame(data, size, path, 0, -1, &direct);
        ck_assert_msg(st.code == 0, "%s", st.message);
        setenv("RADDINO_TEST_DICOM_GDCM_ONLY", "1", 1);
        st = dicom_decode_frame(data, size, path, 0, -1, &gdcm);
        unsetenv("RADDINO_TEST_DICOM_GDCM_ONLY");
        ck_assert_msg(st.code == 0, "%s", st.message);
        ck_assert_uint_eq(direct.size, gdcm.size);
        ck_assert_msg(memcmp(direct.pixels, gdcm.pixels, gdcm.size) == 0,
                      "%s: the direct decoder's and GDCM's samples differ", keys[k]);
        /* The direct path itself, on the frame's joined fragments. */
        dicom_layout l;
        ck_assert_int_eq(dicom_check_structure(data, size, path, &l).code, 0);
        uint8_t *stream;
        size_t stream_size;
        ck_assert_int_eq(dicom_encapsulated_frame(data, &l, path, 1, 0, false, &stream,
                                                  &stream_size).code, 0);
        uint8_t *pixels = malloc(gdcm.size);
        ck_assert_ptr_nonnull(pixels);
        bool plain = k != 0 && (int)k != first_jpeg_ls;     /* the hip images: 16-bit streams */
        dicom_direct_result (*decode)(const uint8_t *, size_t, const dicom_header *, uint8_t *,
                                      size_t) =
            (int)k >= first_jpeg_ls ? dicom_jls_decode : dicom_j2k_decode;
        ck_assert_int_eq(decode(stream, stream_size, &gdcm.header, pixels, gdcm.size),
                         plain ? DICOM_DIRECT_DECODED : DICOM_DIRECT_FALLBACK);
        if (plain) ck_assert_msg(memcmp(pixels, gdcm.pixels, gdcm.size) == 0, "%s", keys[k]);
        /* A cut codestream is not decoded here (GDCM then decides). */
        ck_assert_int_eq(decode(stream, stream_size / 2, &gdcm.header, pixels, gdcm.size),
                         DICOM_DIRECT_FALLBACK);
        free(pixels);
        free(stream);
        dicom_frame_free(&direct);
        dicom_frame_free(&gdcm);
        free(data);
    }
}
END_TEST

static void add_case(Suite *s, const char *name, const TTest *test, int loop_end)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 300);
    if (loop_end) tcase_add_loop_test(tc, test, 0, loop_end);
    else tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

static Suite *dicom_suite(void)
{
    Suite *s = suite_create("dicom");
    add_case(s, "references", test_references, n_refs);
    add_case(s, "twins", test_lossless_twins, 0);
    add_case(s, "monochrome1", test_monochrome1_bone_white, 0);
    add_case(s, "window", test_explicit_window, 0);
    add_case(s, "frames", test_multi_frame, 0);
    add_case(s, "info", test_info, 0);
    add_case(s, "malformed", test_malformed, 0);
    add_case(s, "sniff", test_sniff_by_content, 0);
    add_case(s, "frame_pointer", test_frame_pointer_without_frames, 0);
    add_case(s, "second_frames", test_second_frames, 0);
    add_case(s, "refused", test_refused, 0);
    add_case(s, "rle_decoder", test_rle_decoder, 0);
    add_case(s, "grey_table", test_grey_table_equals_per_pixel, 0);
    add_case(s, "direct_codecs", test_direct_equals_gdcm, 0);
    add_case(s, "codec_abort", test_codec_abort_isolated, 0);
    add_case(s, "codec_hang", test_codec_hang_stopped, 0);
    return s;
}

int main(void)
{
    if (!read_refs()) {
        fprintf(stderr, "test_dicom: cannot read %s\n", test_path("dicom/refs.tsv"));
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(dicom_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
