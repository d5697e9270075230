/* html_report.c — see html_report.h. */
#include "html_report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* stb_image_write private to this file (cmd_preprocess.c has its own copy for PNG files). */
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

static raddino_status ok_status(void) { return raddino_status_ok(); }

static raddino_status html_error(int code, const char *path, const char *why)
{
    return raddino_status_error(code, "%.300s: %.200s", path, why);
}

/* ---- escaping ----------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), 0 when the bytes are not one. */
static int utf8_length(const unsigned char *s)
{
    int n = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3
          : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 2 && s[0] < 0xC2) return 0;                    /* overlong */
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (n == 3 && s[0] == 0xE0 && s[1] < 0xA0) return 0;    /* overlong */
    if (n == 3 && s[0] == 0xED && s[1] >= 0xA0) return 0;   /* surrogates */
    if (n == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || s[0] > 0xF4 || (s[0] == 0xF4 && s[1] >= 0x90)))
        return 0;
    return n;
}

void html_escape(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        switch (*p) {
        case '&': fputs("&amp;", f); p++; continue;
        case '<': fputs("&lt;", f); p++; continue;
        case '>': fputs("&gt;", f); p++; continue;
        case '"': fputs("&quot;", f); p++; continue;
        case '\'': fputs("&#39;", f); p++; continue;
        default: break;
        }
        int n = utf8_length(p);
        if (!n || (n == 1 && *p < 0x20 && *p != '\t' && *p != '\n')) {
            fputs("&#xFFFD;", f);   /* invalid byte or control character */
            p++;
            continue;
        }
        fwrite(p, 1, (size_t)n, f);
        p += n;
    }
}

void html_base64(FILE *f, const unsigned char *data, size_t n)
{
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char out[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < n) v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < n) v |= data[i + 2];
        out[0] = digits[(v >> 18) & 63];
        out[1] = digits[(v >> 12) & 63];
        out[2] = i + 1 < n ? digits[(v >> 6) & 63] : '=';
        out[3] = i + 2 < n ? digits[v & 63] : '=';
        fwrite(out, 1, 4, f);
    }
}

/* ---- thumbnails --------------------------------------------------------------------------- */

typedef struct {
    unsigned char *data;
    size_t size, cap;
    int failed;
} byte_buffer;

static void append_bytes(void *context, void *data, int size)
{
    byte_buffer *b = context;
    if (b->failed || size <= 0) return;
    if (b->size + (size_t)size > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->size + (size_t)size) cap *= 2;
        unsigned char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->size, data, (size_t)size);
    b->size += (size_t)size;
}

/* Box filter: each output pixel is the mean of the source pixels it covers (no aliasing on
 * the large downscales of radiographs, unlike point sampling). */
static void box_downscale(const raddino_image *img, int ow, int oh, unsigned char *out)
{
    for (int y = 0; y < oh; y++) {
        int y0 = (int)((int64_t)y * img->height / oh);
        int y1 = (int)((int64_t)(y + 1) * img->height / oh);
        if (y1 <= y0) y1 = y0 + 1;
        for (int x = 0; x < ow; x++) {
            int x0 = (int)((int64_t)x * img->width / ow);
            int x1 = (int)((int64_t)(x + 1) * img->width / ow);
            if (x1 <= x0) x1 = x0 + 1;
            uint64_t sum[3] = {0, 0, 0};
            for (int sy = y0; sy < y1; sy++) {
                const uint8_t *row = img->rgb + ((size_t)sy * (size_t)img->width + (size_t)x0) * 3;
                for (int sx = x0; sx < x1; sx++, row += 3) {
                    sum[0] += row[0];
                    sum[1] += row[1];
                    sum[2] += row[2];
                }
            }
            uint64_t count = (uint64_t)(y1 - y0) * (uint64_t)(x1 - x0);
            for (int c = 0; c < 3; c++)
                out[((size_t)y * (size_t)ow + (size_t)x) * 3 + (size_t)c] =
                    (unsigned char)((sum[c] + count / 2) / count);
        }
    }
}

raddino_status html_thumbnail_jpeg(const char *path, const raddino_load_options *load,
                                   int max_side, unsigned char **jpeg, size_t *size)
{
    *jpeg = NULL;
    *size = 0;
    if (max_side < 1) return html_error(RADDINO_ERR_ARGUMENT, path, "bad thumbnail size");
    raddino_image img;
    raddino_status st = raddino_image_load_ex(path, load, &img);
    if (st.code) return st;
    int w = img.width, h = img.height, ow = w, oh = h;
    if (w > max_side || h > max_side) {
        if (w >= h) {
            ow = max_side;
            oh = (int)(((int64_t)h * max_side + w / 2) / w);
        } else {
            oh = max_side;
            ow = (int)(((int64_t)w * max_side + h / 2) / h);
        }
        if (ow < 1) ow = 1;
        if (oh < 1) oh = 1;
    }
    unsigned char *small = malloc((size_t)ow * (size_t)oh * 3);
    if (!small) {
        raddino_image_free(&img);
        return html_error(RADDINO_ERR_NOMEM, path, "out of memory");
    }
    box_downscale(&img, ow, oh, small);
    raddino_image_free(&img);
    byte_buffer b = {0};
    int good = stbi_write_jpg_to_func(append_bytes, &b, ow, oh, 3, small, HTML_THUMB_QUALITY);
    free(small);
    if (!good || b.failed) {
        free(b.data);
        return html_error(RADDINO_ERR_NOMEM, path, "could not encode the thumbnail");
    }
    *jpeg = b.data;
    *size = b.size;
    return ok_status();
}

void html_thumb(html_report *r, const char *path)
{
    unsigned char *jpeg;
    size_t size;
    raddino_status st = html_thumbnail_jpeg(path, &r->load, HTML_THUMB_SIDE, &jpeg, &size);
    if (st.code) {
        r->failed_thumbs++;
        fputs("<div class=\"thumb missing\" title=\"", r->f);
        html_escape(r->f, st.message);
        fputs("\">no preview</div>", r->f);
        return;
    }
    r->thumbs++;
    fputs("<img class=\"thumb\" src=\"data:image/jpeg;base64,", r->f);
    html_base64(r->f, jpeg, size);
    fputs("\" alt=\"", r->f);
    html_escape(r->f, path);
    fputs("\">", r->f);
    free(jpeg);
}

void html_cluster_colour(int c, char *buf, size_t cap)
{
    double hue = (double)c * 137.508;
    hue -= 360.0 * (double)(long)(hue / 360.0);
    snprintf(buf, cap, "hsl(%.0f,%d%%,%d%%)", hue, c % 2 ? 55 : 70, c % 3 == 2 ? 38 : 48);
}

/* ---- the 2-D map (raddino_pca2, analysis/) ---------------------------------------------- */

void html_scatter_svg(FILE *f, const float *xy, const int *cluster, const char *const *label,
                      size_t n)
{
    const double W = 720, H = 540, M = 16;
    double x0 = 0, x1 = 0, y0 = 0, y1 = 0;
    for (size_t i = 0; i < n; i++) {
        double x = xy[2 * i], y = xy[2 * i + 1];
        if (!i || x < x0) x0 = x;
        if (!i || x > x1) x1 = x;
        if (!i || y < y0) y0 = y;
        if (!i || y > y1) y1 = y;
    }
    double sx = x1 > x0 ? (W - 2 * M) / (x1 - x0) : 0, sy = y1 > y0 ? (H - 2 * M) / (y1 - y0) : 0;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" role=\"img\">", W, H, W, H);
    char colour[48];
    for (size_t i = 0; i < n; i++) {
        double cx = sx ? M + (xy[2 * i] - x0) * sx : W / 2;
        double cy = sy ? H - M - (xy[2 * i + 1] - y0) * sy : H / 2;   /* y up */
        html_cluster_colour(cluster[i], colour, sizeof colour);
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" "
                   "fill-opacity=\"0.8\"><title>", cx, cy, colour);
        html_escape(f, label[i]);
        fprintf(f, " (cluster %d)</title></circle>", cluster[i]);
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\" font-size=\"11\" "
               "fill=\"#777\">PC 1 &#8594;</text><text x=\"4\" y=\"12\" font-size=\"11\" "
               "fill=\"#777\">&#8593; PC 2</text></svg>\n", W - 4, H - 4);
}

/* ---- the page ----------------------------------------------------------------------------- */

static const char page_css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}"
    "h1{font-size:1.4em}h2{font-size:1.1em;margin:1.4em 0 .4em}"
    "section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em;"
    "margin:1em 0}"
    ".row{display:flex;gap:1em;align-items:flex-start}"
    ".grid{display:flex;flex-wrap:wrap;gap:.6em}"
    "figure{margin:0;width:170px;font-size:12px}"
    "figure.query{border-right:2px solid #888;padding-right:1em}"
    "figcaption{word-break:break-all}"
    ".thumb{display:block;max-width:160px;max-height:160px;background:#000}"
    ".missing{width:160px;height:120px;line-height:120px;text-align:center;color:#999;"
    "background:#eee;font-size:12px}"
    ".score{font-weight:600}.muted{color:#777}"
    "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.25em .6em;"
    "text-align:right}td:first-child,th:first-child{text-align:left}"
    "svg{background:#fff;border:1px solid #ddd}";

raddino_status html_report_open(html_report *r, const char *path, const char *title,
                                const raddino_load_options *load)
{
    memset(r, 0, sizeof *r);
    if (load) r->load = *load;
    if (strlen(path) >= sizeof r->path) return html_error(RADDINO_ERR_ARGUMENT, path, "path too long");
    snprintf(r->path, sizeof r->path, "%s", path);
    snprintf(r->tmp, sizeof r->tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(r->tmp);
    if (fd < 0) return html_error(RADDINO_ERR_IO, path, strerror(errno));
    fchmod(fd, 0644);   /* a page to share, not a secret (mkstemp makes 0600) */
    r->f = fdopen(fd, "w");
    if (!r->f) {
        raddino_status st = html_error(RADDINO_ERR_IO, path, strerror(errno));
        close(fd);
        unlink(r->tmp);
        return st;
    }
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width\"><title>", r->f);
    html_escape(r->f, title);
    fprintf(r->f, "</title><style>%s</style></head>\n<body>\n<h1>", page_css);
    html_escape(r->f, title);
    fputs("</h1>\n", r->f);
    return ok_status();
}

void html_report_discard(html_report *r)
{
    if (!r->f) return;
    fclose(r->f);
    r->f = NULL;
    unlink(r->tmp);
}

raddino_status html_report_close(html_report *r)
{
    fputs("<p class=\"muted\">Made by raddino.</p>\n</body></html>\n", r->f);
    int bad = fflush(r->f) != 0 || ferror(r->f) || fsync(fileno(r->f)) != 0;
    const char *why = bad ? strerror(errno ? errno : EIO) : "";
    raddino_status st = ok_status();
    if (bad) st = html_error(RADDINO_ERR_IO, r->path, why);
    if (fclose(r->f) != 0 && !st.code) st = html_error(RADDINO_ERR_IO, r->path, strerror(errno));
    r->f = NULL;
    if (!st.code && rename(r->tmp, r->path) != 0)
        st = html_error(RADDINO_ERR_IO, r->path, strerror(errno));
    if (st.code) unlink(r->tmp);
    return st;
}
