/* image_internal.h — private to encoder/: the image module behind raddino_image_* (image.c: libpng,
 * libjpeg-turbo, Pillow's RGB rules, dispatch by content, raddino_image_sniff; image_formats.c:
 * BMP, PNM and TGA decoders that follow Pillow 9.4 step by step). */
#ifndef RADDINO_IMAGE_INTERNAL_H
#define RADDINO_IMAGE_INTERNAL_H

#include "raddino_encoder.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- image.c ---- (raddino_image_load / _memory / _free are public) */

/* The 16-bit rule: u8 = floor((v - min) * 255 / (max - min) + 0.5) in double, all 0 when flat. */
void image_scale_16_to_8(const uint16_t *src, size_t n, uint8_t *dst);

/* Reads a whole file (regular file or pipe) into malloc'd memory, within the size limit. */
raddino_status image_read_file(const char *path, uint8_t **data, size_t *size);

/* Refuses zero and oversized images (w * h over max_pixels, 0 = the default), from the header,
 * before any pixel buffer exists. */
raddino_status image_check_size(const char *name, uint64_t w, uint64_t h, uint64_t max_pixels);

/* 16-bit samples (1 grey or 3 RGB channels) -> RGB with the 16-bit rule (one min and max over
 * the colour samples). */
raddino_status image_rgb_from_16(const uint16_t *src, size_t n_pixels, int channels,
                                 uint8_t *rgb);

/* ---- image_formats.c ---- */

/* BMP ("BM"), PNM ("P1".."P6") or else TGA (when the header passes Pillow's TGA checks) ->
 * out->rgb with Pillow 9.4's pixels, or a one-line refusal naming `name`. */
raddino_status image_decode_bmp_pnm_tga(const uint8_t *data, size_t size, const char *name,
                                        uint64_t max_pixels, raddino_image *out);
bool image_tga_sniff(const uint8_t *data, size_t size);

#ifdef __cplusplus
}
#endif
#endif
