/* dicom_internal.h — private to encoder/: DICOM (dicom.cpp: GDCM behind a C interface, attributes and
 * one decoded frame; dicom_pixels.c: pixels -> the grey levels a reader sees -> 8-bit RGB, dicom
 * info). */
#ifndef RADDINO_DICOM_INTERNAL_H
#define RADDINO_DICOM_INTERNAL_H

#include "raddino_encoder.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dicom.cpp ---- (the only C++ file; no exception leaves it) */

/* A lookup table from a Modality LUT or VOI LUT Sequence (first item). n == 0: absent. */
typedef struct {
    int n;              /* entries (descriptor 0 already turned into 65536) */
    int64_t first;      /* first input value mapped (signed when the pixels are) */
    int bits;           /* bits of each output entry */
    uint16_t *data;     /* n entries, owned */
} dicom_lut;

/* What decides the grey levels, read from the file. Numbers that are absent or unreadable take
 * the standard's defaults (slope 1, intercept 0, one frame); has_* say what was present. */
typedef struct {
    int rows, columns, samples_per_pixel, frames;   /* rows/columns -1 when absent */
    int bits_allocated, bits_stored, high_bit, pixel_representation, planar_configuration;
    bool subsampled_422;        /* decoded YBR_FULL_422 kept 2 samples per pixel (native data) */
    char photometric[24];       /* after decoding: as GDCM's codec left it (JPEG YBR -> RGB) */
    char presentation_lut_shape[24];
    char transfer_syntax[65];
    bool has_rescale;
    double rescale_slope, rescale_intercept;
    bool has_padding, has_padding_limit;
    int64_t padding_value, padding_limit;   /* stored pixel values */
    bool has_window;
    double window_center, window_width;     /* the first pair */
    char voi_function[24];                  /* LINEAR (default), LINEAR_EXACT, SIGMOID */
    dicom_lut modality_lut, voi_lut;
    raddino_dicom_info info;                /* identifiers; patient_key left empty */
    char patient_id[80];                    /* plain; wiped by dicom_header_free */
} dicom_header;

typedef struct {
    dicom_header header;
    uint8_t *pixels;    /* one frame as decoded: samples of bits_allocated/8 bytes, little
                           endian, raw (not masked), planar as header.planar_configuration */
    size_t size;        /* bytes */
    void *mapping;      /* non-NULL: pixels lie in this mapping (the decoder process wrote them
                           there), unmapped by dicom_frame_free; else pixels is malloc'd */
    size_t mapping_size;
} dicom_frame;

/* Parses the data set up to the pixel data; nothing is decoded. */
raddino_status dicom_read_header(const uint8_t *data, size_t size, const char *name,
                                 dicom_header *out);
/* Checks the header (pixel cap over all frames, bits, samples) before decoding, then decodes
 * and keeps frame `frame` (from 0); frame -1: single-frame files only (multi-frame refused). */
raddino_status dicom_decode_frame(const uint8_t *data, size_t size, const char *name,
                                  uint64_t max_pixels, int frame, dicom_frame *out);
void dicom_header_free(dicom_header *h);
void dicom_frame_free(dicom_frame *f);

/* ---- dicom_pixels.c ---- */

/* "DICM" at offset 128 (the DICOM Part 10 file preamble). */
bool dicom_sniff(const uint8_t *data, size_t size);

/* Where the walk found what the decoder needs (offsets into the file; 0: absent). */
typedef struct {
    bool implicit, big_endian;      /* of the data set, as read (see vr_mismatch) */
    bool vr_mismatch;               /* the data set's VR is not the transfer syntax's (pydicom
                                       reads it with a warning: so do we) */
    size_t pixel_data_at;           /* top-level Pixel Data value: native bytes, or the items
                                       of encapsulated data (offset table first, delimiter last) */
    size_t pixel_data_len;
    size_t pixel_data_element_at;   /* its element header */
    bool encapsulated;
    bool has_frames;                /* top-level Number of Frames present */
    size_t frame_pointer_at;        /* top-level Frame Increment Pointer element */
    size_t frame_pointer_header, frame_pointer_len;
    size_t syntax_at, syntax_len;   /* Transfer Syntax UID element (file meta) and its value */
    size_t meta_group_length_at;    /* File Meta Information Group Length value */
} dicom_layout;

/* Walks every element, item and fragment, checking each length against the bytes left, before
 * GDCM sees the file (Debian's GDCM keeps its assert()s, which abort on broken framing).
 * layout (may be NULL) gets where the pixel data and the frame attributes are. */
raddino_status dicom_check_structure(const uint8_t *data, size_t size, const char *name,
                                     dicom_layout *layout);

/* The bytes of frame `frame` (from 0) of encapsulated pixel data, its fragments joined, chosen
 * as pydicom does: a single frame is every fragment; else fragment `frame` when
 * fragment_per_frame (pydicom's RLE reader), else by the Basic Offset Table, else one fragment
 * per frame when the counts agree. *out is malloc'd. */
raddino_status dicom_encapsulated_frame(const uint8_t *data, const dicom_layout *l,
                                        const char *name, int frames, int frame,
                                        bool fragment_per_frame, uint8_t **out,
                                        size_t *out_size);

/* RLE Lossless (PS3.5 Annex G) frame -> samples, little endian words of bytes_per_sample,
 * one plane per sample (planar configuration 1). out: rows*columns*samples*bytes_per_sample. */
raddino_status dicom_rle_decode(const uint8_t *data, size_t size, const char *name, int rows,
                                int columns, int samples, int bytes_per_sample, uint8_t *out);

/* The grey levels of a decoded greyscale frame: bits above Bits Stored removed (sign-extended
 * when signed), then the Modality LUT (Rescale Slope/Intercept or the LUT). grey: rows*columns
 * doubles; padding (may be NULL): 1 where the stored value is pixel padding. */
raddino_status dicom_grey_values(const dicom_frame *f, const char *name, double *grey,
                                 uint8_t *padding);

/* ---- dicom_direct.c ---- */

typedef enum {
    DICOM_DIRECT_FALLBACK,  /* not the plain greyscale case, or not decoded: GDCM decides */
    DICOM_DIRECT_DECODED    /* pixels hold the frame, as GDCM would have written it */
} dicom_direct_result;

/* One greyscale frame (the frame's fragments joined) straight through OpenJPEG (JPEG 2000
 * codestream or JP2; one thread) or CharLS (JPEG-LS) into pixels (frame_bytes: rows x columns
 * words of Bits Allocated). Run in the decoder child process (codec_decode_isolated). */
dicom_direct_result dicom_j2k_decode(const uint8_t *stream, size_t size, const dicom_header *h,
                                     uint8_t *pixels, size_t frame_bytes);
dicom_direct_result dicom_jls_decode(const uint8_t *stream, size_t size, const dicom_header *h,
                                     uint8_t *pixels, size_t frame_bytes);

/* A decoded greyscale frame -> 8-bit RGB, as a reader sees it (Modality LUT, VOI per opts,
 * MONOCHROME1 inversion, padding black). Frames of up to 16 stored bits go by a table of the
 * stored values; per_pixel forces the per-pixel path (the tests compare the two). */
raddino_status dicom_greyscale_to_rgb(const dicom_frame *f, const char *name,
                                      const raddino_load_options *opts, bool per_pixel,
                                      uint8_t *rgb);

/* DICOM bytes -> 8-bit RGB image, as a reader sees it (see dicom_pixels.c). */
raddino_status dicom_load(const uint8_t *data, size_t size, const char *name,
                          const raddino_load_options *opts, raddino_image *out);

#ifdef __cplusplus
}
#endif
#endif
