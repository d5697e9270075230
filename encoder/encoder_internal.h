/* encoder_internal.h — every private header of encoder/, for the tests and benches that check
 * the pieces one by one. The encoder's own files include only the headers they use:
 *
 *   status.c        raddino_status helpers                         encoder_status.h
 *   safetensors.c   memory-mapped safetensors reader, header validated before any data is touched
 *   config.c        config.json + preprocessor_config.json (cJSON)
 *   image.c         decoding: libpng, libjpeg-turbo, Pillow's RGB rules; dispatch by content
 *   image_formats.c BMP, PNM and TGA decoders that follow Pillow 9.4 step by step
 *   preprocess.c    Pillow-exact bicubic resize, centre crop, rescale + normalise
 *   weights.c       maps tensor names of both layouts onto vit_weights (F16/BF16 converted)
 *   vit.c           the forward pass
 *   encoder.c       the public API
 *   dicom.cpp       GDCM behind a C interface: DICOM attributes and one decoded frame
 *   dicom_pixels.c  DICOM pixels -> the grey levels a reader sees -> 8-bit RGB; dicom info
 *
 * (finding and downloading weights is hub/, beside the encoder). Headers: encoder_status.h,
 * safetensors.h, model_config.h, image_internal.h (image.c, image_formats.c), preprocess.h,
 * weights.h, gemm.h (gemm.c, attention.c), vit.h, dicom_internal.h (dicom.cpp, dicom_pixels.c).
 */
#ifndef RADDINO_ENCODER_INTERNAL_H
#define RADDINO_ENCODER_INTERNAL_H

#include "model_config.h"
#include "dicom_internal.h"
#include "encoder_status.h"
#include "gemm.h"
#include "image_internal.h"
#include "preprocess.h"
#include "safetensors.h"
#include "vit.h"
#include "weights.h"

#endif
