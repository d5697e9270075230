/* preprocess.h — private to encoder/: Pillow-exact bicubic resize, centre crop, rescale and
 * normalise (preprocess.c). */
#ifndef RADDINO_PREPROCESS_H
#define RADDINO_PREPROCESS_H

#include "raddino_encoder.h"
#include "model_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- preprocess.c ---- */

/* Output size of the network input for an image of w x h under cfg. */
void preprocess_output_size(const preprocess_config *cfg, int w, int h, int *out_w, int *out_h);

/* Resize (Pillow bicubic, fixed point) + centre crop (floor; zero padding where the image is
 * smaller, as transformers). crop: out_w * out_h * 3 bytes. Only the part of the resized image
 * that survives the crop is computed, so a 1 x 100000 image costs no more than a 518 x 518 one. */
raddino_status preprocess_crop(const preprocess_config *cfg, const raddino_image *img,
                               uint8_t *crop, int out_w, int out_h);

/* Rescale + normalise an RGB crop into a [3, h, w] float tensor, through a 256-entry table per
 * channel (float32(v * rescale_factor) in double, then (x - mean) / std in float32). */
void preprocess_normalize(const preprocess_config *cfg, const uint8_t *crop, int w, int h,
                          float *pixels);

#ifdef __cplusplus
}
#endif
#endif
