/* image.c — image decoding to 8-bit RGB with Pillow's convert("RGB") rules (DICOM: recognised
 * here, decoded by dicom.cpp + dicom_pixels.c).
 *
 * JPEG goes through libjpeg-turbo with its default settings (accurate integer IDCT, fancy
 * upsampling): that is what Pillow uses, so the pixels match it exactly. stb_image's own JPEG
 * decoder differs by a few levels, which is why it is not used. PNG goes through
 * libpng, which decodes row by row into a buffer sized from the header (stb_image's PNG decoder
 * grows its buffer for as long as the compressed stream keeps producing bytes, so a small
 * hostile file could make it reserve gigabytes). BMP, PNM and TGA go through our own decoders
 * (image_formats.c: stb_image's differ from Pillow on real files). All of these are lossless or
 * exactly specified, so the pixels are Pillow's.
 *
 * Every size is checked from the header before pixels are decoded, and library errors become
 * statuses: hostile bytes must give an error, never a crash or an exit. */
#include "dicom_internal.h"
#include "encoder_status.h"
#include "image_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

/* Files larger than this are not read (no image we accept needs more). */
#define IMAGE_MAX_FILE_BYTES ((size_t)2 << 30)
/* A progressive JPEG with more scans than this is hostile (decoding cost grows per scan). */
#define JPEG_MAX_SCANS 1000

static const char *display_name(const char *name) { return name ? name : "<memory>"; }

static uint64_t pixel_limit(uint64_t max_pixels)
{
    return max_pixels ? max_pixels : RADDINO_DEFAULT_MAX_PIXELS;
}

raddino_status image_check_size(const char *name, uint64_t w, uint64_t h, uint64_t max_pixels)
{
    uint64_t limit = pixel_limit(max_pixels);
    if (w == 0 || h == 0)
        return status_error(RADDINO_ERR_FORMAT, "%s: image has a zero size (%llux%llu)", name,
                            (unsigned long long)w, (unsigned long long)h);
    if (w > INT_MAX || h > INT_MAX || w * h > limit)
        return status_error(RADDINO_ERR_TOO_LARGE,
                            "%s: image is %llux%llu = %llu pixels, over the pixel limit of %llu",
                            name, (unsigned long long)w, (unsigned long long)h,
                            (unsigned long long)(w * h), (unsigned long long)limit);
    return status_ok();
}

/* ---- 16-bit -> 8-bit -------------------------------------------------------------------- */

/* min and max over `n_use` of every `stride` channels (alpha, when present, excluded). */
static void minmax_16(const uint16_t *src, size_t n_pixels, int stride, int n_use, uint16_t *mn,
                      uint16_t *mx)
{
    uint16_t lo = 65535, hi = 0;
    for (size_t i = 0; i < n_pixels; i++)
        for (int c = 0; c < n_use; c++) {
            uint16_t v = src[i * (size_t)stride + (size_t)c];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
    *mn = lo;
    *mx = hi;
}

/* Table of the 16-bit rule for every value in [mn, mx]: the formula is evaluated once per
 * distinct value instead of once per pixel. lut must hold mx - mn + 1 entries. */
static void scale_table_16(uint16_t mn, uint16_t mx, uint8_t *lut)
{
    if (mx == mn) {
        lut[0] = 0;
        return;
    }
    double range = (double)(mx - mn);
    for (int v = mn; v <= mx; v++)
        lut[v - mn] = (uint8_t)floor((double)(v - mn) * 255.0 / range + 0.5);
}

void image_scale_16_to_8(const uint16_t *src, size_t n, uint8_t *dst)
{
    if (n == 0) return;
    uint16_t mn, mx;
    minmax_16(src, n, 1, 1, &mn, &mx);
    uint8_t lut[65536];
    scale_table_16(mn, mx, lut);
    for (size_t i = 0; i < n; i++) dst[i] = lut[src[i] - mn];
}

/* ---- Pillow's convert("RGB") ------------------------------------------------------------- */

/* 8-bit pixels with n channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) -> RGB. Alpha is dropped,
 * not composited, as Pillow does. */
static void to_rgb_8(const uint8_t *src, size_t n_pixels, int n, uint8_t *rgb)
{
    for (size_t i = 0; i < n_pixels; i++, src += n, rgb += 3) {
        if (n < 3) {
            rgb[0] = rgb[1] = rgb[2] = src[0];
        } else {
            rgb[0] = src[0];
            rgb[1] = src[1];
            rgb[2] = src[2];
        }
    }
}

/* 16-bit pixels -> RGB with the 16-bit rule. For colour images (rare) one min and max is taken
 * jointly over R, G and B (alpha excluded), so that the colour balance is kept; a per-channel
 * stretch would tint the image. */
static void to_rgb_16(const uint16_t *src, size_t n_pixels, int n, uint8_t *rgb, uint8_t *lut)
{
    int n_colour = n < 3 ? 1 : 3;
    uint16_t mn, mx;
    minmax_16(src, n_pixels, n, n_colour, &mn, &mx);
    scale_table_16(mn, mx, lut);
    for (size_t i = 0; i < n_pixels; i++, src += n, rgb += 3) {
        if (n < 3) {
            rgb[0] = rgb[1] = rgb[2] = lut[src[0] - mn];
        } else {
            rgb[0] = lut[src[0] - mn];
            rgb[1] = lut[src[1] - mn];
            rgb[2] = lut[src[2] - mn];
        }
    }
}

/* Pillow: an Adobe CMYK JPEG is read as "CMYK;I" (inverted), then Convert.c cmyk2rgb. libjpeg
 * hands us the stored (inverted) values, so the un-inverted ink is 255 - stored. */
static void cmyk_to_rgb(const uint8_t *src, size_t n_pixels, uint8_t *rgb)
{
    for (size_t i = 0; i < n_pixels; i++, src += 4, rgb += 3) {
        int nk = src[3];    /* 255 - (255 - stored k) */
        for (int c = 0; c < 3; c++) {
            int ink = 255 - src[c];
            int t = ink * nk + 128;
            int v = nk - (((t >> 8) + t) >> 8);     /* nk - MULDIV255(ink, nk) */
            rgb[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

raddino_status image_rgb_from_16(const uint16_t *src, size_t n_pixels, int channels,
                                 uint8_t *rgb)
{
    uint8_t *lut = malloc(65536);
    if (!lut) return status_error(RADDINO_ERR_NOMEM, "out of memory");
    to_rgb_16(src, n_pixels, channels, rgb, lut);
    free(lut);
    return status_ok();
}

/* ---- libpng ------------------------------------------------------------------------------ */

/* The state of one PNG decode that outlives a longjmp from libpng: the input position, the
 * image's layout, the buffers to free, how many rows are decoded, and the message. */
typedef struct {
    const uint8_t *data;
    size_t size, pos;
    uint32_t width, height;
    int channels, bits;
    uint8_t *pixels;
    png_bytep *rows;
    /* Not interlaced: decoded a row at a time into `row`, each stored at once in its final
     * form in `pixels` (8-bit: RGB; 16-bit: the grey or RGB channels only, alpha dropped), so
     * that a decode takes at most 9 bytes per pixel (16-bit RGB(A): 6 + the RGB result)
     * instead of the file's full layout plus the result (up to 8 + 3). */
    bool row_by_row;
    int n_colour;           /* 1 or 3: the channels kept of a 16-bit image */
    uint32_t rows_stored;
    uint64_t rows_decoded, rows_expected;
    bool complete;          /* every row is in `pixels`: stop reading */
    bool cancelled;         /* the caller's cancel callback said stop */
    int (*cancel)(void *user);
    void *cancel_user;
    char message[200];
} png_job;

static void png_on_error(png_structp png, png_const_charp message)
{
    png_job *job = png_get_error_ptr(png);
    snprintf(job->message, sizeof job->message, "%s", message);
    png_longjmp(png, 1);
}

/* Warnings (a bad CRC on an ancillary chunk, an unknown chunk) do not stop the decode. */
static void png_on_warning(png_structp png, png_const_charp message)
{
    (void)png, (void)message;
}

/* Once every row is decoded, the decode stops (as Pillow's does): libpng would otherwise go on
 * inflating the rest of the compressed stream, which a hostile file can make terabytes long,
 * and would refuse a stream that lacks its end although no pixel is missing. */
static void png_read_memory(png_structp png, png_bytep dst, size_t length)
{
    png_job *job = png_get_io_ptr(png);
    if (job->rows_expected && job->rows_decoded == job->rows_expected) {
        job->complete = true;
        png_error(png, "every row decoded");
    }
    if (length > job->size - job->pos) png_error(png, "truncated file");
    memcpy(dst, job->data + job->pos, length);
    job->pos += length;
}

static void png_store_row(png_job *job, const uint8_t *row);

/* Called by libpng for each row it decodes, after its other transforms (so `data` is the row
 * in its final layout) and before the row is copied to the caller's buffer. Rows read one by
 * one are stored from here, whatever libpng reads after the last one. */
static void png_count_row(png_structp png, png_row_infop row, png_bytep data)
{
    (void)row;
    png_job *job = png_get_io_ptr(png);
    job->rows_decoded++;
    if (job->row_by_row && job->rows_stored < job->height) png_store_row(job, data);
    if (job->cancel && job->cancel(job->cancel_user)) {
        job->cancelled = true;
        png_error(png, "cancelled");
    }
}

/* Rows libpng decodes: each non-empty pass of an interlaced image has its own. */
static uint64_t png_rows_to_decode(uint32_t w, uint32_t h, bool interlaced)
{
    if (!interlaced) return h;
    uint64_t rows = 0;
    for (int pass = 0; pass < 7; pass++)
        if (PNG_PASS_COLS(w, pass) > 0) rows += PNG_PASS_ROWS(h, pass);
    return rows;
}

/* Asks libpng for 8-bit grey, grey+alpha, RGB or RGBA, or the same in native 16-bit: palettes
 * become RGB (RGBA with tRNS), 1/2/4-bit grey is scaled to 8 bits (v * 255 / (2^bits - 1), as
 * Pillow and stb_image do), interlaced images are assembled. No gamma or colour-profile
 * transform: Pillow applies none either. */
static void png_request_formats(png_structp png, png_infop info)
{
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (depth == 16) png_set_swap(png);
#endif
    png_set_interlace_handling(png);
    png_set_read_user_transform_fn(png, png_count_row);
    png_read_update_info(png, info);
}

/* Reads the header and allocates the rows; libpng errors longjmp to the caller's setjmp. */
static raddino_status png_prepare(png_structp png, png_infop info, png_job *job,
                                  const char *name, uint64_t max_pixels)
{
    /* Our pixel cap decides about the size, not libpng's default of a million rows. */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_set_chunk_malloc_max(png, (png_alloc_size_t)16 << 20);
    png_set_read_fn(png, job, png_read_memory);
    png_read_info(png, info);
    /* Pillow checks the CRC of IHDR and PLTE (done above: libpng refuses a mismatch) but not
     * of the image data, which it reads past the CRC: so do we. */
    png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_DEFAULT);
    job->width = png_get_image_width(png, info);
    job->height = png_get_image_height(png, info);
    raddino_status st = image_check_size(name, job->width, job->height, max_pixels);
    if (st.code) return st;
    bool interlaced = png_get_interlace_type(png, info) != PNG_INTERLACE_NONE;
    png_request_formats(png, info);
    job->channels = png_get_channels(png, info);
    job->bits = png_get_bit_depth(png, info);
    size_t row_bytes = png_get_rowbytes(png, info);
    if (job->channels < 1 || job->channels > 4 || (job->bits != 8 && job->bits != 16) ||
        row_bytes != (size_t)job->width * (size_t)job->channels * (size_t)(job->bits / 8))
        png_error(png, "unexpected pixel layout");
    job->rows_expected = png_rows_to_decode(job->width, job->height, interlaced);
    job->row_by_row = !interlaced;
    if (job->row_by_row) {
        job->n_colour = job->channels < 3 ? 1 : 3;
        size_t stored = job->bits == 8 ? 3 : (size_t)job->n_colour * 2;
        job->pixels = malloc((size_t)job->height * job->width * stored);
        if (!job->pixels) png_error(png, "out of memory");
        return status_ok();
    }
    job->pixels = calloc((size_t)job->height, row_bytes);
    job->rows = malloc((size_t)job->height * sizeof *job->rows);
    if (!job->pixels || !job->rows) png_error(png, "out of memory");
    for (size_t y = 0; y < job->height; y++) job->rows[y] = job->pixels + y * row_bytes;
    return status_ok();
}

/* A decoded row, stored in its final form (see png_job). */
static void png_store_row(png_job *job, const uint8_t *row)
{
    size_t w = job->width;
    if (job->bits == 8) {
        to_rgb_8(row, w, job->channels, job->pixels + (size_t)job->rows_stored * w * 3);
    } else {
        /* libpng's row starts one byte into its buffer (after the filter byte): samples are
         * copied bytewise, never read through a misaligned uint16_t pointer. */
        uint16_t *dst = (uint16_t *)(void *)job->pixels + (size_t)job->rows_stored * w * job->n_colour;
        for (size_t x = 0; x < w; x++)
            for (int c = 0; c < job->n_colour; c++)
                memcpy(dst + x * job->n_colour + c, row + 2 * (x * job->channels + c), 2);
    }
    job->rows_stored++;
}

/* The decoded rows -> RGB with Pillow's rules. */
static raddino_status png_to_rgb(png_job *job, const char *name, raddino_image *out)
{
    size_t n_pixels = (size_t)job->width * job->height;
    if (job->row_by_row && job->rows_stored != job->height)
        return status_error(RADDINO_ERR_FORMAT, "%s: cannot decode png: rows missing", name);
    if (job->row_by_row && job->bits == 8) {
        out->rgb = job->pixels;     /* already RGB */
        job->pixels = NULL;
    } else {
        out->rgb = malloc(n_pixels * 3);
    }
    uint8_t *lut = job->bits == 16 ? malloc(65536) : NULL;
    if (!out->rgb || (job->bits == 16 && !lut)) {
        free(lut);
        return status_error(RADDINO_ERR_NOMEM, "%s: out of memory for %ux%u pixels", name,
                            job->width, job->height);
    }
    if (job->bits == 16)
        to_rgb_16((const uint16_t *)job->pixels, n_pixels,
                  job->row_by_row ? job->n_colour : job->channels, out->rgb, lut);
    else if (!job->row_by_row)
        to_rgb_8(job->pixels, n_pixels, job->channels, out->rgb);
    free(lut);
    out->width = (int)job->width;
    out->height = (int)job->height;
    out->source_bits = job->bits;
    out->source_channels = job->channels;
    out->format = "png";
    return status_ok();
}

static raddino_status read_png(png_job *job, const char *name, uint64_t max_pixels,
                               raddino_image *out)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, png_on_error,
                                             png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return status_error(RADDINO_ERR_NOMEM, "%s: out of memory", name);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        if (job->complete) return png_to_rgb(job, name, out);
        return status_error(job->cancelled ? RADDINO_ERR_CANCELLED : RADDINO_ERR_FORMAT,
                            "%s: cannot decode png: %s", name, job->message);
    }
    raddino_status st = png_prepare(png, info, job, name, max_pixels);
    if (!st.code) {
        if (job->row_by_row) {
            /* The counter lives in *job: nothing local changes between setjmp and longjmp. */
            while (job->rows_stored < job->height) png_read_row(png, NULL, NULL);
        } else {
            png_read_image(png, job->rows);
        }
        job->complete = true;   /* the stream ended with the last row */
    }
    png_destroy_read_struct(&png, &info, NULL);
    return st.code ? st : png_to_rgb(job, name, out);
}

/* libpng reads every chunk up to the first IDAT before it tells the size: read IHDR ourselves so
 * that the pixel cap speaks first, whatever follows. */
static raddino_status check_png_header(const uint8_t *d, size_t size, const char *name,
                                       uint64_t max_pixels)
{
    if (size < 24 || memcmp(d + 12, "IHDR", 4) != 0)
        return status_ok();     /* libpng reports the malformed header */
    uint64_t w = (uint64_t)d[16] << 24 | (uint64_t)d[17] << 16 | (uint64_t)d[18] << 8 | d[19];
    uint64_t h = (uint64_t)d[20] << 24 | (uint64_t)d[21] << 16 | (uint64_t)d[22] << 8 | d[23];
    return image_check_size(name, w, h, max_pixels);
}

static raddino_status decode_png(const uint8_t *data, size_t size, const char *name,
                                 const raddino_load_options *opts, raddino_image *out)
{
    uint64_t max_pixels = opts ? opts->max_pixels : 0;
    raddino_status st = check_png_header(data, size, name, max_pixels);
    if (st.code) return st;
    png_job job = {.data = data, .size = size, .cancel = opts ? opts->cancel : NULL,
                   .cancel_user = opts ? opts->cancel_user : NULL};
    st = read_png(&job, name, max_pixels, out);
    free(job.pixels);
    free(job.rows);
    if (st.code) {
        free(out->rgb);
        out->rgb = NULL;
    }
    return st;
}

/* ---- libjpeg-turbo ----------------------------------------------------------------------- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_error;

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_error err;
    struct jpeg_progress_mgr progress;
    uint8_t *row;       /* one decoded scanline */
    uint8_t *rgb;       /* the result */
    unsigned max_scans;
    int (*cancel)(void *user);
    void *cancel_user;
} jpeg_job;

/* libjpeg's default error_exit prints and calls exit(): jump back to jpeg_run instead. */
static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_error *err = (jpeg_error *)cinfo->err;
    err->pub.format_message(cinfo, err->message);
    longjmp(err->jump, 1);
}

/* Warnings are silent, except a premature end of data: Pillow refuses truncated files ("image
 * file is truncated"), while libjpeg would pad them with grey and go on. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    jpeg_error *err = (jpeg_error *)cinfo->err;
    if (level < 0 && err->pub.msg_code == JWRN_JPEG_EOF) {
        snprintf(err->message, sizeof err->message, "premature end of data (file is truncated)");
        longjmp(err->jump, 1);
    }
}

/* libjpeg calls this once per row of blocks it reads (every scan of a progressive file) and
 * once per output row: the scan budget and the caller's cancel flag are checked here. cinfo is
 * the first member of its jpeg_job. */
static void jpeg_on_progress(j_common_ptr cinfo)
{
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    jpeg_job *job = (jpeg_job *)(void *)cinfo;
    jpeg_error *err = (jpeg_error *)cinfo->err;
    if (cinfo->is_decompressor && (unsigned)d->input_scan_number > job->max_scans) {
        snprintf(err->message, sizeof err->message, "more than %u scans", job->max_scans);
        longjmp(err->jump, 1);
    }
    if (job->cancel && job->cancel(job->cancel_user)) {
        snprintf(err->message, sizeof err->message, "cancelled");
        err->pub.msg_code = -1;     /* tells jpeg_run it was a cancel, not bad data */
        longjmp(err->jump, 1);
    }
}

/* Decodes into job->rgb. The setjmp lives here and every value it needs after a longjmp is in
 * *job, owned by the caller, so no local variable of this function is read after the jump. */
static raddino_status jpeg_run(jpeg_job *job, const uint8_t *data, size_t size, const char *name,
                               uint64_t max_pixels, raddino_image *out)
{
    struct jpeg_decompress_struct *cinfo = &job->cinfo;
    if (setjmp(job->err.jump))
        return status_error(job->err.pub.msg_code == -1 ? RADDINO_ERR_CANCELLED
                                                        : RADDINO_ERR_FORMAT,
                            "%s: JPEG: %s", name, job->err.message);
    jpeg_create_decompress(cinfo);
    cinfo->progress = &job->progress;
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    jpeg_read_header(cinfo, TRUE);
    raddino_status st = image_check_size(name, cinfo->image_width, cinfo->image_height, max_pixels);
    if (st.code) return st;

    int channels;
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo->out_color_space = JCS_GRAYSCALE; channels = 1; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo->out_color_space = JCS_CMYK; channels = 4; break;
    default: cinfo->out_color_space = JCS_RGB; channels = 3; break;
    }
    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != channels)
        return status_error(RADDINO_ERR_FORMAT, "%s: JPEG: unexpected %d output components",
                            name, cinfo->output_components);
    size_t w = cinfo->output_width, h = cinfo->output_height;
    job->row = malloc(w * (size_t)channels);
    job->rgb = malloc(w * h * 3);
    if (!job->row || !job->rgb)
        return status_error(RADDINO_ERR_NOMEM, "%s: out of memory for %zux%zu pixels", name, w,
                            h);
    while (cinfo->output_scanline < cinfo->output_height) {
        uint8_t *dst = job->rgb + (size_t)cinfo->output_scanline * w * 3;
        JSAMPROW rows[1] = {job->row};
        if (jpeg_read_scanlines(cinfo, rows, 1) != 1)
            return status_error(RADDINO_ERR_FORMAT, "%s: JPEG: no scanline decoded", name);
        if (channels == 4)
            cmyk_to_rgb(job->row, w, dst);
        else
            to_rgb_8(job->row, w, channels, dst);
    }
    jpeg_finish_decompress(cinfo);
    out->width = (int)w;
    out->height = (int)h;
    out->source_bits = 8;
    out->source_channels = cinfo->num_components;
    out->format = "jpeg";
    return status_ok();
}

static raddino_status decode_jpeg(const uint8_t *data, size_t size, const char *name,
                                  const raddino_load_options *opts, raddino_image *out)
{
    uint64_t max_pixels = opts ? opts->max_pixels : 0;
    jpeg_job *job = calloc(1, sizeof *job);
    if (!job) return status_error(RADDINO_ERR_NOMEM, "%s: out of memory", name);
    job->max_scans = opts && opts->max_scans ? opts->max_scans : JPEG_MAX_SCANS;
    job->cancel = opts ? opts->cancel : NULL;
    job->cancel_user = opts ? opts->cancel_user : NULL;
    job->cinfo.err = jpeg_std_error(&job->err.pub);
    job->err.pub.error_exit = jpeg_on_error;
    job->err.pub.emit_message = jpeg_on_message;
    job->progress.progress_monitor = jpeg_on_progress;
    raddino_status st = jpeg_run(job, data, size, name, max_pixels, out);
    jpeg_destroy_decompress(&job->cinfo);
    free(job->row);
    if (st.code == RADDINO_OK)
        out->rgb = job->rgb;
    else
        free(job->rgb);
    free(job);
    return st;
}

/* ---- public ------------------------------------------------------------------------------ */

static bool has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), m = strlen(suffix);
    return n >= m && strcasecmp(name + n - m, suffix) == 0;
}

static bool is_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int raddino_image_sniff(const void *head, size_t n, const char *name, raddino_sniff *out)
{
    const uint8_t *h = head;
    out->format = NULL;
    out->decodable = 1;
    out->why = NULL;
    if (!h) n = 0;
    /* DICOM first: its 128-byte preamble is free, and some files put another format's header
     * there (TIFF/DICOM dual files); the "DICM" marker after it is what decides. */
    if (n >= 132 && !memcmp(h + 128, "DICM", 4)) out->format = "dicom";
    else if (n >= 3 && h[0] == 0xFF && h[1] == 0xD8 && h[2] == 0xFF) out->format = "jpeg";
    else if (n >= 8 && !memcmp(h, "\x89PNG\r\n\x1a\n", 8)) out->format = "png";
    /* "BM" alone is too weak: also ask for a known DIB header size. */
    else if (n >= 18 && h[0] == 'B' && h[1] == 'M' &&
             (h[14] == 12 || h[14] == 40 || h[14] == 52 || h[14] == 56 || h[14] == 64 ||
              h[14] == 108 || h[14] == 124) && !h[15] && !h[16] && !h[17])
        out->format = "bmp";
    else if (n >= 3 && h[0] == 'P' && h[1] >= '1' && h[1] <= '6' && is_space(h[2]))
        out->format = "pnm";
    else if (name && has_suffix(name, ".tga")) out->format = "tga";
    else {
        out->decodable = 0;
        if (n >= 4 && (!memcmp(h, "II*\0", 4) || !memcmp(h, "MM\0*", 4))) {
            out->format = "tiff";
            out->why = "TIFF images are not supported (convert them to PNG)";
        } else if ((n >= 12 && !memcmp(h, "\0\0\0\x0cjP  \r\n\x87\n", 12)) ||
                   (n >= 4 && !memcmp(h, "\xff\x4f\xff\x51", 4))) {
            out->format = "jpeg2000";
            out->why = "JPEG 2000 images are not supported (convert them to PNG)";
        } else if (n >= 6 && (!memcmp(h, "GIF87a", 6) || !memcmp(h, "GIF89a", 6))) {
            out->format = "gif";
            out->why = "GIF images are not supported (convert them to PNG)";
        } else if (n >= 12 && !memcmp(h, "RIFF", 4) && !memcmp(h + 8, "WEBP", 4)) {
            out->format = "webp";
            out->why = "WebP images are not supported (convert them to PNG)";
        } else {
            out->decodable = 1;
            return 0;
        }
    }
    return 1;
}

raddino_status raddino_image_load_memory_ex(const void *data, size_t size, const char *name,
                                            const raddino_load_options *opts, raddino_image *out)
{
    uint64_t max_pixels = opts ? opts->max_pixels : 0;
    name = display_name(name);
    if (!out) return status_error(RADDINO_ERR_ARGUMENT, "%s: no output image", name);
    memset(out, 0, sizeof *out);
    if (!data && size) return status_error(RADDINO_ERR_ARGUMENT, "%s: no data", name);
    if (size == 0) return status_error(RADDINO_ERR_FORMAT, "%s: empty file, not an image", name);
    if (size > IMAGE_MAX_FILE_BYTES)
        return status_error(RADDINO_ERR_TOO_LARGE, "%s: %zu bytes, over the limit of %zu", name,
                            size, IMAGE_MAX_FILE_BYTES);
    const uint8_t *d = data;
    /* By content, not by extension: DICOM's "DICM" at byte 128 (dicom.cpp, through GDCM). */
    if (opts && opts->cancel && opts->cancel(opts->cancel_user))
        return status_error(RADDINO_ERR_CANCELLED, "%s: cancelled", name);
    if (dicom_sniff(d, size)) return dicom_load(d, size, name, opts, out);
    /* JPEG's SOI marker and the first byte of a marker. */
    if (size >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF)
        return decode_jpeg(d, size, name, opts, out);
    if (size >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
        return decode_png(d, size, name, opts, out);
    return image_decode_bmp_pnm_tga(d, size, name, max_pixels, out);
}

raddino_status raddino_image_load_memory(const void *data, size_t size, const char *name,
                                         uint64_t max_pixels, raddino_image *out)
{
    raddino_load_options opts;
    memset(&opts, 0, sizeof opts);
    opts.max_pixels = max_pixels;
    return raddino_image_load_memory_ex(data, size, name, &opts, out);
}

/* Reads a whole file (regular file or pipe), at most IMAGE_MAX_FILE_BYTES. */
raddino_status image_read_file(const char *path, uint8_t **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return status_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    int e = fstat(fd, &sb) != 0 ? errno : S_ISDIR(sb.st_mode) ? EISDIR : 0;
    if (e) {
        close(fd);
        return status_error(RADDINO_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > IMAGE_MAX_FILE_BYTES) {
        close(fd);
        return status_error(RADDINO_ERR_TOO_LARGE, "%s: file of %lld bytes, over the limit of %zu",
                            path, (long long)sb.st_size, IMAGE_MAX_FILE_BYTES);
    }
    size_t cap = S_ISREG(sb.st_mode) ? (size_t)sb.st_size + 1 : 65536, used = 0;
    uint8_t *buf = malloc(cap);
    raddino_status st = status_ok();
    while (buf) {
        if (used == cap) {
            if (cap > IMAGE_MAX_FILE_BYTES) {
                st = status_error(RADDINO_ERR_TOO_LARGE, "%s: over the limit of %zu bytes", path,
                                  IMAGE_MAX_FILE_BYTES);
                break;
            }
            uint8_t *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                st = status_error(RADDINO_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + used, cap - used);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            st = status_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if (got == 0) break;
        used += (size_t)got;
    }
    close(fd);
    if (!buf) return status_error(RADDINO_ERR_NOMEM, "%s: out of memory", path);
    if (st.code) {
        free(buf);
        return st;
    }
    *data = buf;
    *size = used;
    return st;
}

raddino_status raddino_image_load_ex(const char *path, const raddino_load_options *opts,
                                     raddino_image *out)
{
    if (!out) return status_error(RADDINO_ERR_ARGUMENT, "image: no output image");
    memset(out, 0, sizeof *out);
    if (!path) return status_error(RADDINO_ERR_ARGUMENT, "image: no path");
    uint8_t *data;
    size_t size;
    raddino_status st = image_read_file(path, &data, &size);
    if (st.code) return st;
    st = raddino_image_load_memory_ex(data, size, path, opts, out);
    free(data);
    return st;
}

raddino_status raddino_image_load(const char *path, uint64_t max_pixels, raddino_image *out)
{
    raddino_load_options opts;
    memset(&opts, 0, sizeof opts);
    opts.max_pixels = max_pixels;
    return raddino_image_load_ex(path, &opts, out);
}

void raddino_image_free(raddino_image *img)
{
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}
