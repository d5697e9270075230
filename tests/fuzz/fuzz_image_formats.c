/* fuzz_image_formats.c — the BMP, PNM and TGA decoders (encoder/image_formats.c) alone, without
 * the preprocessing fuzz_image adds (a 518 x 518 bicubic resize per input, which keeps that
 * harness under ten inputs a second). Each input is decoded twice, the second time after the
 * heap has been dirtied: the two results must be identical, so an output byte that depends on
 * memory the decoder did not write shows up as a crash even without MemorySanitizer. The input
 * is routed to the decoders whatever its first bytes (a PNG or JPEG signature is overwritten),
 * so that the fuzzer does not spend its time in libpng or libjpeg. */
#include "encoder_internal.h"
#include "fuzz.h"

#include <string.h>

#define FUZZ_MAX_PIXELS 4000000ull

static int decode(const uint8_t *data, size_t size, raddino_image *img, int *code)
{
    raddino_status st = raddino_image_load_memory(data, size, FUZZ_NAME, FUZZ_MAX_PIXELS, img);
    *code = st.code;
    if (st.code) {
        FUZZ_REQUIRE(img->rgb == NULL);
        return fuzz_check_error(&st);
    }
    FUZZ_REQUIRE(img->rgb != NULL && img->width > 0 && img->height > 0);
    FUZZ_REQUIRE((uint64_t)img->width * (uint64_t)img->height <= FUZZ_MAX_PIXELS);
    FUZZ_REQUIRE(img->source_bits == 8 || img->source_bits == 16);
    FUZZ_REQUIRE(img->source_channels >= 1 && img->source_channels <= 4);
    FUZZ_REQUIRE(img->format && (!strcmp(img->format, "bmp") || !strcmp(img->format, "pnm") ||
                                 !strcmp(img->format, "tga")));
    return 0;
}

int fuzz_image_formats(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    /* Not DICOM, JPEG or PNG: those have their own harnesses. */
    if (size >= 132 && !memcmp(copy + 128, "DICM", 4)) copy[128] = 'X';
    if (size >= 1 && copy[0] == 0xFF) copy[0] = 0xFE;
    if (size >= 1 && copy[0] == 0x89) copy[0] = 0x88;
    raddino_image a, b;
    int code_a, code_b, rc = decode(copy, size, &a, &code_a);
    if (!rc) {
        size_t dirt_size = a.rgb ? (size_t)a.width * (size_t)a.height * 3 : 4096;
        uint8_t *dirt = malloc(dirt_size);
        if (dirt) memset(dirt, 0xA5, dirt_size);
        free(dirt);
        rc = decode(copy, size, &b, &code_b);
        if (!rc && code_a != code_b) {
            fprintf(stderr, "fuzz: the second decode gave status %d, the first %d\n", code_b,
                    code_a);
            rc = -1;
        }
        if (!rc && a.rgb &&
            (a.width != b.width || a.height != b.height ||
             memcmp(a.rgb, b.rgb, (size_t)a.width * (size_t)a.height * 3) != 0)) {
            fprintf(stderr, "fuzz: two decodes of the same bytes differ\n");
            rc = -1;
        }
        raddino_image_free(&b);
    }
    raddino_image_free(&a);
    free(copy);
    return rc;
}

FUZZ_ENTRY(fuzz_image_formats)
