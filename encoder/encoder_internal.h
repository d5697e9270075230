/* encoder_internal.h — private to encoder/: the pieces behind raddino_encoder.h.
 *
 *   status.c        raddino_status helpers
 *   safetensors.c   memory-mapped safetensors reader, header validated before any data is touched
 *   config.c        config.json + preprocessor_config.json (cJSON)
 *   image.c         decoding: libpng, libjpeg-turbo, Pillow's RGB rules; dispatch by content
 *   image_formats.c BMP, PNM and TGA decoders that follow Pillow 9.4 step by step
 *   preprocess.c    Pillow-exact bicubic resize, centre crop, rescale + normalise
 *   weights.c       maps tensor names of both layouts onto vit_weights (F16/BF16 converted)
 *   vit.c           the forward pass
 *   encoder.c       the public API
 *   hub.c           Hugging Face hub cache: discovery, names and paths
 *   hub_fetch.c     Hugging Face hub downloads with libcurl
 *   dicom.cpp       GDCM behind a C interface: DICOM attributes and one decoded frame
 *   dicom_pixels.c  DICOM pixels -> the grey levels a reader sees -> 8-bit RGB; dicom info
 *
 * Tests include this header too: they check the pieces one by one.
 */
#ifndef RADDINO_ENCODER_INTERNAL_H
#define RADDINO_ENCODER_INTERNAL_H

#include "raddino_encoder.h"

#include <stdarg.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status.c ---- */
raddino_status status_ok(void);
raddino_status status_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- safetensors.c ---- */

typedef enum {
    ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL, ST_OTHER
} safetensors_dtype;

#define SAFETENSORS_MAX_DIMS 8
#define SAFETENSORS_MAX_NAME 256
/* A header larger than this is refused (the real RAD-DINO header is about 20 KB). cJSON spends
 * about 64 bytes per value, so a header of "0,0,0,..." costs 32 times its length: 16 MiB keeps
 * that under 512 MiB and still holds the 131072 tensors we accept at ~120 bytes each. */
#define SAFETENSORS_MAX_HEADER (16u << 20)

typedef struct {
    char name[SAFETENSORS_MAX_NAME];
    safetensors_dtype dtype;
    int n_dims;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    uint64_t n_elements;
    uint64_t begin, end;        /* byte offsets relative to the data section */
    const uint8_t *data;        /* into the mapping: data_section + begin */
} safetensors_tensor;

typedef struct {
    char path[1024];
    void *map;                  /* whole file, read-only mapping (or the caller's bytes) */
    size_t map_size;
    bool mapped;                /* map is ours to munmap (false for safetensors_open_memory) */
    const uint8_t *data_section;
    uint64_t data_size;
    int n_tensors;
    safetensors_tensor *tensors;    /* sorted by name */
} safetensors_file;

/* Maps and validates the file: header length within the file, JSON object, every entry with a
 * known dtype string, shape of non-negative ints whose byte size matches data_offsets, offsets
 * inside the data section, no two tensors overlapping. Errors name the file and the tensor. */
raddino_status safetensors_open(const char *path, safetensors_file *out);
/* The same checks on a file already in memory (the fuzz harness): data must outlive f; name is
 * used in messages (NULL: "<memory>"). */
raddino_status safetensors_open_memory(const void *data, size_t size, const char *name,
                                       safetensors_file *out);
void safetensors_close(safetensors_file *f);
const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name);
const char *safetensors_dtype_name(safetensors_dtype dtype);

/* ---- config.c ---- */

typedef struct {
    int hidden, layers, heads, mlp, patch, channels, image_size;
    float layer_norm_eps;
    bool qkv_bias;
    double layerscale_value;
} vit_config;

typedef struct {
    bool do_convert_rgb, do_resize, do_center_crop, do_rescale, do_normalize;
    int resize_shortest_edge;        /* > 0 when size = {"shortest_edge": N} */
    int resize_height, resize_width; /* when size = {"height": H, "width": W} */
    int resample;
    int crop_height, crop_width;
    double rescale_factor;
    float mean[3], std[3];
} preprocess_config;

/* Reads MODEL_DIR/config.json. Missing keys take transformers' Dinov2Config defaults
 * (layer_norm_eps 1e-12!). Refuses use_swiglu_ffn, register tokens, hidden_act other than
 * gelu, num_channels other than 3, sizes that do not divide. */
raddino_status config_load_model(const char *path, vit_config *out);
raddino_status config_parse_model(const char *json, size_t len, const char *name, vit_config *out);
/* Reads preprocessor_config.json. Missing keys take BitImageProcessor defaults. */
raddino_status config_load_preprocess(const char *path, preprocess_config *out);
raddino_status config_parse_preprocess(const char *json, size_t len, const char *name,
                                       preprocess_config *out);

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

/* ---- weights.c ---- */

typedef struct {
    const float *norm1_w, *norm1_b;
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;  /* [D, D] / [D] each (row blocks of qkv) */
    const float *proj_w, *proj_b;
    const float *ls1;
    const float *norm2_w, *norm2_b;
    const float *fc1_w, *fc1_b;     /* [M, D] / [M] */
    const float *fc2_w, *fc2_b;     /* [D, M] / [D] */
    const float *ls2;
} vit_layer_weights;

typedef struct {
    const float *cls_token;         /* [D] */
    const float *pos_embed;         /* [1 + table_h * table_w, D] */
    int table_h, table_w;           /* grid of the position table */
    const float *patch_w;           /* [D, C * patch * patch] */
    const float *patch_b;           /* [D] */
    const float *norm_w, *norm_b;   /* final LayerNorm */
    vit_layer_weights *layers;      /* [layers] */
    raddino_weights_layout layout;
    uint64_t n_parameters;
    /* Buffers we own: converted F16/BF16 tensors and F32 tensors that were not 4-byte aligned. */
    void **owned;
    int n_owned, cap_owned;
} vit_weights;

/* Detects the layout (embeddings.cls_token -> Hugging Face, cls_token -> backbone), checks
 * every tensor's presence, dtype (F32/F16/BF16) and shape against cfg, and fills w. F32 data
 * is used in place. The safetensors file must stay open while w is used. */
raddino_status weights_load(const safetensors_file *f, const vit_config *cfg, vit_weights *w);
void weights_free(vit_weights *w);

/* ---- gemm.c ---- */

typedef enum {
    GEMM_BLAS = 0,          /* OpenBLAS sgemm on the weights in place */
    GEMM_AVX512_F32 = 1,    /* our AVX-512 kernel, weights packed once */
    GEMM_AVX512_BF16 = 2    /* our AVX-512 BF16 kernel: bf16 inputs, float32 sums */
} gemm_kernel;

/* A weight W [n, k] ready for y = x W^T: packed panels for our kernels, the plain matrix for
 * GEMM_BLAS. */
typedef struct {
    gemm_kernel kernel;
    int n, k;
    void *panels;           /* owned, 64-byte aligned (our kernels) */
    const float *plain;     /* GEMM_BLAS: not owned */
    size_t ld;              /* GEMM_BLAS: row stride of plain */
} gemm_matrix;

bool gemm_cpu_has_avx512(void);
bool gemm_cpu_has_avx512_bf16(void);
uint16_t gemm_float_to_bf16(float f);
raddino_status gemm_matrix_pack(gemm_kernel kernel, const float *w, int n, int k, size_t ldw,
                                gemm_matrix *out);
/* One weight W [n_parts * part_rows, k] made of n_parts matrices stacked row-wise (our
 * kernels only: GEMM_BLAS takes a single part, in place). */
raddino_status gemm_matrix_pack_stacked(gemm_kernel kernel, const float *const *parts,
                                        int n_parts, int part_rows, int k, size_t ldw,
                                        gemm_matrix *out);
void gemm_matrix_free(gemm_matrix *m);
/* Drops the resident pages of a packed weight's source in a read-only file mapping. */
void gemm_release_source(const float *w, size_t bytes);
/* y[m, n] = x[m, k] W^T + bias (bias may be NULL). bf16_scratch: m * (k + 1) uint16 for
 * GEMM_AVX512_BF16, else unused. Parallel (OpenMP) inside. */
void gemm_linear(const gemm_matrix *w, const float *x, int m, size_t ldx, const float *bias,
                 float *y, size_t ldy, uint16_t *bf16_scratch);
/* y = gelu(x W^T + bias), GELU fused into the product's last pass for our kernels. With
 * GEMM_AVX512_BF16 and y_bf16 set, the result goes to y_bf16 as bf16 (row stride n rounded up to
 * even, ready for gemm_linear_bf16_input) and y holds only partial sums; else it is in y. */
void gemm_linear_gelu(const gemm_matrix *w, const float *x, int m, size_t ldx, const float *bias,
                      float *y, size_t ldy, uint16_t *bf16_scratch, uint16_t *y_bf16);
/* y = x W^T + bias for GEMM_AVX512_BF16 weights with x already bf16 (row stride k rounded up
 * to even, as gemm_linear_gelu writes it). */
void gemm_linear_bf16_input(const gemm_matrix *w, const uint16_t *x, int m, const float *bias,
                            float *y, size_t ldy);
/* y = LayerNorm(x) row by row (biased variance), vectorised where AVX-512 is. */
void vector_layer_norm(const float *x, int rows, int D, const float *gamma, const float *beta,
                       float eps, float *y);
/* x = 0.5 x (1 + erf(x / sqrt 2)) in place (exact-erf GELU), vectorised where AVX-512 is. */
void vector_gelu(float *x, size_t n);
/* Our kernels' attention: ctx[T, D] = per head softmax(q k^T * scale) v; q, k, v rows have
 * stride ld_qkv; scratch: gemm_attention_scratch_bytes(...) bytes for `threads` threads.
 * The scores are float32 for both kernels; GEMM_AVX512_BF16 rounds the probabilities and the
 * values to bf16 for the second product. */
size_t gemm_attention_scratch_bytes(int tokens, int hidden, int heads, int threads);
void gemm_attention(gemm_kernel kernel, const float *q, const float *k, const float *v,
                    size_t ld_qkv, int T, int D, int heads, float scale, float *ctx, void *scratch,
                    int threads);

/* ---- vit.c ---- */

/* The weights as the chosen GEMM kernel wants them (packed once at load for our kernels). */
typedef struct {
    gemm_matrix q, k, v;    /* GEMM_BLAS: the three projections, in place */
    gemm_kernel values;     /* our kernels: attention's probabilities x values product */
    gemm_matrix qkv;        /* our kernels: q, k, v stacked into one [3D, D] product */
    float *qkv_bias;        /* our kernels: [3D] q, k, v biases side by side (owned) */
    gemm_matrix proj, fc1, fc2;
} vit_layer_kernels;

typedef struct {
    gemm_kernel kernel;
    gemm_matrix patch;
    vit_layer_kernels *layers;
    int n_layers;
} vit_kernels;

/* The products of a layer whose precision is chosen one by one (attention's scores are
 * always float32). */
typedef enum { VIT_QKV, VIT_VALUES, VIT_PROJ, VIT_FC1, VIT_FC2, VIT_PRODUCTS } vit_product;

/* The kernel a product of layer `layer` (-1: the patch embedding, product ignored) runs on
 * when the model runs on `kernel`: the same one, except in bf16 mode, where the products that
 * would lose the most stay float32 (see vit.c). */
gemm_kernel vit_product_kernel(const vit_config *cfg, gemm_kernel kernel, int layer,
                               vit_product product);

/* release_mapped: the weights are F32 tensors of a read-only file mapping whose pages may be
 * dropped once packed (see gemm_release_source). */
raddino_status vit_kernels_create(const vit_config *cfg, const vit_weights *w, gemm_kernel kernel,
                                  bool release_mapped, vit_kernels *out);
/* Every product on `kernel`, whatever vit_product_kernel says (the precision studies). */
raddino_status vit_kernels_create_uniform(const vit_config *cfg, const vit_weights *w,
                                          gemm_kernel kernel, vit_kernels *out);
void vit_kernels_free(vit_kernels *k);

/* Scratch buffers for one forward pass at one input size. */
typedef struct vit_run_state vit_run_state;

/* For inputs of input_h x input_w pixels; the grid is input / patch (a remainder is dropped, as
 * the stride-patch convolution does). threads: the OpenMP threads the pass will run on. */
raddino_status vit_state_create(const vit_config *cfg, gemm_kernel kernel, int threads,
                                int input_h, int input_w, vit_run_state **out);
void vit_state_free(vit_run_state *s);

/* Position table for a grid_h x grid_w input: the stored table when the grid matches,
 * else transformers' bicubic interpolation (a = -0.75, align_corners false) of the patch rows.
 * out: [1 + grid_h * grid_w, D]. */
void vit_position_embeddings(const vit_config *cfg, const vit_weights *w, int grid_h, int grid_w,
                             float *out);

/* One image: pixels [C, input_h, input_w] -> tokens [1 + grid_h*grid_w, D]. */
raddino_status vit_forward(const vit_config *cfg, const vit_weights *w, const vit_kernels *kern,
                           vit_run_state *s, const float *pixels, float *tokens);

/* Optional hook to observe intermediate activations (tests compare them with the golden
 * stages). name is e.g. "embeddings.patch", "layer0.norm1", "layer0.qkv" (q|k|v side by side). */
typedef void (*vit_stage_hook)(void *user, const char *name, const float *data, int rows,
                               int cols);
void vit_state_set_hook(vit_run_state *s, vit_stage_hook hook, void *user);

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

/* DICOM bytes -> 8-bit RGB image, as a reader sees it (see dicom_pixels.c). */
raddino_status dicom_load(const uint8_t *data, size_t size, const char *name,
                          const raddino_load_options *opts, raddino_image *out);

#ifdef __cplusplus
}
#endif
#endif
