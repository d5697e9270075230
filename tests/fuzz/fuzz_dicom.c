/* fuzz_dicom.c — DICOM: the structure walk (dicom_pixels.c) that runs before GDCM, the header
 * GDCM parses, the decoded frame and the grey-level pipeline to 8-bit RGB, and the metadata the
 * store keeps (raddino_dicom_read_info_memory, with a salt so the patient key is hashed).
 *
 * The input is the file as it is, so that the corpus stays plain DICOM files; the load options
 * (window mode, frame) are picked from the input's length, so that every mode is reached
 * without a header the mutations would have to keep intact. GDCM is Debian's build, not
 * instrumented: coverage guides through our code only, and ASan sees GDCM's heap through the
 * interposed malloc. The pixel cap is 4 megapixels, as in fuzz_image.c. Our RLE Lossless decoder is
 * also run on the raw input (fuzz_rle), besides the RLE files the DICOM path reaches. */
#include "encoder_internal.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_PIXELS 4000000ull

/* A NUL within the field: text the store writes must be a C string. */
#define FUZZ_REQUIRE_TEXT(field) FUZZ_REQUIRE(memchr((field), 0, sizeof(field)) != NULL)

static int check_info(const raddino_dicom_info *info)
{
    FUZZ_REQUIRE_TEXT(info->sop_instance_uid);
    FUZZ_REQUIRE_TEXT(info->study_instance_uid);
    FUZZ_REQUIRE_TEXT(info->series_instance_uid);
    FUZZ_REQUIRE_TEXT(info->modality);
    FUZZ_REQUIRE_TEXT(info->view_position);
    FUZZ_REQUIRE_TEXT(info->body_part_examined);
    FUZZ_REQUIRE_TEXT(info->photometric_interpretation);
    FUZZ_REQUIRE_TEXT(info->transfer_syntax_uid);
    FUZZ_REQUIRE_TEXT(info->patient_key);
    size_t key = strlen(info->patient_key);
    FUZZ_REQUIRE(key == 0 || key == 64);
    return 0;
}

static int check_image(const raddino_image *img)
{
    FUZZ_REQUIRE(img->rgb != NULL && img->width > 0 && img->height > 0);
    FUZZ_REQUIRE((uint64_t)img->width * (uint64_t)img->height <= FUZZ_MAX_PIXELS);
    FUZZ_REQUIRE(img->source_bits >= 1 && img->source_bits <= 32);
    FUZZ_REQUIRE(img->source_channels == 1 || img->source_channels == 3);
    FUZZ_REQUIRE(img->format != NULL && strcmp(img->format, "dicom") == 0);
    size_t n = (size_t)img->width * (size_t)img->height * 3;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) sum += img->rgb[i];
    volatile unsigned sink = sum;   /* keeps the reads */
    (void)sink;
    return 0;
}

/* Our RLE Lossless decoder on the raw input as one frame, the image size and sample layout
 * picked from the input's length: every byte is a header or segment byte it must survive. */
static int fuzz_rle(const uint8_t *data, size_t size)
{
    int rows = 1 + (int)(size % 37), columns = 1 + (int)(size / 37 % 29);
    int samples = size % 2 ? 3 : 1, bytes = 1 << (size / 7 % 3);
    size_t n = (size_t)rows * (size_t)columns * (size_t)samples * (size_t)bytes;
    uint8_t *out = malloc(n);
    if (!out) return 0;
    memset(out, 0, n);
    raddino_status st = dicom_rle_decode(data, size, FUZZ_NAME, rows, columns, samples, bytes, out);
    int rc = st.code ? fuzz_check_error(&st) : 0;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) sum += out[i];
    volatile unsigned sink = sum;
    (void)sink;
    free(out);
    return rc;
}

int fuzz_dicom(const uint8_t *data, size_t size)
{
    int rc = fuzz_rle(data, size);
    if (rc) return rc;
    raddino_dicom_info info;
    raddino_status st = raddino_dicom_read_info_memory(data, size, FUZZ_NAME, "fuzz-salt", &info);
    rc = st.code ? fuzz_check_error(&st) : check_info(&info);
    if (rc) return rc;
    /* Other formats are fuzz_image.c's: the image loader tells them apart by content. */
    if (!dicom_sniff(data, size)) return 0;

    raddino_load_options opts;
    memset(&opts, 0, sizeof opts);
    opts.max_pixels = FUZZ_MAX_PIXELS;
    opts.window = (int)(size % 3);      /* min-max, the file's own window/VOI LUT, explicit */
    opts.window_center = 1000.5;
    opts.window_width = 300;
    opts.frame = (int)(size / 3 % 3);   /* 0: single-frame only; 1 and 2 name a frame */
    raddino_image img;
    memset(&img, 0, sizeof img);
    st = raddino_image_load_memory_ex(data, size, FUZZ_NAME, &opts, &img);
    if (st.code) {
        FUZZ_REQUIRE(img.rgb == NULL);
        return fuzz_check_error(&st);
    }
    rc = check_image(&img);
    raddino_image_free(&img);
    return rc;
}

FUZZ_ENTRY(fuzz_dicom)
