/* raddino_encoder.h — the RAD-DINO image encoder (DINOv2 ViT) as a C library.
 *
 * What it does: image file -> RGB pixels -> Hugging Face BitImageProcessor preprocessing
 * (Pillow-exact) -> DINOv2 ViT forward pass in float32 -> all output tokens
 * (row 0 = CLS, rows 1.. = the patch grid, row-major).
 *
 * Usage:
 *
 *     raddino_encoder_params params = raddino_encoder_default_params();
 *     params.n_threads = 2;
 *     raddino_encoder *enc;
 *     raddino_status st = raddino_encoder_open("path/to/rad-dino", &params, &enc);
 *     if (st.code) { fprintf(stderr, "%s\n", st.message); return 1; }
 *     raddino_model_info info;
 *     raddino_encoder_info(enc, &info);
 *     float *cls = malloc(info.hidden * sizeof *cls);
 *     st = raddino_embed_file(enc, "chest.png", cls, NULL);
 *     ...
 *     raddino_encoder_close(enc);
 *
 * Every call returns a raddino_status: code 0 means success; otherwise `message` is one line
 * ("FILE: reason") that can be shown to a user as it is. The library keeps no global mutable
 * state: several encoders may be open at once. One encoder must not be used by two threads at
 * the same time (it owns its scratch buffers); open one per thread or serialise the calls.
 * Exception: raddino_image_load / _load_memory (no shared state), raddino_preprocess and
 * raddino_encoder_info only read the encoder's configuration, fixed at open, so other threads
 * may call them while one thread encodes (raddino index decodes in threads this way).
 *
 * Threads: the forward pass uses OpenMP and OpenBLAS (OpenMP build), one thread pool.
 * params.n_threads = 0 means $RADDINO_THREADS when set, else all cores.
 */
#ifndef RADDINO_ENCODER_H
#define RADDINO_ENCODER_H

#include "raddino_status.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
/* Exported from libraddino.so, built with -fvisibility=hidden (see cmake/install.cmake). */
#pragma GCC visibility push(default)

/* Default pixel cap: 200 megapixels, checked from the file header before any pixel is decoded. */
#define RADDINO_DEFAULT_MAX_PIXELS 200000000ull

/* Arithmetic of the matrix products. bf16 covers the linear layers and attention's
 * probabilities-times-values, except the products whose rounding would move the CLS most (the
 * patch embedding, layer 0's linear products, layer 1's q/k/v: float32); the attention
 * scores, LayerNorm, softmax, GELU and residuals are float32 in both. */
typedef enum {
    RADDINO_PRECISION_FP32 = 0,     /* exact to the reference (default) */
    RADDINO_PRECISION_BF16 = 1      /* bf16 inputs, float32 sums: ~2x faster on CPUs with
                                       AVX512_BF16; CLS within cosine 0.99995 of fp32. Falls back
                                       to fp32 (info.precision says so) where the CPU lacks it */
} raddino_precision;

/* Who computes the float32 matrix products. */
typedef enum {
    RADDINO_GEMM_AUTO = 0,      /* our AVX-512 kernels where the CPU has AVX-512, else OpenBLAS */
    RADDINO_GEMM_BLAS = 1,      /* OpenBLAS sgemm on the mapped weights (no packed copy) */
    RADDINO_GEMM_AVX512 = 2     /* our kernels; an error where the CPU lacks AVX-512 */
} raddino_gemm;

/* How DICOM grey levels become 8 bits (see raddino_load_options). */
typedef enum {
    RADDINO_WINDOW_MINMAX = 0,  /* min-max of the image (padding excluded), as 16-bit PNGs */
    RADDINO_WINDOW_AUTO = 1,    /* the file's first Window Center/Width, else its VOI LUT, else
                                   min-max */
    RADDINO_WINDOW_EXPLICIT = 2 /* window_center / window_width, DICOM LINEAR function */
} raddino_window_mode;

typedef struct {
    int n_threads;          /* 0: $RADDINO_THREADS, else all cores */
    int precision;          /* raddino_precision */
    int gemm;               /* raddino_gemm (fp32 only; bf16 always uses our kernel) */
    uint64_t max_pixels;    /* images larger than this (width*height) are refused; 0 = default */
    const char *weights;    /* weights file; NULL = model.safetensors, else
                               backbone_compatible.safetensors, in the model folder */
    int window;             /* raddino_window_mode for DICOM files (default min-max) */
    double window_center, window_width;     /* RADDINO_WINDOW_EXPLICIT only */
} raddino_encoder_params;

raddino_encoder_params raddino_encoder_default_params(void);

typedef struct raddino_encoder raddino_encoder;

/* Opens a model folder holding config.json, preprocessor_config.json and a weights file.
 * On failure *out is NULL and the status says which file and why. */
raddino_status raddino_encoder_open(const char *model_dir, const raddino_encoder_params *params,
                                    raddino_encoder **out);
void raddino_encoder_close(raddino_encoder *enc);

typedef enum { RADDINO_LAYOUT_HF = 0, RADDINO_LAYOUT_BACKBONE = 1 } raddino_weights_layout;

typedef struct {
    int hidden;             /* D: 768 for ViT-B */
    int layers;
    int heads;
    int mlp;                /* MLP width: mlp_ratio * hidden */
    int patch;              /* 14 */
    int channels;           /* 3 */
    int image_size;         /* config.image_size: the position table is (image_size/patch)^2 + 1 */
    float layer_norm_eps;
    int input_height;       /* network input size after preprocessing (518x518 for RAD-DINO) */
    int input_width;
    int grid_height;        /* input_height / patch */
    int grid_width;
    int tokens;             /* 1 + grid_height * grid_width */
    int layout;             /* raddino_weights_layout of the file that was loaded */
    uint64_t n_tensors;     /* tensors in the weights file */
    uint64_t n_parameters;  /* parameters the encoder uses (mask_token excluded) */
    uint64_t n_file_parameters; /* all values in the weights file (the model card's count) */
    const char *weights_path;
    int precision;          /* raddino_precision actually used (bf16 may have fallen back) */
    const char *kernel;     /* "openblas-fp32", "avx512-fp32" or "avx512-bf16" */
    /* Preprocessing, from preprocessor_config.json (defaults as transformers). */
    int do_convert_rgb, do_resize, do_center_crop, do_rescale, do_normalize;
    int resize_shortest_edge;   /* > 0: shortest edge; else resize_height x resize_width */
    int resize_height, resize_width;
    int resample;               /* PIL resample code; only 3 (bicubic) is supported */
    int crop_height, crop_width;
    double rescale_factor;
    float image_mean[3], image_std[3];
} raddino_model_info;

raddino_status raddino_encoder_info(const raddino_encoder *enc, raddino_model_info *out);

/* What decides the vectors an encoder makes, as a collection records and compares it: two
 * encoders with the same identity make the same vectors (to rounding), two with different ones
 * make vectors that must not be mixed. */
#define RADDINO_IDENTITY_JSON_MAX 4096
typedef struct {
    char weights_sha256[65];    /* hex SHA-256 of the weights file's bytes */
    /* Canonical JSON of everything else: architecture, preprocessing, and the DICOM window
     * when it is not the default min-max (the default adds nothing, so collections made before
     * DICOM support keep their model). The same bytes for the same settings, always: stored
     * collections compare it as text. */
    char config_json[RADDINO_IDENTITY_JSON_MAX];
    int dim;                    /* vector length (hidden size) */
} raddino_model_identity;

/* Fills *out. The first call reads the whole weights file to hash it (346 MB for RAD-DINO) and
 * keeps the hash; later calls are free. Not to be called while another thread uses enc. */
raddino_status raddino_encoder_identity(raddino_encoder *enc, raddino_model_identity *out);

/* ---- Images ------------------------------------------------------------------------------ */

/* A decoded image converted to 8-bit RGB, interleaved, row-major (Pillow's convert("RGB")
 * rules; images with more than 8 bits are min-max scaled to 0..255 first). */
typedef struct {
    int width, height;
    uint8_t *rgb;           /* width * height * 3 bytes, owned: free with raddino_image_free */
    int source_bits;        /* 8 or 16: bit depth of the file */
    int source_channels;    /* channels in the file: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA */
    const char *format;     /* "png", "jpeg", "bmp", "pnm", "tga", "gif", "psd", "hdr"... */
} raddino_image;

/* Decodes PNG (8/16-bit grey, grey+alpha, RGB, RGBA, palette), JPEG (baseline, progressive;
 * libjpeg-turbo, as Pillow), BMP, PNM, TGA, and DICOM (recognised by its "DICM" marker, any
 * extension; every transfer syntax GDCM decodes). max_pixels 0 = RADDINO_DEFAULT_MAX_PIXELS.
 * `name` is used in error messages only (NULL: "<memory>").
 *
 * DICOM grey levels are those a reader sees: bits above Bits Stored dropped (sign-extended
 * when signed), Modality LUT (Rescale Slope/Intercept or the LUT), MONOCHROME1 inverted so
 * that bone is white (once: an INVERSE Presentation LUT Shape beside MONOCHROME1 is the
 * standard's required pairing, not a second inversion; MONOCHROME2 with INVERSE is inverted),
 * pixel padding left out of min and max and shown black. Then min-max to 8 bits with the 16-bit
 * PNG rule, or a window (raddino_load_options). Colour (RGB, YBR_FULL, YBR_FULL_422, and what
 * JPEG/JPEG 2000 codecs return) becomes RGB. Multi-frame files are refused unless a frame is
 * named (options.frame). The format is "dicom"; source_bits is Bits Stored. */
raddino_status raddino_image_load(const char *path, uint64_t max_pixels, raddino_image *out);
raddino_status raddino_image_load_memory(const void *data, size_t size, const char *name,
                                         uint64_t max_pixels, raddino_image *out);
void raddino_image_free(raddino_image *img);

/* Options of raddino_image_load_ex. All zero = the defaults of raddino_image_load. */
typedef struct {
    uint64_t max_pixels;    /* 0 = RADDINO_DEFAULT_MAX_PIXELS; for DICOM, rows x columns x
                               frames (the decoder decodes every frame), checked before decoding */
    int window;             /* raddino_window_mode; DICOM only (other formats ignore it) */
    double window_center, window_width;     /* RADDINO_WINDOW_EXPLICIT; width >= 1 */
    int frame;              /* DICOM multi-frame: the frame to read, from 1; 0 = single-frame
                               files only (a multi-frame file is refused, naming its count) */
    unsigned max_scans;     /* progressive JPEG: more scans than this are refused (each scan
                               costs a pass over every block); 0 = 1000 */
    /* Polled while decoding (JPEG: per row of blocks read and per output row; PNG: per row;
     * DICOM: once, before decoding): non-zero stops the decode with RADDINO_ERR_CANCELLED.
     * NULL: never cancelled. For a server whose client has gone away. */
    int (*cancel)(void *user);
    void *cancel_user;
} raddino_load_options;

raddino_status raddino_image_load_ex(const char *path, const raddino_load_options *opts,
                                     raddino_image *out);

/* The loading options an encoder was opened with (pixel cap, DICOM window), as
 * raddino_embed_file uses them: decode with these to embed what raddino_embed_file would. */
raddino_status raddino_encoder_load_options(const raddino_encoder *enc, raddino_load_options *out);

/* Recognising an image by its content: the one table of magic numbers (raddino index and import
 * use it to tell images from other files without decoding them). */
#define RADDINO_SNIFF_BYTES 132     /* enough for every format: DICOM's "DICM" is at 128 */
typedef struct {
    const char *format;     /* "png", "jpeg", "dicom", "bmp", "pnm", "tga"; or a format we
                               recognise but do not decode: "tiff", "jpeg2000", "gif", "webp" */
    int decodable;          /* 1: raddino_image_load handles it */
    const char *why;        /* not decodable: why, one line (e.g. "TIFF images are not
                               supported (convert them to PNG)"); else NULL */
} raddino_sniff;

/* Looks at the first n bytes of a file (RADDINO_SNIFF_BYTES when the file has them); name is
 * used only for TGA, which has no magic number (a ".tga" suffix). Returns 1 and fills *out for
 * an image (decodable or not), 0 for anything else (out->format NULL). */
int raddino_image_sniff(const void *head, size_t n, const char *name, raddino_sniff *out);
raddino_status raddino_image_load_memory_ex(const void *data, size_t size, const char *name,
                                            const raddino_load_options *opts, raddino_image *out);

/* ---- DICOM metadata ---------------------------------------------------------------------- */

/* What the store keeps about a DICOM file. Text is the attribute's value without padding, ""
 * when absent (longer values are cut). Never holds the patient's name or plain ID. */
typedef struct {
    char sop_instance_uid[65];
    char study_instance_uid[65];
    char series_instance_uid[65];
    char modality[33];                  /* CR, DX, ... */
    char view_position[33];             /* PA, AP, LL, ... */
    char body_part_examined[33];
    char photometric_interpretation[33];    /* as stored in the file */
    char transfer_syntax_uid[65];
    int rows, columns, frames;
    double pixel_spacing[2];            /* (0028,0030) mm, row then column; 0 when absent */
    double imager_pixel_spacing[2];     /* (0018,1164) mm; 0 when absent */
    /* Hex SHA-256 of: the salt's bytes, one 0x00 byte, Patient ID (leading and trailing spaces
     * removed). "" when the file has no Patient ID or no salt was given. The salt keeps the key
     * from being looked up in a table of hashed IDs: keep one per database, secret. */
    char patient_key[65];
} raddino_dicom_info;

/* Reads the metadata of a DICOM file (the pixel data is not decoded). salt: NULL = no
 * patient_key; "" is refused (an unsalted hash of an ID is not anonymous). */
raddino_status raddino_dicom_read_info(const char *path, const char *salt,
                                       raddino_dicom_info *out);
raddino_status raddino_dicom_read_info_memory(const void *data, size_t size, const char *name,
                                              const char *salt, raddino_dicom_info *out);

/* Preprocesses as the model's preprocessor_config.json says. Either output may be NULL.
 * crop: input_height * input_width * 3 bytes (the resized, cropped 8-bit RGB image).
 * pixels: 3 * input_height * input_width floats, channel-major [3, H, W] (the network input). */
raddino_status raddino_preprocess(const raddino_encoder *enc, const raddino_image *img,
                                  uint8_t *crop, float *pixels);

/* ---- Encoding ------------------------------------------------------------------------------ */

/* Runs the network on n preprocessed inputs, each [3, input_height, input_width] floats,
 * consecutive. tokens: n * info.tokens * info.hidden floats; image i's tokens start at
 * tokens + i * tokens_per_image * hidden, row 0 = CLS, after the final LayerNorm.
 * Batched and one-at-a-time calls give identical numbers. */
raddino_status raddino_encode_pixels(raddino_encoder *enc, int n, const float *pixels,
                                     float *tokens);

/* Decodes, preprocesses and encodes one file. cls: hidden floats (may be NULL); tokens:
 * info.tokens * info.hidden floats (may be NULL). */
raddino_status raddino_embed_file(raddino_encoder *enc, const char *path, float *cls,
                                  float *tokens);

/* Same for an image already decoded. */
raddino_status raddino_embed_image(raddino_encoder *enc, const raddino_image *img, float *cls,
                                   float *tokens);

/* ---- Workers: several images at once, one thread each ------------------------------------- */
/* A worker is the scratch of one forward pass (about 75 MB for ViT-B at 518x518, plus its
 * input and output) over its encoder's weights, which all workers share read-only. Several
 * workers of one encoder may encode at the same time, each on its own thread (and the encoder
 * itself on one more); the encoder must outlive its workers. A worker's forward pass runs on
 * the calling thread alone: on a machine with few cores, one image per core keeps every core
 * busy with no barrier between threads (raddino index runs its files this way). Run the
 * workers as the threads of one OpenMP parallel region (`#pragma omp parallel`), as raddino
 * index does: OpenBLAS, which computes the products on CPUs without AVX-512, then keeps to one
 * thread per call without changing its own thread count, which is not safe to change from
 * several threads at once. The numbers are those of raddino_encode_pixels /
 * raddino_embed_image on the same input, bit for bit. */
typedef struct raddino_encoder_worker raddino_encoder_worker;
raddino_status raddino_encoder_worker_create(const raddino_encoder *enc,
                                             raddino_encoder_worker **out);
void raddino_encoder_worker_free(raddino_encoder_worker *w);
/* One preprocessed input [3, input_height, input_width] (a model with a fixed input size).
 * cls: hidden floats, tokens: info.tokens * info.hidden floats; either may be NULL. */
raddino_status raddino_encoder_worker_encode(raddino_encoder_worker *w, const float *pixels,
                                             float *cls, float *tokens);
/* One decoded image: preprocessed, then encoded as above. */
raddino_status raddino_encoder_worker_embed_image(raddino_encoder_worker *w,
                                                  const raddino_image *img, float *cls,
                                                  float *tokens);
/* Rearranges the patch rows of one image's tokens [1 + gh*gw, D] into the rad-dino package's
 * channel-major map [D, gh, gw]. */
void raddino_tokens_to_patch_map(const float *tokens, int hidden, int grid_height,
                                 int grid_width, float *map);

/* Number of threads the encoder runs with. */
int raddino_encoder_threads(const raddino_encoder *enc);

/* Longest path the structs of the public headers hold. */
#ifndef RADDINO_PATH_MAX
#define RADDINO_PATH_MAX 4096
#endif

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
