/* image_formats.c — BMP, PNM (Netpbm) and TGA decoders that give Pillow's pixels.
 *
 * Why our own code and not stb_image (used before) or another library: raddino's promise is the
 * reference's pixels, and the reference is Pillow (Debian bookworm's 9.4). stb_image differs
 * from it on real files: it refuses RLE and top-down BMPs and several header versions, reads
 * palette entries past the end of a short palette from memory nobody wrote, expands 5-bit
 * channels by bit replication where Pillow computes v * 255 / 31, reads 16-bit PGM in the wrong
 * byte order and ignores TGA's right-to-left bit. No packaged library decodes these formats the
 * way Pillow does, and Pillow's rules are small, so each decoder below follows Pillow's plugin
 * (BmpImagePlugin, PpmImagePlugin, TgaImagePlugin) and its C unpackers step by step, quirks
 * included (an RLE delta escape that consumes four bytes, OS/2 palettes read as 256 entries
 * whatever follows), and refuses with one line what Pillow refuses (truncated pixel data among
 * it: Pillow raises "image file is truncated") or what we choose not to follow (noted where).
 *
 * Every header field is hostile: sizes are computed in 64 bits, the pixel cap is applied from
 * the header before any pixel buffer exists, and every read is bounds-checked against the file;
 * every output byte is written from the file or from a rule (never left as allocated). */
#include "encoder_status.h"
#include "image_internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared: Pillow's unpackers for the raw modes these formats use ---------------------- */

typedef enum {
    RAW_P1,      /* "P;1": palette indices, 1 bit, most significant first */
    RAW_P4,      /* "P;4": palette indices, 4 bits, high nibble first */
    RAW_P8,      /* "P" */
    RAW_L,       /* "L": grey */
    RAW_LA,      /* "LA": grey + alpha */
    RAW_BIT1,    /* "1": 1 bit, most significant first, 1 = white */
    RAW_BIT1I,   /* "1;I": as "1", inverted (PBM: 1 = black) */
    RAW_BGR15,   /* "BGR;15" (and TGA's "BGR;5"): little-endian x:1 r:5 g:5 b:5 */
    RAW_BGR16,   /* "BGR;16": little-endian r:5 g:6 b:5 */
    RAW_BGR,     /* "BGR" */
    RAW_BGRX,    /* "BGRX", "BGRA": alpha dropped as convert("RGB") drops it */
    RAW_XBGR,    /* "XBGR", "ABGR" */
    RAW_RGBA,    /* "RGBA" */
    RAW_RGB,     /* "RGB" */
} raw_mode;

/* Bytes one row of w pixels takes in this raw mode (Pillow: (w * bits + 7) / 8). */
static uint64_t raw_row_bytes(raw_mode m, uint64_t w)
{
    switch (m) {
    case RAW_P1: case RAW_BIT1: case RAW_BIT1I: return (w + 7) / 8;
    case RAW_P4: return (w + 1) / 2;
    case RAW_P8: case RAW_L: return w;
    case RAW_LA: case RAW_BGR15: case RAW_BGR16: return 2 * w;
    case RAW_BGR: case RAW_RGB: return 3 * w;
    case RAW_BGRX: case RAW_XBGR: case RAW_RGBA: return 4 * w;
    }
    return 4 * w;
}

/* A palette as Pillow holds it: 256 RGB entries; the entries a file does not give keep the
 * value Pillow's ImagingPaletteNew gives them, the grey ramp (i, i, i). So an index past the
 * end of a short palette shows grey level i, every time (verified against Pillow 9.4). */
typedef struct {
    uint8_t rgb[256][3];
} palette;

static void palette_init(palette *p)
{
    for (int i = 0; i < 256; i++) p->rgb[i][0] = p->rgb[i][1] = p->rgb[i][2] = (uint8_t)i;
}

/* Pillow's 5- and 6-bit channel expansion (Unpack.c ImagingUnpackBGR15/16): v * 255 / max,
 * truncated; not bit replication (which is up to 3 levels off). */
static uint8_t expand5(unsigned v) { return (uint8_t)((v & 31) * 255 / 31); }
static uint8_t expand6(unsigned v) { return (uint8_t)((v & 63) * 255 / 63); }

/* One row in raw mode m -> w RGB pixels. src holds raw_row_bytes(m, w) bytes. */
static void unpack_row(raw_mode m, const uint8_t *src, size_t w, const palette *pal,
                       uint8_t *rgb)
{
    for (size_t x = 0; x < w; x++, rgb += 3) {
        unsigned v;
        switch (m) {
        case RAW_P1:
        case RAW_P4:
        case RAW_P8:
            v = m == RAW_P1 ? (src[x >> 3] >> (7 - (x & 7))) & 1
              : m == RAW_P4 ? (src[x >> 1] >> (x & 1 ? 0 : 4)) & 15 : src[x];
            memcpy(rgb, pal->rgb[v], 3);
            break;
        case RAW_L:
        case RAW_LA:
            rgb[0] = rgb[1] = rgb[2] = src[m == RAW_LA ? 2 * x : x];
            break;
        case RAW_BIT1:
        case RAW_BIT1I:
            v = (src[x >> 3] >> (7 - (x & 7))) & 1;
            rgb[0] = rgb[1] = rgb[2] = (v ^ (m == RAW_BIT1I)) ? 255 : 0;
            break;
        case RAW_BGR15:
            v = (unsigned)src[2 * x] | (unsigned)src[2 * x + 1] << 8;
            rgb[0] = expand5(v >> 10), rgb[1] = expand5(v >> 5), rgb[2] = expand5(v);
            break;
        case RAW_BGR16:
            v = (unsigned)src[2 * x] | (unsigned)src[2 * x + 1] << 8;
            rgb[0] = expand5(v >> 11), rgb[1] = expand6(v >> 5), rgb[2] = expand5(v);
            break;
        case RAW_BGR:
            rgb[0] = src[3 * x + 2], rgb[1] = src[3 * x + 1], rgb[2] = src[3 * x];
            break;
        case RAW_BGRX:
            rgb[0] = src[4 * x + 2], rgb[1] = src[4 * x + 1], rgb[2] = src[4 * x];
            break;
        case RAW_XBGR:
            rgb[0] = src[4 * x + 3], rgb[1] = src[4 * x + 2], rgb[2] = src[4 * x + 1];
            break;
        case RAW_RGBA:
            memcpy(rgb, src + 4 * x, 3);
            break;
        case RAW_RGB:
            memcpy(rgb, src + 3 * x, 3);
            break;
        }
    }
}

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static raddino_status no_memory(const char *name, uint64_t w, uint64_t h)
{
    return status_error(RADDINO_ERR_NOMEM, "%s: out of memory for %llux%llu pixels", name,
                        (unsigned long long)w, (unsigned long long)h);
}

/* The result: w x h RGB, allocated once the size has passed the cap. */
static raddino_status alloc_rgb(const char *name, uint64_t w, uint64_t h, raddino_image *out)
{
    out->rgb = malloc((size_t)(w * h * 3));
    if (!out->rgb) return no_memory(name, w, h);
    out->width = (int)w;
    out->height = (int)h;
    return status_ok();
}

/* Stored rows (file order) -> image rows: bottom_up stores the last row first. */
static size_t image_row(size_t file_row, size_t h, bool bottom_up)
{
    return bottom_up ? h - 1 - file_row : file_row;
}

/* Rows of raw pixels stored `stride` bytes apart from data[offset] (the last row needs only its
 * pixels, not its padding: Pillow's raw decoder reads it so). The caller checked the size. */
static void decode_raw_rows(const uint8_t *data, uint64_t offset, uint64_t stride, raw_mode m,
                            const palette *pal, bool bottom_up, raddino_image *out)
{
    size_t w = (size_t)out->width, h = (size_t)out->height;
    for (size_t y = 0; y < h; y++)
        unpack_row(m, data + offset + y * stride, w, pal,
                   out->rgb + image_row(y, h, bottom_up) * w * 3);
}

static void mirror_rows(raddino_image *img)
{
    size_t w = (size_t)img->width;
    for (size_t y = 0; y < (size_t)img->height; y++) {
        uint8_t *row = img->rgb + y * w * 3;
        for (size_t a = 0, b = w - 1; a < b; a++, b--) {
            uint8_t t[3];
            memcpy(t, row + 3 * a, 3);
            memcpy(row + 3 * a, row + 3 * b, 3);
            memcpy(row + 3 * b, t, 3);
        }
    }
}

static void fail_cleanup(raddino_image *out)
{
    free(out->rgb);
    memset(out, 0, sizeof *out);
}

/* ---- BMP (Pillow's BmpImagePlugin) -------------------------------------------------------- */

typedef struct {
    uint64_t width, height, offset, colors;
    uint32_t header_size, bits, compression;
    bool top_down;
    int palette_padding;        /* bytes per palette entry: 3 (OS/2 1.x) or 4 */
    uint64_t pos;               /* file position after the header (and 40-byte masks) */
    uint32_t masks[4];          /* r, g, b, a when compression is BITFIELDS */
} bmp_header;

/* The header fields, read as Pillow reads them (widths unsigned, a negative height is top-down
 * only when its top byte is 0xFF, OS/2 1.x sizes 16-bit). */
static raddino_status bmp_read_header(const uint8_t *d, size_t size, const char *name,
                                      bmp_header *h)
{
    memset(h, 0, sizeof *h);
    if (size < 18) return status_error(RADDINO_ERR_FORMAT, "%s: BMP: truncated header", name);
    h->offset = le32(d + 10);
    h->header_size = le32(d + 14);
    uint32_t hs = h->header_size;
    if (hs != 12 && hs != 40 && hs != 64 && hs != 108 && hs != 124)
        return status_error(RADDINO_ERR_FORMAT, "%s: BMP: unsupported header size %u (Pillow "
                            "reads 12, 40, 64, 108 and 124)", name, hs);
    if (size < 14 + (uint64_t)hs)
        return status_error(RADDINO_ERR_FORMAT, "%s: BMP: truncated header", name);
    const uint8_t *p = d + 18;  /* the header after its size field */
    h->pos = 14 + (uint64_t)hs;
    if (hs == 12) {
        h->width = le16(p);
        h->height = le16(p + 2);
        h->bits = le16(p + 6);
        h->palette_padding = 3;
        return status_ok();
    }
    h->width = le32(p);
    h->top_down = p[7] == 0xFF;
    h->height = h->top_down ? ((uint64_t)1 << 32) - le32(p + 4) : le32(p + 4);
    h->bits = le16(p + 10);
    h->compression = le32(p + 12);
    h->colors = le32(p + 28);
    h->palette_padding = 4;
    if (h->compression == 3) {
        if (hs >= 56) {
            for (int i = 0; i < 4; i++) h->masks[i] = le32(p + 36 + 4 * i);
        } else {
            /* A 40-byte header: three masks follow it; there is no alpha mask. */
            if (size < h->pos + 12)
                return status_error(RADDINO_ERR_FORMAT, "%s: BMP: truncated bitfield masks",
                                    name);
            for (int i = 0; i < 3; i++) h->masks[i] = le32(d + h->pos + 4 * i);
            h->pos += 12;
        }
    }
    return status_ok();
}

/* The raw mode of the pixels for the header's depth and bitfields (BIT2MODE, MASK_MODES). */
static raddino_status bmp_raw_mode(const bmp_header *h, const char *name, raw_mode *m)
{
    switch (h->bits) {
    case 1: *m = RAW_P1; break;
    case 4: *m = RAW_P4; break;
    case 8: *m = RAW_P8; break;
    case 16: *m = RAW_BGR15; break;
    case 24: *m = RAW_BGR; break;
    case 32: *m = RAW_BGRX; break;
    default:
        return status_error(RADDINO_ERR_FORMAT, "%s: BMP: unsupported bit depth %u", name,
                            h->bits);
    }
    uint32_t c = h->compression;
    if (c == 0 || c == 1 || c == 2) return status_ok();
    if (c != 3)
        return status_error(RADDINO_ERR_FORMAT, "%s: BMP: unsupported compression %u (raw, "
                            "RLE8, RLE4 and bitfields are read)", name, c);
    const uint32_t *k = h->masks;
    bool rgb_is = false;
#define MASKS(r, g, b) (k[0] == (r) && k[1] == (g) && k[2] == (b))
    if (h->bits == 32) {
        if (MASKS(0xFF0000, 0xFF00, 0xFF) && (k[3] == 0 || k[3] == 0xFF000000u))
            *m = RAW_BGRX, rgb_is = true;
        else if (MASKS(0xFF000000u, 0xFF0000, 0xFF00) && (k[3] == 0 || k[3] == 0xFF))
            *m = RAW_XBGR, rgb_is = true;
        else if (MASKS(0xFF, 0xFF00, 0xFF0000) && k[3] == 0xFF000000u)
            *m = RAW_RGBA, rgb_is = true;
        else if (MASKS(0, 0, 0) && k[3] == 0)
            *m = RAW_BGRX, rgb_is = true;   /* Pillow reads all-zero masks as BGRA */
    } else if (h->bits == 24 && MASKS(0xFF0000, 0xFF00, 0xFF)) {
        *m = RAW_BGR, rgb_is = true;
    } else if (h->bits == 16 && MASKS(0xF800, 0x7E0, 0x1F)) {
        *m = RAW_BGR16, rgb_is = true;
    } else if (h->bits == 16 && MASKS(0x7C00, 0x3E0, 0x1F)) {
        *m = RAW_BGR15, rgb_is = true;
    }
#undef MASKS
    if (!rgb_is)
        return status_error(RADDINO_ERR_FORMAT, "%s: BMP: unsupported bitfields layout "
                            "(%u bits, masks %#x %#x %#x %#x)", name, h->bits, k[0], k[1], k[2],
                            k[3]);
    return status_ok();
}

/* Pillow 9.4's BmpRleDecoder, step by step: indices in file order, rows of `w`, zero where an
 * escape skips. Returns false with *why when Pillow would refuse (not enough data for every
 * pixel: it raises "not enough image data", also on an early end of bitmap). `pos` is an
 * absolute file position: absolute runs are padded to an even file position, as Pillow does. */
static bool bmp_rle_decode(const uint8_t *d, size_t size, uint64_t pos, uint64_t w, uint64_t h,
                           bool rle4, uint8_t *idx, const char **why)
{
    uint64_t total = w * h, n = 0, x = 0;
#define PUT(v) do { if (n < total) idx[n] = (uint8_t)(v); n++; } while (0)
    *why = "not enough image data";
    while (n < total) {
        if (pos + 2 > size) break;
        unsigned count = d[pos], byte = d[pos + 1];
        pos += 2;
        if (count) {
            uint64_t num = count;
            if (x + num > w) num = x < w ? w - x : 0;
            for (uint64_t i = 0; i < num; i++)
                PUT(rle4 ? (i % 2 ? byte & 15 : byte >> 4) : byte);
            x += num;
        } else if (byte == 0) {                 /* end of line: zeros to the row end */
            while (n % w) PUT(0);
            x = 0;
        } else if (byte == 1) {                 /* end of bitmap */
            break;
        } else if (byte == 2) {
            /* Delta. Pillow 9.4 reads two bytes, ignores them and reads the offsets from the
             * next two; its zeros may run past the image, which only ends the decode. */
            if (pos + 2 > size) break;
            pos += 2;
            if (pos + 2 > size) {
                *why = "truncated delta escape";
                return false;
            }
            uint64_t skip = d[pos] + (uint64_t)d[pos + 1] * w;
            pos += 2;
            while (skip && n < total) {
                PUT(0);
                skip--;
            }
            n += skip;
            x = n % w;
        } else {                                /* absolute run of `byte` pixels */
            uint64_t nbytes = rle4 ? byte / 2 : byte;
            uint64_t got = size - pos < nbytes ? size - pos : nbytes;
            for (uint64_t i = 0; i < got; i++) {
                if (rle4) {
                    PUT(d[pos + i] >> 4);
                    PUT(d[pos + i] & 15);
                } else {
                    PUT(d[pos + i]);
                }
            }
            pos += got;
            if (got < nbytes) break;
            x += byte;
            if (pos % 2) pos++;
        }
    }
#undef PUT
    return n >= total;
}

static raddino_status decode_bmp(const uint8_t *d, size_t size, const char *name,
                                 uint64_t max_pixels, raddino_image *out)
{
    bmp_header h;
    raddino_status st = bmp_read_header(d, size, name, &h);
    if (st.code) return st;
    raw_mode m = RAW_P8;
    st = bmp_raw_mode(&h, name, &m);
    if (st.code) return st;
    st = image_check_size(name, h.width, h.height, max_pixels);
    if (st.code) return st;
    uint64_t colors = h.colors ? h.colors : (uint64_t)1 << h.bits;
    uint64_t offset = h.offset;
    if (offset == 14 + (uint64_t)h.header_size && h.bits <= 8) offset += 4 * colors;
    bool rle = h.compression == 1 || h.compression == 2;

    /* Palette images: Pillow reads `colors` entries right after the header (OS/2 1.x: 256 of
     * 3 bytes whatever follows), as far as the file goes. A palette that is exactly black and
     * white (2 colours) or the grey ramp 0..n-1 is dropped: the image becomes mode "1" or "L"
     * and the stored values are read as such, whatever the depth. */
    palette pal;
    palette_init(&pal);
    enum { MODE_P, MODE_L, MODE_1, MODE_RGB } mode = h.bits <= 8 ? MODE_P : MODE_RGB;
    uint64_t pos = h.pos;
    if (mode == MODE_P) {
        /* More than 256 colours: Pillow fails on the grey test past entry 255, or on a
         * palette of more than 256 entries; a file too short to hold them can pass. */
        if (colors == 0 || colors > 65536)
            return status_error(RADDINO_ERR_FORMAT, "%s: BMP: unsupported palette size %llu",
                                name, (unsigned long long)colors);
        uint64_t pad = (uint64_t)h.palette_padding;
        uint64_t want = pad * colors, have = pos < size ? size - pos : 0;
        uint64_t got = have < want ? have : want;
        const uint8_t *pb = d + pos;
        bool grey = true;
        for (uint64_t i = 0; i < colors && grey; i++) {
            if (i == 256)
                return status_error(RADDINO_ERR_FORMAT, "%s: BMP: grey palette of %llu "
                                    "entries, over 256", name, (unsigned long long)colors);
            unsigned v = colors == 2 ? (i ? 255 : 0) : (unsigned)i;
            grey = i * pad + 3 <= got && pb[i * pad] == v && pb[i * pad + 1] == v &&
                   pb[i * pad + 2] == v;
        }
        if (!grey && got / pad > 256)
            return status_error(RADDINO_ERR_FORMAT, "%s: BMP: palette of %llu entries, over "
                                "256", name, (unsigned long long)(got / pad));
        if (grey) {
            mode = colors == 2 ? MODE_1 : MODE_L;
            m = mode == MODE_1 ? RAW_BIT1 : RAW_L;
        } else {
            for (uint64_t i = 0; i < got / pad; i++) {
                pal.rgb[i][0] = pb[i * pad + 2];
                pal.rgb[i][1] = pb[i * pad + 1];
                pal.rgb[i][2] = pb[i * pad];
            }
        }
        pos += got;
    }
    if (offset == 0) offset = pos;  /* Pillow: `offset or fp.tell()` */
    out->source_bits = 8;
    out->source_channels = mode == MODE_L || mode == MODE_1 ? 1 : 3;

    if (rle) {
        if (mode != MODE_P && mode != MODE_L)
            return status_error(RADDINO_ERR_FORMAT, "%s: BMP: RLE compression on a %s image",
                                name, mode == MODE_1 ? "black-and-white" : "true-colour");
        uint64_t n = h.width * h.height;
        uint8_t *idx = malloc((size_t)n);
        if (!idx) return no_memory(name, h.width, h.height);
        const char *why;
        if (!bmp_rle_decode(d, size, offset, h.width, h.height, h.compression == 2, idx, &why)) {
            free(idx);
            return status_error(RADDINO_ERR_FORMAT, "%s: BMP: RLE data: %s (file is truncated "
                                "or damaged)", name, why);
        }
        st = alloc_rgb(name, h.width, h.height, out);
        if (!st.code)
            decode_raw_rows(idx, 0, h.width, mode == MODE_L ? RAW_L : RAW_P8, &pal, !h.top_down,
                            out);
        free(idx);
        return st;
    }

    uint64_t stride = ((h.width * h.bits + 31) >> 3) & ~(uint64_t)3;
    uint64_t row = raw_row_bytes(m, h.width);
    if (stride < row)
        /* Pillow's raw decoder refuses this (a grey-ramp palette read as 8-bit "L" over rows
         * of 1 or 4 bits); its memory-mapped path would read past the rows instead. */
        return status_error(RADDINO_ERR_FORMAT, "%s: BMP: %llu-byte rows cannot hold the %llu "
                            "bytes its palette implies", name, (unsigned long long)stride,
                            (unsigned long long)row);
    uint64_t need = offset + (h.height - 1) * stride + row;
    if (offset > size || need > size)
        return status_error(RADDINO_ERR_FORMAT, "%s: BMP: truncated pixel data (%llu bytes "
                            "needed, %zu in the file)", name, (unsigned long long)need, size);
    st = alloc_rgb(name, h.width, h.height, out);
    if (st.code) return st;
    decode_raw_rows(d, offset, stride, m, &pal, !h.top_down, out);
    return st;
}

/* ---- PNM (Pillow's PpmImagePlugin) --------------------------------------------------------- */

static bool pnm_white(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* One header token as Pillow's _read_token reads it: leading whitespace skipped, '#' skips to
 * the end of the line (also inside a token: "1#c\n2" is 12), ends after one whitespace byte or
 * at the end of the file; at most 10 characters. Only decimal digits are taken (Python's int()
 * would also take a sign or underscores: refused). */
static raddino_status pnm_token(const uint8_t *d, size_t size, size_t *pos, const char *name,
                                uint64_t *value)
{
    char tok[12];
    size_t len = 0;
    while (len <= 10) {
        if (*pos >= size) break;
        uint8_t c = d[(*pos)++];
        if (pnm_white(c)) {
            if (!len) continue;
            break;
        }
        if (c == '#') {
            while (*pos < size && d[*pos] != '\r' && d[*pos] != '\n') (*pos)++;
            if (*pos < size) (*pos)++;
            continue;
        }
        tok[len++] = (char)c;
    }
    if (!len) return status_error(RADDINO_ERR_FORMAT, "%s: PNM: end of file in the header", name);
    if (len > 10) return status_error(RADDINO_ERR_FORMAT, "%s: PNM: header number too long", name);
    *value = 0;
    for (size_t i = 0; i < len; i++) {
        if (tok[i] < '0' || tok[i] > '9')
            return status_error(RADDINO_ERR_FORMAT, "%s: PNM: header field is not a decimal "
                                "number", name);
        *value = *value * 10 + (uint64_t)(tok[i] - '0');
    }
    return status_ok();
}

/* Pillow's scaling of a sample to out_max: round(v / maxval * out_max) in double, half to even
 * (Python's round; rint in the default rounding mode), capped at out_max. */
static unsigned pnm_scale(unsigned v, unsigned maxval, unsigned out_max)
{
    double s = rint((double)v / (double)maxval * (double)out_max);
    return s > out_max ? out_max : (unsigned)s;
}

/* Plain (ASCII) data as Pillow's PpmPlainDecoder reads it, whole file in one pass: comments
 * ('#' to the end of the line, the line end included) are cut out, joining what surrounds
 * them. For P1 every non-space byte is one value and must be 0 or 1 (all of them are checked,
 * as Pillow checks its whole first block); for P2/P3 whitespace separates numbers of at most
 * 10 digits, none over maxval. Values go to vals (n of them, 8- or 16-bit by out_max). */
static raddino_status pnm_plain(const uint8_t *d, size_t size, size_t pos, bool bitonal,
                                unsigned maxval, unsigned out_max, uint64_t n, uint16_t *vals,
                                const char *name)
{
    uint64_t got = 0;
    uint64_t acc = 0;
    size_t digits = 0;
    bool more = pos < size;
    for (size_t i = pos; more; i++) {
        uint8_t c = i < size ? d[i] : ' ';
        more = i < size;
        if (c == '#') {
            while (i + 1 < size && d[i + 1] != '\r' && d[i + 1] != '\n') i++;
            if (i + 1 < size) i++;      /* the line end goes with the comment */
            continue;
        }
        if (bitonal) {
            if (pnm_white(c)) continue;
            if (c != '0' && c != '1')
                return status_error(RADDINO_ERR_FORMAT, "%s: PNM: invalid byte %#x in plain "
                                    "bitmap data", name, c);
            if (got < n) vals[got] = c == '0' ? 255 : 0;
            got++;
            continue;
        }
        if (!pnm_white(c)) {
            if (c < '0' || c > '9')
                return status_error(RADDINO_ERR_FORMAT, "%s: PNM: plain data is not a decimal "
                                    "number", name);
            if (++digits > 10)
                return status_error(RADDINO_ERR_FORMAT, "%s: PNM: number too long in plain "
                                    "data", name);
            acc = acc * 10 + (uint64_t)(c - '0');
            continue;
        }
        if (!digits) continue;
        if (acc > maxval)
            return status_error(RADDINO_ERR_FORMAT, "%s: PNM: value %llu over maxval %u", name,
                                (unsigned long long)acc, maxval);
        vals[got++] = (uint16_t)pnm_scale((unsigned)acc, maxval, out_max);
        acc = 0, digits = 0;
        if (got == n) break;            /* Pillow stops at the last value */
    }
    if (got < n)
        return status_error(RADDINO_ERR_FORMAT, "%s: PNM: truncated plain data (%llu of %llu "
                            "values)", name, (unsigned long long)got, (unsigned long long)n);
    return status_ok();
}

static raddino_status decode_pnm(const uint8_t *d, size_t size, const char *name,
                                 uint64_t max_pixels, raddino_image *out)
{
    /* The magic: up to 6 bytes, ended by one whitespace byte. */
    size_t pos = 0;
    char magic[7] = {0};
    while (pos < 6 && pos < size && !pnm_white(d[pos])) magic[pos] = (char)d[pos], pos++;
    if (pos < size && pnm_white(d[pos])) pos++;
    if (strlen(magic) != 2 || magic[0] != 'P' || magic[1] < '1' || magic[1] > '6') {
        for (char *c = magic; *c; c++)
            if (*c < 0x21 || *c > 0x7e) *c = '?';   /* the message stays printable */
        return status_error(RADDINO_ERR_FORMAT, "%s: PNM: unsupported magic number \"%s\" "
                            "(P1 to P6 are read)", name, magic);
    }
    int kind = magic[1] - '0';
    bool bitmap = kind == 1 || kind == 4, plain = kind <= 3;
    int bands = kind == 3 || kind == 6 ? 3 : 1;
    uint64_t w, h, maxval = 1;
    raddino_status st = pnm_token(d, size, &pos, name, &w);
    if (!st.code) st = pnm_token(d, size, &pos, name, &h);
    if (!st.code && !bitmap) st = pnm_token(d, size, &pos, name, &maxval);
    if (st.code) return st;
    if (maxval == 0 || maxval > 65535)
        return status_error(RADDINO_ERR_FORMAT, "%s: PNM: maxval %llu is not in 1..65535", name,
                            (unsigned long long)maxval);
    st = image_check_size(name, w, h, max_pixels);
    if (st.code) return st;
    uint64_t n = w * h * (uint64_t)bands;
    bool wide = maxval > 255;    /* raddino's rule for more than 8 bits: 16-bit, then min-max */

    out->source_bits = wide ? 16 : 8;
    out->source_channels = bands;
    if (kind == 4) {
        uint64_t row = (w + 7) / 8;
        if (h * row > size - pos)
            return status_error(RADDINO_ERR_FORMAT, "%s: PNM: truncated pixel data (%llu bytes "
                                "needed, %zu there)", name, (unsigned long long)(h * row),
                                size - pos);
        st = alloc_rgb(name, w, h, out);
        if (!st.code) decode_raw_rows(d, pos, row, RAW_BIT1I, NULL, false, out);
        return st;
    }
    if (!plain && maxval == 255) {
        if (n > size - pos)
            return status_error(RADDINO_ERR_FORMAT, "%s: PNM: truncated pixel data (%llu bytes "
                                "needed, %zu there)", name, (unsigned long long)n, size - pos);
        st = alloc_rgb(name, w, h, out);
        if (!st.code)
            decode_raw_rows(d, pos, w * (uint64_t)bands, bands == 3 ? RAW_RGB : RAW_L, NULL,
                            false, out);
        return st;
    }
    /* Scaled samples: 8-bit as Pillow gives them, or 16-bit for the min-max rule. A file too
     * short for the values is refused before memory is reserved for them (plain: one byte per
     * PBM value, a digit and a separator per PGM/PPM value but the last). */
    uint64_t least = !plain ? n * (maxval < 256 ? 1 : 2) : bitmap ? n : 2 * n - 1;
    if (least > size - pos)
        return status_error(RADDINO_ERR_FORMAT, "%s: PNM: truncated pixel data (%llu bytes "
                            "needed at least, %zu there)", name, (unsigned long long)least,
                            size - pos);
    uint16_t *vals = malloc((size_t)n * sizeof *vals);
    if (!vals) return no_memory(name, w, h);
    unsigned out_max = wide ? 65535 : 255;
    if (plain) {
        st = pnm_plain(d, size, pos, bitmap, (unsigned)maxval, out_max, n, vals, name);
    } else {
        uint64_t in = maxval < 256 ? 1 : 2;
        if (n * in > size - pos) {
            st = status_error(RADDINO_ERR_FORMAT, "%s: PNM: truncated pixel data (%llu bytes "
                              "needed, %zu there)", name, (unsigned long long)(n * in),
                              size - pos);
        } else {
            const uint8_t *p = d + pos;
            for (uint64_t i = 0; i < n; i++) {
                /* Netpbm samples of two bytes are big-endian. */
                unsigned v = in == 1 ? p[i] : (unsigned)p[2 * i] << 8 | p[2 * i + 1];
                vals[i] = (uint16_t)(maxval == 65535 ? v : pnm_scale(v, (unsigned)maxval,
                                                                     out_max));
            }
        }
    }
    if (!st.code) st = alloc_rgb(name, w, h, out);
    if (!st.code) {
        if (wide) {
            st = image_rgb_from_16(vals, (size_t)(w * h), bands, out->rgb);
            if (st.code) st = no_memory(name, w, h);
        } else if (bands == 3) {
            for (uint64_t i = 0; i < n; i++) out->rgb[i] = (uint8_t)vals[i];
        } else {
            for (uint64_t i = 0; i < n; i++)
                out->rgb[3 * i] = out->rgb[3 * i + 1] = out->rgb[3 * i + 2] = (uint8_t)vals[i];
        }
    }
    free(vals);
    return st;
}

/* ---- TGA (Pillow's TgaImagePlugin) ---------------------------------------------------------- */

/* TGA has no signature: a file is taken as TGA when its header passes Pillow's checks. */
bool image_tga_sniff(const uint8_t *d, size_t size)
{
    if (size < 18) return false;
    unsigned depth = d[16], kind = d[2];
    return d[1] <= 1 && le16(d + 12) > 0 && le16(d + 14) > 0 &&
           (depth == 1 || depth == 8 || depth == 16 || depth == 24 || depth == 32) &&
           (kind == 1 || kind == 2 || kind == 3 || kind == 9 || kind == 10 || kind == 11);
}

static raddino_status decode_tga(const uint8_t *d, size_t size, const char *name,
                                 uint64_t max_pixels, raddino_image *out)
{
    if (!image_tga_sniff(d, size))
        return status_error(RADDINO_ERR_FORMAT,
                            "%s: not a supported image (PNG, JPEG, DICOM, BMP, PNM, TGA)", name);
    /* Pillow tries its PCX reader before TGA: a header whose ID length is 10 can pass PCX's
     * checks, and Pillow then reads (or refuses) it as PCX, never as TGA. */
    if (d[0] == 10 && (d[1] == 0 || d[1] == 2 || d[1] == 3 || d[1] == 5) && size >= 68 &&
        le16(d + 8) + 1 > le16(d + 4) && le16(d + 10) + 1 > le16(d + 6))
        return status_error(RADDINO_ERR_FORMAT, "%s: TGA header that Pillow reads as PCX (not "
                            "supported)", name);
    unsigned kind = d[2], depth = d[16], flags = d[17];
    uint64_t w = le16(d + 12), h = le16(d + 14);
    bool rle = kind & 8, top_down = flags & 0x20, right_to_left = flags & 0x10;
    raw_mode m = RAW_P8;
    int channels;
    switch ((kind & 7) << 8 | depth) {
    case 1 << 8 | 8: m = RAW_P8, channels = 1; break;
    case 3 << 8 | 1: m = RAW_BIT1, channels = 1; break;
    case 3 << 8 | 8: m = RAW_L, channels = 1; break;
    case 3 << 8 | 16: m = RAW_LA, channels = 2; break;
    case 2 << 8 | 16: m = RAW_BGR15, channels = 3; break;
    case 2 << 8 | 24: m = RAW_BGR, channels = 3; break;
    case 2 << 8 | 32: m = RAW_BGRX, channels = 4; break;
    default:
        return status_error(RADDINO_ERR_FORMAT, "%s: TGA: unsupported depth %u for image type "
                            "%u", name, depth, kind);
    }
    uint64_t pos = 18 + (uint64_t)d[0];
    if (pos > size) pos = size;
    /* The colour map: Pillow reads maps of 16 (5-5-5) and 24 bits, after `start` entries it
     * takes as zero; a map of another depth is not read nor skipped (its bytes are taken as
     * pixels). A 32-bit map Pillow refuses; a map on an image that is not colour-mapped it
     * refuses (true colour) or applies to grey in a way we do not follow: refused. */
    palette pal;
    palette_init(&pal);
    if (d[1]) {
        unsigned start = le16(d + 3), len = le16(d + 5), map_depth = d[7];
        if (map_depth == 32)
            return status_error(RADDINO_ERR_FORMAT, "%s: TGA: 32-bit colour maps are not "
                                "supported", name);
        if (map_depth == 16 || map_depth == 24) {
            if (m != RAW_P8)
                return status_error(RADDINO_ERR_FORMAT, "%s: TGA: colour map on an image of "
                                    "type %u", name, kind);
            uint64_t per = map_depth / 8, want = per * len, have = size - pos;
            uint64_t got = want < have ? want : have;
            uint64_t entries = start + got / per;
            if (entries > 256)
                return status_error(RADDINO_ERR_FORMAT, "%s: TGA: colour map of %llu entries, "
                                    "over 256", name, (unsigned long long)entries);
            for (uint64_t i = 0; i < start; i++) memset(pal.rgb[i], 0, 3);
            for (uint64_t i = 0; i < got / per; i++) {
                const uint8_t *e = d + pos + i * per;
                uint8_t *c = pal.rgb[start + i];
                if (per == 2) {
                    unpack_row(RAW_BGR15, e, 1, NULL, c);
                } else {
                    c[0] = e[2], c[1] = e[1], c[2] = e[0];
                }
            }
            pos += got;
        }
    }
    /* A colour-mapped image without a map Pillow reads (none, or of another depth) keeps
     * Pillow's default palette, the grey ramp, which `pal` holds already. */
    raddino_status st = image_check_size(name, w, h, max_pixels);
    if (st.code) return st;
    uint64_t row = raw_row_bytes(m, w);
    out->source_bits = 8;
    out->source_channels = channels;
    if (!rle) {
        if (h * row > size - pos)
            return status_error(RADDINO_ERR_FORMAT, "%s: TGA: truncated pixel data (%llu bytes "
                                "needed, %llu there)", name, (unsigned long long)(h * row),
                                (unsigned long long)(size - pos));
        st = alloc_rgb(name, w, h, out);
        if (st.code) return st;
        decode_raw_rows(d, pos, row, m, &pal, !top_down, out);
    } else {
        /* Pillow's TgaRleDecode (9.4): packets of 1 + 128 pixels at most, repeated or literal;
         * a packet that runs past the end of a row is an overrun error. */
        uint64_t px = depth / 8;
        if (px == 0)
            return status_error(RADDINO_ERR_FORMAT, "%s: TGA: RLE with 1-bit pixels is not "
                                "supported", name);
        /* A packet of 1 + px bytes or more gives at most 128 pixels: a file too short for the
         * image is refused before memory is reserved for it. */
        uint64_t least = (w * h + 127) / 128 * (1 + px);
        if (least > size - pos)
            return status_error(RADDINO_ERR_FORMAT, "%s: TGA: truncated RLE data (%llu bytes "
                                "needed at least, %llu there)", name, (unsigned long long)least,
                                (unsigned long long)(size - pos));
        uint8_t *buf = malloc((size_t)(h * row));
        if (!buf) return no_memory(name, w, h);
        uint64_t y = 0, x = 0;
        while (y < h) {
            if (pos >= size) break;
            uint8_t head = d[pos];
            uint64_t n = px * ((head & 0x7fu) + 1);
            bool run = head & 0x80;
            if (size - pos < 1 + (run ? px : n)) break;
            if (run) {
                if (x + n > row) {
                    free(buf);
                    return status_error(RADDINO_ERR_FORMAT, "%s: TGA: RLE run goes past the "
                                        "end of a row", name);
                }
                for (uint64_t i = 0; i < n; i += px)
                    memcpy(buf + y * row + x + i, d + pos + 1, (size_t)px);
                pos += 1 + px;
                x += n;
                if (x == row) x = 0, y++;
                continue;
            }
            /* A literal packet carries on into the next rows (and stops at the last). */
            pos++;
            while (n && y < h) {
                uint64_t part = n < row - x ? n : row - x;
                memcpy(buf + y * row + x, d + pos, (size_t)part);
                pos += part, n -= part, x += part;
                if (x == row) x = 0, y++;
            }
        }
        if (y < h) {
            free(buf);
            return status_error(RADDINO_ERR_FORMAT, "%s: TGA: truncated RLE data (%llu of %llu "
                                "rows)", name, (unsigned long long)y, (unsigned long long)h);
        }
        st = alloc_rgb(name, w, h, out);
        if (!st.code) decode_raw_rows(buf, 0, row, m, &pal, !top_down, out);
        free(buf);
        if (st.code) return st;
    }
    if (right_to_left) mirror_rows(out);
    return st;
}

/* ---- entry ------------------------------------------------------------------------------- */

raddino_status image_decode_bmp_pnm_tga(const uint8_t *d, size_t size, const char *name,
                                        uint64_t max_pixels, raddino_image *out)
{
    raddino_status st;
    if (size >= 2 && d[0] == 'B' && d[1] == 'M') {
        out->format = "bmp";
        st = decode_bmp(d, size, name, max_pixels, out);
    } else if (size >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7') {
        out->format = "pnm";
        st = decode_pnm(d, size, name, max_pixels, out);
    } else {
        out->format = "tga";
        st = decode_tga(d, size, name, max_pixels, out);
    }
    if (st.code) fail_cleanup(out);
    return st;
}
