/* preprocess.c — BitImageProcessor's PIL path, bit for bit: Pillow's fixed-point bicubic resize
 * (libImaging/Resample.c), transformers' centre crop (floor offsets, zero padding), rescale and
 * normalise through a 256-entry table.
 *
 * Pillow resizes the whole image and transformers then crops it. Each output sample of Pillow's
 * separable resize depends only on its own coefficients, so we compute only the columns and rows
 * that survive the crop: identical bytes, and a 2000x40 image (resized to 25900x518 by Pillow)
 * costs no more than a square one. */
#include "encoder_status.h"
#include "preprocess.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Pillow: PRECISION_BITS = 32 - 8 - 2 fractional bits for 8-bit images. */
#define PRECISION_BITS 22

/* Size after the resize step, or false when it is not representable (or not positive). */
static bool resized_size(const preprocess_config *cfg, int w, int h, int *rw, int *rh)
{
    if (!cfg->do_resize) {
        *rw = w;
        *rh = h;
        return w > 0 && h > 0;
    }
    if (cfg->resize_shortest_edge <= 0) {
        *rw = cfg->resize_width;
        *rh = cfg->resize_height;
        return *rw > 0 && *rh > 0;
    }
    if (w <= 0 || h <= 0) return false;
    /* transformers get_resize_output_image_size(default_to_square=False): the short side becomes
     * S, the long one int(S * long / short), a true (double) division truncated. */
    int s = cfg->resize_shortest_edge;
    int short_side = w <= h ? w : h, long_side = w <= h ? h : w;
    double new_long = (double)s * (double)long_side / (double)short_side;
    if (!(new_long < (double)INT_MAX)) return false;
    int nl = (int)new_long;
    *rw = w <= h ? s : nl;
    *rh = w <= h ? nl : s;
    return true;
}

void preprocess_output_size(const preprocess_config *cfg, int w, int h, int *out_w, int *out_h)
{
    if (cfg->do_center_crop) {
        *out_w = cfg->crop_width;
        *out_h = cfg->crop_height;
        return;
    }
    if (!resized_size(cfg, w, h, out_w, out_h)) *out_w = *out_h = 0;
}

/* ---- Pillow's resampling coefficients ---------------------------------------------------- */

static double bicubic_filter(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Fixed-point coefficients of `n` consecutive output samples (from `first`) of one axis. */
typedef struct {
    int n, ksize;
    int *xmin, *count;      /* source window of each output sample */
    int32_t *k;             /* n * ksize weights, 22 fractional bits */
} axis_coeffs;

static void axis_free(axis_coeffs *a)
{
    free(a->xmin);
    free(a->count);
    free(a->k);
    memset(a, 0, sizeof *a);
}

/* Pillow precompute_coeffs + normalize_coeffs_8bpc, for output samples first .. first + n - 1. */
static bool axis_build(int in_size, int out_size, int first, int n, axis_coeffs *a)
{
    memset(a, 0, sizeof *a);
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;     /* bicubic support 2 */
    a->n = n;
    a->ksize = (int)ceil(support) * 2 + 1;
    a->xmin = malloc((size_t)n * sizeof *a->xmin);
    a->count = malloc((size_t)n * sizeof *a->count);
    a->k = calloc((size_t)n * (size_t)a->ksize, sizeof *a->k);
    double *w = malloc((size_t)a->ksize * sizeof *w);
    if (!a->xmin || !a->count || !a->k || !w) {
        free(w);
        axis_free(a);
        return false;
    }
    double ss = 1.0 / filterscale;
    for (int i = 0; i < n; i++) {
        double center = (first + i + 0.5) * scale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        int count = xmax - xmin;
        if (count > a->ksize) count = a->ksize;     /* cannot happen; keeps writes in bounds */
        double sum = 0.0;
        for (int x = 0; x < count; x++) {
            w[x] = bicubic_filter((x + xmin - center + 0.5) * ss);
            sum += w[x];
        }
        int32_t *k = a->k + (size_t)i * (size_t)a->ksize;
        for (int x = 0; x < count; x++) {
            double v = sum != 0.0 ? w[x] / sum : w[x];
            k[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS)
                                   : 0.5 + v * (1 << PRECISION_BITS));
        }
        a->xmin[i] = xmin;
        a->count[i] = count < 0 ? 0 : count;
    }
    free(w);
    return true;
}

/* Pillow clip8: (sum >> 22) clamped to 0..255. The sum fits in 32 bits: |weights| add up to
 * less than 1.2 * 2^22 and samples are at most 255. */
static uint8_t clip8(int32_t v)
{
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* Horizontal pass on `rows` RGB rows: dst column j = output sample a->first + j. */
static void resample_h(const uint8_t *src, size_t src_stride, int rows, const axis_coeffs *a,
                       uint8_t *dst, size_t dst_stride)
{
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = src + (size_t)y * src_stride;
        uint8_t *out = dst + (size_t)y * dst_stride;
        for (int j = 0; j < a->n; j++) {
            const int32_t *k = a->k + (size_t)j * (size_t)a->ksize;
            const uint8_t *p = in + (size_t)a->xmin[j] * 3;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < a->count[j]; x++, p += 3) {
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            out[j * 3 + 0] = clip8(s0);
            out[j * 3 + 1] = clip8(s1);
            out[j * 3 + 2] = clip8(s2);
        }
    }
}

/* Vertical pass: output row i reads source rows xmin[i] - row_base ...; `bytes` per row. */
static void resample_v(const uint8_t *src, size_t src_stride, int row_base, size_t bytes,
                       const axis_coeffs *a, uint8_t *dst, size_t dst_stride)
{
    for (int i = 0; i < a->n; i++) {
        const int32_t *k = a->k + (size_t)i * (size_t)a->ksize;
        const uint8_t *rows = src + (size_t)(a->xmin[i] - row_base) * src_stride;
        uint8_t *out = dst + (size_t)i * dst_stride;
        for (size_t b = 0; b < bytes; b++) {
            int32_t s = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < a->count[i]; y++) s += rows[(size_t)y * src_stride + b] * k[y];
            out[b] = clip8(s);
        }
    }
}

/* ---- resize + crop ----------------------------------------------------------------------- */

/* One axis of the crop: output o reads resized sample o + offset, with
 * offset = floor((size - crop) / 2). That is transformers' top/left when the image is larger and
 * minus its zero padding ceil((crop - size) / 2) when smaller. [lo, hi) is the part of the
 * resized axis that lands inside the crop. */
typedef struct {
    int offset, lo, hi;
} crop_axis;

static crop_axis crop_window(int size, int crop)
{
    crop_axis c;
    int d = size - crop;
    c.offset = d >= 0 ? d / 2 : -((-d + 1) / 2);
    c.lo = c.offset > 0 ? c.offset : 0;
    c.hi = c.offset + crop < size ? c.offset + crop : size;
    return c;
}

typedef struct {
    const raddino_image *img;
    int rw, rh;             /* resized size */
    crop_axis cx, cy;
    uint8_t *crop;
    int out_w;
} crop_job;

static raddino_status run_crop(const crop_job *j)
{
    const raddino_image *img = j->img;
    int ncols = j->cx.hi - j->cx.lo, nrows = j->cy.hi - j->cy.lo;
    if (ncols <= 0 || nrows <= 0) return status_ok();     /* nothing of the image is kept */
    bool need_h = j->rw != img->width, need_v = j->rh != img->height;
    axis_coeffs ax = {0}, ay = {0};
    uint8_t *tmp = NULL;
    raddino_status st = status_ok();
    if ((need_h && !axis_build(img->width, j->rw, j->cx.lo, ncols, &ax)) ||
        (need_v && !axis_build(img->height, j->rh, j->cy.lo, nrows, &ay))) {
        st = status_error(RADDINO_ERR_NOMEM, "preprocess: out of memory");
        goto done;
    }
    /* Source rows the vertical pass reads (all kept rows when there is no vertical pass). */
    int row_first = j->cy.lo, row_last = j->cy.hi;
    if (need_v) {
        row_first = ay.xmin[0];
        row_last = ay.xmin[0] + ay.count[0];
        for (int i = 0; i < ay.n; i++) {
            if (ay.xmin[i] < row_first) row_first = ay.xmin[i];
            if (ay.xmin[i] + ay.count[i] > row_last) row_last = ay.xmin[i] + ay.count[i];
        }
    }
    size_t in_stride = (size_t)img->width * 3;
    const uint8_t *stage = img->rgb + (size_t)row_first * in_stride + (size_t)j->cx.lo * 3;
    size_t stage_stride = in_stride;
    if (need_h) {
        tmp = malloc((size_t)(row_last - row_first) * (size_t)ncols * 3 + 1);
        if (!tmp) {
            st = status_error(RADDINO_ERR_NOMEM, "preprocess: out of memory");
            goto done;
        }
        resample_h(img->rgb + (size_t)row_first * in_stride, in_stride, row_last - row_first, &ax,
                   tmp, (size_t)ncols * 3);
        stage = tmp;
        stage_stride = (size_t)ncols * 3;
    }
    size_t out_stride = (size_t)j->out_w * 3;
    uint8_t *dst = j->crop + (size_t)(j->cy.lo - j->cy.offset) * out_stride +
                   (size_t)(j->cx.lo - j->cx.offset) * 3;
    if (need_v) {
        resample_v(stage, stage_stride, row_first, (size_t)ncols * 3, &ay, dst, out_stride);
    } else {
        for (int y = 0; y < nrows; y++)
            memcpy(dst + (size_t)y * out_stride,
                   stage + (size_t)(j->cy.lo + y - row_first) * stage_stride, (size_t)ncols * 3);
    }
done:
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    return st;
}

raddino_status preprocess_crop(const preprocess_config *cfg, const raddino_image *img,
                               uint8_t *crop, int out_w, int out_h)
{
    if (!cfg || !img || !img->rgb || !crop || img->width <= 0 || img->height <= 0)
        return status_error(RADDINO_ERR_ARGUMENT, "preprocess: no image or no output");
    if (cfg->do_resize && cfg->resample != 3)
        return status_error(RADDINO_ERR_UNSUPPORTED,
                            "preprocess: resample %d is not supported (only 3, bicubic)",
                            cfg->resample);
    crop_job j = {.img = img, .crop = crop, .out_w = out_w};
    if (!resized_size(cfg, img->width, img->height, &j.rw, &j.rh))
        return status_error(RADDINO_ERR_TOO_LARGE,
                            "preprocess: cannot resize a %dx%d image under this configuration",
                            img->width, img->height);
    int want_w, want_h;
    preprocess_output_size(cfg, img->width, img->height, &want_w, &want_h);
    if (want_w <= 0 || want_h <= 0 || out_w != want_w || out_h != want_h)
        return status_error(RADDINO_ERR_ARGUMENT,
                            "preprocess: output %dx%d does not match the configuration (%dx%d)",
                            out_w, out_h, want_w, want_h);
    j.cx = crop_window(j.rw, out_w);
    j.cy = crop_window(j.rh, out_h);
    memset(crop, 0, (size_t)out_w * (size_t)out_h * 3);  /* the zero padding, if any */
    return run_crop(&j);
}

/* ---- rescale + normalise ----------------------------------------------------------------- */

/* transformers: rescale in float64 (v * factor) then to float32; normalise in float32. */
static void normalize_table(const preprocess_config *cfg, int c, float table[256])
{
    for (int v = 0; v < 256; v++) {
        float x = cfg->do_rescale ? (float)((double)v * cfg->rescale_factor) : (float)v;
        if (cfg->do_normalize) x = (x - cfg->mean[c]) / cfg->std[c];
        table[v] = x;
    }
}

void preprocess_normalize(const preprocess_config *cfg, const uint8_t *crop, int w, int h,
                          float *pixels)
{
    size_t plane = (size_t)w * (size_t)h;
    for (int c = 0; c < 3; c++) {
        float table[256];
        normalize_table(cfg, c, table);
        float *out = pixels + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++) out[i] = table[crop[i * 3 + (size_t)c]];
    }
}
