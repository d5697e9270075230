/* dicom_pixels.c — DICOM pixels as a reader sees them, and the metadata the store keeps.
 *
 * dicom.cpp (GDCM) hands over one decoded frame with its raw samples; this file applies the
 * standard's pixel pipeline (PS3.3 C.11, "grayscale transformations"):
 *
 *   stored value   bits above Bits Stored dropped, sign-extended when Pixel Representation = 1
 *   modality       Modality LUT Sequence when present (as pydicom), else Rescale Slope/Intercept
 *   VOI            our choice (raddino_load_options.window):
 *                  min-max (default): the 16-bit PNG rule over the non-padding pixels,
 *                    u8 = floor((g - min) * 255 / (max - min) + 0.5) in double, 0 when flat;
 *                  a window: the LINEAR function of C.11.2.1.2.1 (or the file's LINEAR_EXACT /
 *                    SIGMOID), output 0..255, rounded floor(y + 0.5);
 *                  a VOI LUT: the table's output scaled from 0..2^bits-1 to 0..255.
 *   presentation   MONOCHROME1 is inverted so that bone is white. A MONOCHROME1 image of the DX
 *                  IOD must carry Presentation LUT Shape INVERSE (PS3.3 C.8.11.6.1.2: "INVERSE
 *                  if MONOCHROME1"): there the shape restates the same inversion, so it is done
 *                  once. Only a MONOCHROME2 image that says INVERSE is inverted because of the
 *                  shape. In min-max mode the inversion is the negation g -> -g before the
 *                  scaling (so the result is floor((max - g) * 255 / (max - min) + 0.5)); with a
 *                  window, y -> 255 - y before rounding.
 *   padding        stored values equal to Pixel Padding Value (or within the range it makes with
 *                  Pixel Padding Range Limit) are left out of min and max and come out black.
 *
 * Colour: RGB as is, YBR_FULL (and YBR_FULL_422, upsampled when the data is native) converted
 * with the PS3.3 C.7.6.3.1.2 equations; YBR_ICT / YBR_RCT are RGB once the JPEG 2000 decoder has
 * undone its component transform. 16-bit colour gets one min-max over R, G and B together, as
 * 16-bit PNGs. */
#include "dicom_internal.h"
#include "encoder_status.h"
#include "image_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

bool dicom_sniff(const uint8_t *data, size_t size)
{
    return size >= 132 && memcmp(data + 128, "DICM", 4) == 0;
}

/* ---- structure ---------------------------------------------------------------------------- */

/* Debian's GDCM is built with its assert()s on, and some of them fire on malformed framing
 * (a length past the end, a truncated element): abort() instead of an error. So every element
 * of the file is walked here first, with every length checked against the bytes that remain,
 * and GDCM only ever sees files whose framing is sound. */

#define DICOM_MAX_DEPTH 16

typedef struct {
    const uint8_t *d;
    size_t size;
    bool implicit, big;
    const char *name;
    raddino_status st;
    size_t fragments_seen;      /* items of the encapsulated pixel data, offset table first */
    size_t first_fragment, first_fragment_len;  /* the first after the offset table */
    dicom_layout *layout;       /* what the decoder needs to know, filled as the walk goes */
} dicom_walk;

static uint16_t rd16(const dicom_walk *w, size_t at)
{
    const uint8_t *p = w->d + at;
    return w->big ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const dicom_walk *w, size_t at)
{
    const uint8_t *p = w->d + at;
    return w->big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                  : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static bool walk_fail(dicom_walk *w, size_t at, const char *why)
{
    if (!w->st.code)
        w->st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: truncated or malformed (%s at byte "
                             "%zu)", w->name, why, at);
    return false;
}

/* One of the standard's value representations (PS3.5 6.2). */
static bool known_vr(const uint8_t *vr)
{
    static const char vrs[] = "AEASATCSDADSDTFDFLISLOLTOBODOFOLOVOWPNSHSLSQSSSTSVTMUCUIULUNURUSUTUV";
    for (size_t i = 0; i + 1 < sizeof vrs; i += 2)
        if (vr[0] == vrs[i] && vr[1] == vrs[i + 1]) return true;
    return false;
}

/* The Image Pixel attributes GDCM's image reader reads as typed attributes, which assert that
 * the file's VR is the dictionary's: Samples per Pixel, Planar Configuration, Rows, Columns,
 * Bits Allocated/Stored, High Bit, Pixel Representation (US), Number of Frames (IS). */
static bool image_attribute_vr_ok(uint16_t g, uint16_t e, const uint8_t *vr)
{
    if (g != 0x0028) return true;
    if (e == 0x0002 || e == 0x0006 || e == 0x0010 || e == 0x0011 ||
        (e >= 0x0100 && e <= 0x0103))
        return vr[0] == 'U' && vr[1] == 'S';
    if (e == 0x0008) return vr[0] == 'I' && vr[1] == 'S';
    return true;
}

static bool long_vr(const uint8_t *vr)
{
    static const char *const longs[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC",
                                        "UN", "UR", "UT", "UV"};
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++)
        if (vr[0] == longs[i][0] && vr[1] == longs[i][1]) return true;
    return false;
}

static bool walk_elements(dicom_walk *w, size_t *pos, size_t end, int depth, bool in_item);

/* Items of a sequence (data sets) or of encapsulated pixel data (fragments), from *pos to the
 * sequence delimiter (undefined length) or to end (defined length). */
static bool walk_items(dicom_walk *w, size_t *pos, size_t end, bool undefined, bool fragments,
                       int depth)
{
    if (depth > DICOM_MAX_DEPTH) return walk_fail(w, *pos, "sequences nested too deep");
    while (*pos < end || undefined) {
        if (*pos + 8 > end) return walk_fail(w, *pos, "item header past the end");
        uint16_t g = rd16(w, *pos), e = rd16(w, *pos + 2);
        uint32_t len = rd32(w, *pos + 4);
        size_t at = *pos;
        *pos += 8;
        if (g == 0xFFFE && e == 0xE0DD) {
            if (!undefined) return walk_fail(w, at, "sequence delimiter in a defined length");
            /* The standard says 0; GDCM reads another length as a fragment of that size and
             * allocates it (4 GB for a 1 kB file). */
            if (len != 0) return walk_fail(w, at, "sequence delimiter with a non-zero length");
            return true;
        }
        if (g != 0xFFFE || e != 0xE000) return walk_fail(w, at, "expected an item");
        if (len == 0xFFFFFFFFu) {
            if (fragments) return walk_fail(w, at, "fragment of undefined length");
            if (!walk_elements(w, pos, end, depth + 1, true)) return false;
            continue;
        }
        if (len > end - *pos) return walk_fail(w, at, "item length past the end");
        if (fragments && w->fragments_seen++ == 1) {
            w->first_fragment = *pos;
            w->first_fragment_len = len;
        }
        if (!fragments) {
            size_t inner = *pos;
            if (!walk_elements(w, &inner, *pos + len, depth + 1, false)) return false;
        }
        *pos += len;
    }
    return true;
}

/* Elements from *pos to end; in an undefined-length item, up to its delimiter. */
static bool walk_elements(dicom_walk *w, size_t *pos, size_t end, int depth, bool in_item)
{
    if (depth > DICOM_MAX_DEPTH) return walk_fail(w, *pos, "items nested too deep");
    while (*pos < end) {
        size_t at = *pos;
        if (at + 8 > end) return walk_fail(w, at, "element header past the end");
        uint16_t g = rd16(w, at), e = rd16(w, at + 2);
        if (g == 0xFFFE) {
            if (e == 0xE00D && in_item) {
                if (rd32(w, at + 4) != 0)   /* as for the sequence delimiter (walk_items) */
                    return walk_fail(w, at, "item delimiter with a non-zero length");
                *pos += 8;
                return true;
            }
            return walk_fail(w, at, "unexpected delimiter");
        }
        uint32_t len;
        bool sq = false;
        if (w->implicit) {
            len = rd32(w, at + 4);
            *pos += 8;
        } else {
            const uint8_t *vr = w->d + at + 4;
            /* Not just two capitals: GDCM reads an unknown VR with another length field than
             * ours (a text value then becomes a gigabyte-sized length it allocates). */
            if (!known_vr(vr)) return walk_fail(w, at, "bad value representation");
            if (depth == 0 && !image_attribute_vr_ok(g, e, vr))
                return walk_fail(w, at, "image attribute with the wrong value representation");
            sq = vr[0] == 'S' && vr[1] == 'Q';
            if (long_vr(vr)) {
                if (at + 12 > end) return walk_fail(w, at, "element header past the end");
                len = rd32(w, at + 8);
                *pos += 12;
            } else {
                len = rd16(w, at + 6);
                *pos += 8;
            }
        }
        bool pixel_data = g == 0x7FE0 && e == 0x0010 && depth == 0;
        dicom_layout *l = w->layout;
        if (pixel_data && l->pixel_data_at)
            return walk_fail(w, at, "a second Pixel Data element");
        if (len == 0xFFFFFFFFu) {
            size_t items = *pos;
            if (!walk_items(w, pos, end, true, pixel_data, depth + 1)) return false;
            if (pixel_data) {
                l->pixel_data_element_at = at;
                l->pixel_data_at = items;
                l->pixel_data_len = *pos - items;
                l->encapsulated = true;
            }
            continue;
        }
        if (len > end - *pos) return walk_fail(w, at, "element length past the end");
        if (pixel_data) {
            l->pixel_data_element_at = at;
            l->pixel_data_at = *pos;
            l->pixel_data_len = len;
        }
        if (depth == 0 && g == 0x0028 && e == 0x0008) l->has_frames = true;
        if (depth == 0 && g == 0x0028 && e == 0x0009) {
            l->frame_pointer_at = at;
            l->frame_pointer_header = *pos - at;
            l->frame_pointer_len = len;
        }
        /* A defined-length sequence (explicit SQ, or implicit data that starts with an item
         * tag): its items must be sound too, since GDCM will parse them. */
        bool looks_sq = w->implicit && len >= 8 && rd16(w, *pos) == 0xFFFE &&
                        rd16(w, *pos + 2) == 0xE000;
        if (sq || looks_sq) {
            size_t inner = *pos;
            if (!walk_items(w, &inner, *pos + len, false, false, depth + 1)) return false;
        }
        *pos += len;
    }
    if (in_item) return walk_fail(w, *pos, "item without its delimiter");
    return true;
}

/* JPEG (ISO 10918) transfer syntaxes, which GDCM decodes with its IJG libraries. */
static bool jpeg_syntax(const char *ts)
{
    static const char *const syntaxes[] = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                                           "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"};
    for (size_t i = 0; i < sizeof syntaxes / sizeof syntaxes[0]; i++)
        if (!strcmp(ts, syntaxes[i])) return true;
    return false;
}

/* The marker segments of a JPEG stream up to its first scan. GDCM's JPEG codecs assert() on any
 * warning the IJG library gives while reading the header (stray bytes between markers, an
 * unknown JFIF major version, an unknown Adobe transform): those are refused here. A segment
 * running past the fragment (a header split over fragments) is left to the decoder. */
static bool jpeg_header_sound(const uint8_t *p, size_t n)
{
    if (n < 2 || p[0] != 0xFF || p[1] != 0xD8) return false;
    size_t i = 2;
    while (i < n) {
        if (p[i] != 0xFF) return false;
        while (i < n && p[i] == 0xFF) i++;     /* fill bytes */
        if (i >= n) return true;
        uint8_t m = p[i++];
        if (m == 0xDA) return true;             /* SOS: the header is over */
        if (m == 0xD9 || m == 0x00) return false;
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;   /* no length */
        if (i + 2 > n) return true;
        size_t len = (size_t)p[i] << 8 | p[i + 1];
        if (len < 2) return false;
        if (len > n - i) return true;
        const uint8_t *seg = p + i + 2;
        size_t seg_len = len - 2;
        if (m == 0xE0 && seg_len >= 7 && !memcmp(seg, "JFIF", 5) && seg[5] != 1) return false;
        if (m == 0xEE && seg_len >= 12 && !memcmp(seg, "Adobe", 5) && seg[11] > 2) return false;
        i += len;
    }
    return true;
}

static raddino_status check_codestream(const dicom_walk *w, const char *ts)
{
    if (!jpeg_syntax(ts) || w->fragments_seen < 2) return status_ok();
    if (jpeg_header_sound(w->d + w->first_fragment, w->first_fragment_len)) return status_ok();
    return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: corrupt JPEG header in the pixel data",
                        w->name);
}

/* pydicom's test (filereader._is_implicit_VR): the two bytes after the first tag of the data
 * set are a VR when both are capital letters, else the data set is implicit VR, whatever the
 * transfer syntax says. pydicom reads such files with a warning; so does GDCM. */
static bool looks_implicit(const uint8_t *vr)
{
    return !(vr[0] > 0x40 && vr[0] < 0x5B && vr[1] > 0x40 && vr[1] < 0x5B);
}

raddino_status dicom_check_structure(const uint8_t *data, size_t size, const char *name,
                                     dicom_layout *layout)
{
    dicom_layout unused;
    if (!layout) layout = &unused;
    memset(layout, 0, sizeof *layout);
    dicom_walk w = {data, size, false, false, name, {0, ""}, 0, 0, 0, layout};
    if (!dicom_sniff(data, size))
        return status_error(RADDINO_ERR_FORMAT, "%s: not a DICOM file (no DICM marker at byte "
                            "128)", name);
    /* File meta information: group 0002, always explicit VR little endian; it ends where
     * group 0002 ends. */
    size_t pos = 132, meta_end;
    char ts[65] = "";
    while (pos + 8 <= size && rd16(&w, pos) == 0x0002) {
        uint16_t e = rd16(&w, pos + 2);
        const uint8_t *vr = data + pos + 4;
        /* GDCM reads a meta element with an unknown VR as the end of the group, or the whole
         * group as implicit VR when the first one is, and then asserts on what follows; a
         * sequence there it cannot read at all. The standard allows neither: refuse. */
        if (!known_vr(vr) || (vr[0] == 'S' && vr[1] == 'Q')) {
            walk_fail(&w, pos, "bad value representation in the file meta information");
            return w.st;
        }
        size_t header = long_vr(vr) ? 12 : 8;
        if (pos + header > size) break;
        uint32_t len = header == 12 ? rd32(&w, pos + 8) : rd16(&w, pos + 6);
        if (len == 0xFFFFFFFFu || len > size - pos - header) {
            walk_fail(&w, pos, "file meta element length past the end");
            return w.st;
        }
        if (e == 0x0000 && len == 4) layout->meta_group_length_at = pos + header;
        if (e == 0x0010) {
            if (header == 8) {   /* the UI form; a copy rewrites it (dicom.cpp, syntax_copy) */
                layout->syntax_at = pos;
                layout->syntax_len = len;
            }
            size_t n = len < sizeof ts - 1 ? len : sizeof ts - 1;
            memcpy(ts, data + pos + header, n);
            ts[n] = 0;
            while (n && (ts[n - 1] == ' ' || ts[n - 1] == 0)) ts[--n] = 0;
        }
        pos += header + len;
    }
    meta_end = pos;
    if (meta_end == 132 || meta_end >= size)
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: no data set after the file meta "
                            "information (truncated)", name);
    if (!strcmp(ts, "1.2.840.10008.1.2")) w.implicit = true;
    else if (!strcmp(ts, "1.2.840.10008.1.2.2")) w.big = true;
    else if (!strcmp(ts, "1.2.840.10008.1.2.1.99"))
        return status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: deflated transfer syntax not "
                            "supported", name);
    if (meta_end + 8 <= size && looks_implicit(data + meta_end + 4) != w.implicit) {
        if (w.big)   /* neither pydicom's numpy reader nor GDCM agree on what that would be */
            return status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: implicit VR data set under "
                                "the explicit VR big endian transfer syntax", name);
        w.implicit = !w.implicit;
        layout->vr_mismatch = true;
    }
    layout->implicit = w.implicit;
    layout->big_endian = w.big;
    /* Pixel data straight after the file meta information: no attribute says what the pixels
     * are, and GDCM, reading the header up to the pixel data, would meet the end of its input
     * where it expects a tag, and assert. */
    if (meta_end + 4 <= size && rd16(&w, meta_end) == 0x7FE0 && rd16(&w, meta_end + 2) == 0x0010)
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: the pixel data comes first in the "
                            "data set (no image attributes)", name);
    pos = meta_end;
    if (walk_elements(&w, &pos, size, 0, false)) return check_codestream(&w, ts);
    /* Trailing zero bytes (padding some writers leave) are accepted. */
    size_t end = size;
    while (end > meta_end && data[end - 1] == 0) end--;
    if (end == size) return w.st;
    /* Zeros alone are no data set: GDCM would read its first tag past the end, and assert. */
    if (end - meta_end < 8)
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: no data set after the file meta "
                            "information (truncated)", name);
    raddino_status first = w.st;
    w.st = status_ok();
    pos = meta_end;
    w.fragments_seen = 0;
    dicom_layout kept = *layout;   /* what the file meta information said */
    memset(layout, 0, sizeof *layout);
    layout->implicit = kept.implicit;
    layout->big_endian = kept.big_endian;
    layout->vr_mismatch = kept.vr_mismatch;
    layout->syntax_at = kept.syntax_at;
    layout->syntax_len = kept.syntax_len;
    layout->meta_group_length_at = kept.meta_group_length_at;
    return walk_elements(&w, &pos, end, 0, false) ? check_codestream(&w, ts) : first;
}

/* ---- encapsulated frames, RLE ------------------------------------------------------------- */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The items of encapsulated pixel data were bounds-checked by the walk; they are read again here
 * with the same checks, so that this function stands on its own. */
raddino_status dicom_encapsulated_frame(const uint8_t *data, const dicom_layout *l,
                                        const char *name, int frames, int frame,
                                        bool fragment_per_frame, uint8_t **out, size_t *out_size)
{
    *out = NULL;
    *out_size = 0;
    const uint8_t *p = data + l->pixel_data_at;
    size_t n = l->pixel_data_len, at = 0;
    if (!l->encapsulated || n < 8 || le32(p) != 0xE000FFFEu || le32(p + 4) > n - 8)
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: encapsulated pixel data without its "
                            "offset table item", name);
    /* Basic Offset Table: the offset of each frame's first fragment item, counted from the
     * first item after the table. */
    const uint8_t *bot = p + 8;
    size_t bot_entries = le32(p + 4) / 4;
    at = 8 + (size_t)le32(p + 4);
    size_t first_item = at;
    /* Pass 1 counts fragments; pass 2 joins those of the frame. */
    size_t n_fragments = 0, total = 0;
    for (size_t i = at; i + 8 <= n && le32(p + i) == 0xE000FFFEu; n_fragments++) {
        uint32_t len = le32(p + i + 4);
        if (len > n - i - 8)
            return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: fragment length past the end",
                                name);
        i += 8 + (size_t)len;
    }
    if (n_fragments == 0)
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: encapsulated pixel data without "
                            "fragments", name);
    /* Frame f is the fragments whose item starts in [begin, end) (offsets from first_item), or
     * the fragments numbered [begin, end) when counted by index. */
    bool by_offset = bot_entries > 0 && frames > 1 && !fragment_per_frame;
    uint64_t begin = 0, end = UINT64_MAX;
    if (frames == 1) {
        /* every fragment, whatever the table says */
    } else if (fragment_per_frame) {
        if (n_fragments < (size_t)frames)
            return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: %zu fragments for %d frames",
                                name, n_fragments, frames);
        begin = (uint64_t)frame;
        end = begin + 1;
    } else if (by_offset) {
        if ((size_t)frames > bot_entries)
            return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: the offset table has %zu "
                                "entries for %d frames", name, bot_entries, frames);
        begin = le32(bot + 4 * (size_t)frame);
        if (frame + 1 < frames) end = le32(bot + 4 * (size_t)(frame + 1));
        if (end <= begin)
            return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: offset table entries out of "
                                "order", name);
    } else if ((size_t)frames == n_fragments) {
        begin = (uint64_t)frame;
        end = begin + 1;
    } else {
        return status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: %d frames in %zu fragments "
                            "without an offset table: cannot tell the frames apart", name,
                            frames, n_fragments);
    }
    for (int pass = 0; pass < 2; pass++) {
        size_t index = 0, got = 0;
        for (size_t i = first_item; i + 8 <= n && le32(p + i) == 0xE000FFFEu; index++) {
            size_t len = le32(p + i + 4);
            uint64_t key = by_offset ? (uint64_t)(i - first_item) : (uint64_t)index;
            if (key >= begin && key < end) {
                if (pass == 0) total += len;
                else memcpy(*out + got, p + i + 8, len);
                got += len;
            }
            i += 8 + len;
        }
        if (pass == 0) {
            if (total == 0)
                return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: frame %d has no data", name,
                                    frame + 1);
            *out = malloc(total);
            if (!*out) return status_error(RADDINO_ERR_NOMEM, "%s: out of memory", name);
        }
    }
    *out_size = total;
    return status_ok();
}

/* One RLE segment (PS3.5 G.3.1, PackBits): a header byte n, then n + 1 literal bytes when n is
 * 0..127, or the next byte repeated 257 - n times when n is 129..255; 128 is a no-op. Decoding
 * stops when `want` bytes are out (more would be padding pydicom drops too) or the segment ends
 * (a run cut short yields what is there, as pydicom's slices do). Returns the bytes written. */
static size_t rle_segment(const uint8_t *s, size_t n, uint8_t *out, size_t stride, size_t want)
{
    size_t got = 0, i = 0;
    while (i < n && got < want) {
        unsigned h = s[i++];
        if (h < 128) {
            size_t run = h + 1;
            if (run > n - i) run = n - i;
            if (run > want - got) run = want - got;
            for (size_t k = 0; k < run; k++) out[(got + k) * stride] = s[i + k];
            got += run;
            i += h + 1;
        } else if (h > 128) {
            if (i >= n) break;
            size_t run = 257 - h;
            if (run > want - got) run = want - got;
            for (size_t k = 0; k < run; k++) out[(got + k) * stride] = s[i];
            got += run;
            i++;
        }
    }
    return got;
}

/* Why our own decoder and not GDCM's: Debian's GDCM 3.0 orders the segments of samples wider
 * than 8 bits wrongly for colour images (16- and 32-bit RGB come out with their channels
 * rotated), and pydicom, our reference, decodes RLE with its own code; one small decoder for
 * every RLE file keeps one behaviour, bounded by the header's size whatever the segments say.
 *
 * The header (G.5) is 16 little-endian words: the segment count, then up to 15 offsets from the
 * frame's start. Segment k holds byte (k % bytes_per_sample) of sample (k / bytes_per_sample),
 * most significant byte first; each must give rows * columns bytes. As pydicom, a segment runs
 * to the next one's offset (the last to the end of the frame), offsets are not otherwise
 * checked, and a segment that decodes to fewer bytes than a plane is refused. */
raddino_status dicom_rle_decode(const uint8_t *data, size_t size, const char *name, int rows,
                                int columns, int samples, int bytes_per_sample, uint8_t *out)
{
    if (size < 64)
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: RLE frame of %zu bytes, shorter "
                            "than its 64-byte header", name, size);
    uint32_t segments = le32(data);
    uint32_t want_segments = (uint32_t)samples * (uint32_t)bytes_per_sample;
    if (segments > 15 || segments != want_segments)
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: RLE header has %u segments, %d "
                            "sample(s) of %d bit(s) need %u", name, segments, samples,
                            8 * bytes_per_sample, want_segments);
    size_t plane = (size_t)rows * (size_t)columns;
    size_t bps = (size_t)bytes_per_sample;
    for (uint32_t k = 0; k < segments; k++) {
        size_t begin = le32(data + 4 + 4 * k);
        size_t end = k + 1 < segments ? le32(data + 8 + 4 * k) : size;
        if (begin > size) begin = size;
        if (end > size) end = size;
        if (end < begin) end = begin;
        size_t sample = k / bps, byte = bps - 1 - k % bps;   /* MSB first -> little endian */
        uint8_t *dst = out + sample * plane * bps + byte;
        size_t got = rle_segment(data + begin, end - begin, dst, bps, plane);
        if (got < plane)
            return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: RLE segment %u decodes to %zu "
                                "bytes, %zu expected", name, k + 1, got, plane);
    }
    return status_ok();
}

/* ---- stored values ------------------------------------------------------------------------ */

/* Sample i of the frame as the stored value (PS3.5 8.1.1: bits High Bit - Bits Stored + 1 ..
 * High Bit of the allocated word). */
static int64_t stored_value(const dicom_header *h, const uint8_t *pixels, size_t i)
{
    uint64_t raw;
    switch (h->bits_allocated) {
    case 8: raw = pixels[i]; break;
    case 16: raw = (uint64_t)pixels[2 * i] | (uint64_t)pixels[2 * i + 1] << 8; break;
    default:
        raw = (uint64_t)pixels[4 * i] | (uint64_t)pixels[4 * i + 1] << 8 |
              (uint64_t)pixels[4 * i + 2] << 16 | (uint64_t)pixels[4 * i + 3] << 24;
        break;
    }
    int shift = h->high_bit + 1 - h->bits_stored;
    uint64_t mask = ((uint64_t)1 << h->bits_stored) - 1;
    uint64_t v = (raw >> shift) & mask;
    if (h->pixel_representation == 1 && (v >> (h->bits_stored - 1)) & 1)
        return (int64_t)v - ((int64_t)1 << h->bits_stored);
    return (int64_t)v;
}

static double lut_lookup(const dicom_lut *lut, int64_t x)
{
    int64_t i = x - lut->first;
    if (i < 0) i = 0;
    if (i >= lut->n) i = lut->n - 1;
    return lut->data[i];
}

static bool is_padding(const dicom_header *h, int64_t v)
{
    if (!h->has_padding) return false;
    if (!h->has_padding_limit) return v == h->padding_value;
    int64_t lo = h->padding_value < h->padding_limit ? h->padding_value : h->padding_limit;
    int64_t hi = h->padding_value < h->padding_limit ? h->padding_limit : h->padding_value;
    return v >= lo && v <= hi;
}

raddino_status dicom_grey_values(const dicom_frame *f, const char *name, double *grey,
                                 uint8_t *padding)
{
    const dicom_header *h = &f->header;
    size_t n = (size_t)h->rows * (size_t)h->columns;
    if (h->samples_per_pixel != 1 || f->size < n * (size_t)(h->bits_allocated / 8))
        return status_error(RADDINO_ERR_ARGUMENT, "%s: DICOM: not a greyscale frame", name);
    const dicom_lut *lut = h->modality_lut.n ? &h->modality_lut : NULL;
    for (size_t i = 0; i < n; i++) {
        int64_t v = stored_value(h, f->pixels, i);
        grey[i] = lut ? lut_lookup(lut, v)
                      : (double)v * h->rescale_slope + h->rescale_intercept;
        if (padding) padding[i] = is_padding(h, v);
    }
    return status_ok();
}

/* ---- greyscale to 8 bits ------------------------------------------------------------------ */

typedef enum { VOI_MINMAX, VOI_LINEAR, VOI_LINEAR_EXACT, VOI_SIGMOID, VOI_TABLE } voi_kind;

typedef struct {
    voi_kind kind;
    double center, width;
    const dicom_lut *lut;
} voi_choice;

static bool voi_is(const dicom_header *h, const char *s) { return strcmp(h->voi_function, s) == 0; }

/* The file's first window (its VOI LUT Function), else its VOI LUT, else min-max. A window the
 * function cannot use (LINEAR needs width >= 1, the others > 0) is passed over. */
static voi_choice voi_from_file(const dicom_header *h)
{
    voi_choice v = {VOI_MINMAX, 0, 0, NULL};
    if (h->has_window) {
        voi_kind kind = voi_is(h, "LINEAR_EXACT") ? VOI_LINEAR_EXACT
                        : voi_is(h, "SIGMOID")    ? VOI_SIGMOID
                                                  : VOI_LINEAR;
        double min_width = kind == VOI_LINEAR ? 1 : 0;
        if (h->window_width >= min_width && h->window_width > 0) {
            v.kind = kind;
            v.center = h->window_center;
            v.width = h->window_width;
            return v;
        }
    }
    if (h->voi_lut.n) {
        v.kind = VOI_TABLE;
        v.lut = &h->voi_lut;
    }
    return v;
}

/* A VOI function's output for x, in 0..255 (PS3.3 C.11.2.1.2 and C.11.2.1.3). */
static double voi_apply(const voi_choice *v, double x)
{
    const double y_min = 0, y_max = 255;
    double c = v->center, w = v->width;
    switch (v->kind) {
    case VOI_LINEAR:
        if (x <= c - 0.5 - (w - 1) / 2) return y_min;
        if (x > c - 0.5 + (w - 1) / 2) return y_max;
        return ((x - (c - 0.5)) / (w - 1) + 0.5) * (y_max - y_min) + y_min;
    case VOI_LINEAR_EXACT:
        if (x <= c - w / 2) return y_min;
        if (x > c + w / 2) return y_max;
        return (x - c) / w * (y_max - y_min) + (y_max + y_min) / 2;
    case VOI_SIGMOID: return (y_max - y_min) / (1 + exp(-4 * (x - c) / w)) + y_min;
    case VOI_TABLE: {
        double top = (double)(((uint32_t)1 << v->lut->bits) - 1);
        double y = lut_lookup(v->lut, (int64_t)floor(x)) * 255.0 / top;
        return y > 255 ? 255 : y;
    }
    default: return 0;
    }
}

static uint8_t round_u8(double y)
{
    double r = floor(y + 0.5);
    return (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
}

/* One grey level's output byte when min-max is used (lo and range over the sign-adjusted grey
 * levels of the frame's pixels that are not padding). */
static uint8_t minmax_u8(double sign, double g, double lo, double range)
{
    return (uint8_t)floor((sign * g - lo) * 255.0 / range + 0.5);
}

/* grey (after the Modality LUT) -> u8 per the VOI choice and the inversion; padding -> 0. */
static void grey_to_u8(const double *grey, const uint8_t *padding, size_t n, const voi_choice *v,
                       bool invert, uint8_t *out)
{
    if (v->kind != VOI_MINMAX) {
        for (size_t i = 0; i < n; i++) {
            double y = voi_apply(v, grey[i]);
            out[i] = padding[i] ? 0 : round_u8(invert ? 255 - y : y);
        }
        return;
    }
    double sign = invert ? -1 : 1, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (padding[i]) continue;
        double g = sign * grey[i];
        if (g < lo) lo = g;
        if (g > hi) hi = g;
    }
    double range = hi - lo;
    for (size_t i = 0; i < n; i++) {
        if (padding[i] || !(range > 0)) {
            out[i] = 0;     /* padding, or a flat image (the 16-bit rule gives 0) */
            continue;
        }
        out[i] = minmax_u8(sign, grey[i], lo, range);
    }
}

/* The same conversion, by table, for frames of up to 16 stored bits: such a frame holds at most
 * 65,536 distinct stored values, so each value's grey level, padding flag and output byte are
 * computed once, with the same expressions as grey_to_u8 applies per pixel (min and max do not
 * depend on the order they are taken in), and the bytes are identical. A 2000x2000 frame then
 * needs a 64 KB table instead of 45 MB of per-pixel doubles and flags, whose first touch (page
 * faults) and passes cost more than decoding in-process formats. */
#define TABLE_MAX_BITS 16

static uint32_t stored_index(const dicom_header *h, const uint8_t *pixels, size_t i, int shift,
                             uint32_t mask)
{
    uint32_t raw = h->bits_allocated == 8 ? pixels[i]
                                          : (uint32_t)pixels[2 * i] | (uint32_t)pixels[2 * i + 1] << 8;
    return (raw >> shift) & mask;
}

static int64_t signed_stored(const dicom_header *h, uint32_t v)
{
    if (h->pixel_representation == 1 && (v >> (h->bits_stored - 1)) & 1)
        return (int64_t)v - ((int64_t)1 << h->bits_stored);
    return (int64_t)v;
}

static bool table_applies(const dicom_header *h)
{
    return (h->bits_allocated == 8 || h->bits_allocated == 16) && h->bits_stored >= 1 &&
           h->bits_stored <= TABLE_MAX_BITS && h->bits_stored <= h->bits_allocated;
}

/* The output byte of every stored value present in the frame (seen[u] != 0); grey: count
 * scratch doubles. */
static void table_u8(const dicom_header *h, const uint8_t *seen, size_t count,
                     const voi_choice *v, bool invert, double *grey, uint8_t *out)
{
    const dicom_lut *lut = h->modality_lut.n ? &h->modality_lut : NULL;
    double sign = invert ? -1 : 1, lo = INFINITY, hi = -INFINITY;
    for (size_t u = 0; u < count; u++) {
        if (!seen[u]) continue;
        int64_t sv = signed_stored(h, (uint32_t)u);
        double g = lut ? lut_lookup(lut, sv) : (double)sv * h->rescale_slope + h->rescale_intercept;
        grey[u] = g;
        out[u] = 0;     /* padding */
        if (is_padding(h, sv)) continue;
        if (v->kind != VOI_MINMAX) {
            double y = voi_apply(v, g);
            out[u] = round_u8(invert ? 255 - y : y);
            continue;
        }
        if (sign * g < lo) lo = sign * g;
        if (sign * g > hi) hi = sign * g;
    }
    if (v->kind != VOI_MINMAX) return;
    double range = hi - lo;
    for (size_t u = 0; u < count; u++)
        if (seen[u] && !is_padding(h, signed_stored(h, (uint32_t)u)))
            out[u] = range > 0 ? minmax_u8(sign, grey[u], lo, range) : 0;
}

static raddino_status greyscale_by_table(const dicom_frame *f, const char *name,
                                         const voi_choice *v, bool invert, uint8_t *rgb)
{
    const dicom_header *h = &f->header;
    size_t n = (size_t)h->rows * (size_t)h->columns;
    if (f->size < n * (size_t)(h->bits_allocated / 8))
        return status_error(RADDINO_ERR_ARGUMENT, "%s: DICOM: not a greyscale frame", name);
    int shift = h->high_bit + 1 - h->bits_stored;
    uint32_t mask = ((uint32_t)1 << h->bits_stored) - 1;
    size_t count = (size_t)mask + 1;
    uint8_t *seen = calloc(count, 1), *u8 = malloc(count);
    double *grey = malloc(count * sizeof *grey);
    raddino_status st = status_ok();
    if (!seen || !u8 || !grey) {
        st = status_error(RADDINO_ERR_NOMEM, "%s: out of memory", name);
    } else {
        for (size_t i = 0; i < n; i++) seen[stored_index(h, f->pixels, i, shift, mask)] = 1;
        table_u8(h, seen, count, v, invert, grey, u8);
        for (size_t i = 0; i < n; i++) {
            uint8_t y = u8[stored_index(h, f->pixels, i, shift, mask)];
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = y;
        }
    }
    free(seen);
    free(u8);
    free(grey);
    return st;
}

static bool photometric_is(const dicom_header *h, const char *s)
{
    return strcmp(h->photometric, s) == 0;
}

raddino_status dicom_greyscale_to_rgb(const dicom_frame *f, const char *name,
                                      const raddino_load_options *opts, bool per_pixel,
                                      uint8_t *rgb)
{
    const dicom_header *h = &f->header;
    size_t n = (size_t)h->rows * (size_t)h->columns;
    voi_choice v = {VOI_MINMAX, 0, 0, NULL};
    if (opts->window == RADDINO_WINDOW_AUTO) {
        v = voi_from_file(h);
    } else if (opts->window == RADDINO_WINDOW_EXPLICIT) {
        v.kind = VOI_LINEAR;
        v.center = opts->window_center;
        v.width = opts->window_width;
    }
    bool invert = photometric_is(h, "MONOCHROME1") ||
                  (photometric_is(h, "MONOCHROME2") &&
                   strcmp(h->presentation_lut_shape, "INVERSE") == 0);
    if (table_applies(h) && !per_pixel) return greyscale_by_table(f, name, &v, invert, rgb);
    double *grey = malloc(n * sizeof *grey);
    uint8_t *padding = malloc(n);
    uint8_t *u8 = malloc(n);
    raddino_status st = status_ok();
    if (!grey || !padding || !u8)
        st = status_error(RADDINO_ERR_NOMEM, "%s: out of memory", name);
    if (!st.code) st = dicom_grey_values(f, name, grey, padding);
    if (!st.code) {
        grey_to_u8(grey, padding, n, &v, invert, u8);
        for (size_t i = 0; i < n; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = u8[i];
    }
    free(grey);
    free(padding);
    free(u8);
    return st;
}

/* ---- colour ------------------------------------------------------------------------------- */

/* PS3.3 C.7.6.3.1.2, the YBR_FULL equations inverted. */
static void ybr_to_rgb(int y, int cb, int cr, uint8_t *rgb)
{
    rgb[0] = round_u8(y + 1.402 * (cr - 128));
    rgb[1] = round_u8(y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128));
    rgb[2] = round_u8(y + 1.772 * (cb - 128));
}

static raddino_status colour_to_rgb(const dicom_frame *f, const char *name, uint8_t *rgb)
{
    const dicom_header *h = &f->header;
    size_t n = (size_t)h->rows * (size_t)h->columns;
    bool ybr = photometric_is(h, "YBR_FULL") || photometric_is(h, "YBR_FULL_422");
    bool rgb_like = photometric_is(h, "RGB") || photometric_is(h, "YBR_ICT") ||
                    photometric_is(h, "YBR_RCT");
    if (!ybr && !rgb_like)
        return status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: photometric interpretation "
                            "'%s' not supported", name, h->photometric);
    if (h->subsampled_422) {    /* Y0 Y1 Cb Cr for each pair of pixels, 8-bit only */
        if (h->bits_allocated != 8 || !photometric_is(h, "YBR_FULL_422"))
            return status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: subsampled %d-bit %s not "
                                "supported", name, h->bits_allocated, h->photometric);
        for (size_t p = 0; p < n / 2; p++) {
            const uint8_t *s = f->pixels + 4 * p;
            ybr_to_rgb(s[0], s[2], s[3], rgb + 6 * p);
            ybr_to_rgb(s[1], s[2], s[3], rgb + 6 * p + 3);
        }
        return status_ok();
    }
    if (ybr && h->bits_allocated != 8)
        return status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: %d-bit %s not supported", name,
                            h->bits_allocated, h->photometric);
    /* Sample c of pixel i: interleaved (planar 0) or one plane per colour (planar 1). */
    bool planar = h->planar_configuration == 1;
    size_t n_samples = 3 * n;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    if (h->bits_allocated > 8) {    /* one min-max over R, G and B together */
        for (size_t i = 0; i < n_samples; i++) {
            int64_t v = stored_value(h, f->pixels, i);
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int s[3];
        for (int c = 0; c < 3; c++) {
            size_t at = planar ? (size_t)c * n + i : 3 * i + (size_t)c;
            int64_t v = stored_value(h, f->pixels, at);
            if (h->bits_allocated > 8)
                v = hi > lo ? (int64_t)floor((double)(v - lo) * 255.0 / (double)(hi - lo) + 0.5)
                            : 0;
            s[c] = (int)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        if (ybr) {
            ybr_to_rgb(s[0], s[1], s[2], rgb + 3 * i);
        } else {
            rgb[3 * i] = (uint8_t)s[0];
            rgb[3 * i + 1] = (uint8_t)s[1];
            rgb[3 * i + 2] = (uint8_t)s[2];
        }
    }
    return status_ok();
}

/* ---- public ------------------------------------------------------------------------------- */

static raddino_status check_options(const raddino_load_options *o, const char *name)
{
    if (o->window < RADDINO_WINDOW_MINMAX || o->window > RADDINO_WINDOW_EXPLICIT)
        return status_error(RADDINO_ERR_ARGUMENT, "%s: unknown window mode %d", name, o->window);
    if (o->window == RADDINO_WINDOW_EXPLICIT &&
        !(o->window_width >= 1 && isfinite(o->window_width) && isfinite(o->window_center)))
        return status_error(RADDINO_ERR_ARGUMENT, "%s: window width must be at least 1", name);
    if (o->frame < 0)
        return status_error(RADDINO_ERR_ARGUMENT, "%s: frame must be 1 or more (0: default)",
                            name);
    return status_ok();
}

raddino_status dicom_load(const uint8_t *data, size_t size, const char *name,
                          const raddino_load_options *opts, raddino_image *out)
{
    raddino_load_options none;
    memset(&none, 0, sizeof none);
    if (!opts) opts = &none;
    raddino_status st = check_options(opts, name);
    if (st.code) return st;
    dicom_frame f;
    st = dicom_decode_frame(data, size, name, opts->max_pixels, opts->frame - 1, &f);
    if (st.code) return st;
    const dicom_header *h = &f.header;
    size_t n = (size_t)h->rows * (size_t)h->columns;
    uint8_t *rgb = malloc(n * 3);
    if (!rgb) {
        st = status_error(RADDINO_ERR_NOMEM, "%s: out of memory for %dx%d pixels", name,
                          h->columns, h->rows);
    } else if (h->samples_per_pixel == 1) {
        if (h->photometric[0] && !photometric_is(h, "MONOCHROME1") &&
            !photometric_is(h, "MONOCHROME2"))
            st = status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: photometric interpretation "
                              "'%s' not supported", name, h->photometric);
        else
            st = dicom_greyscale_to_rgb(&f, name, opts, false, rgb);
    } else {
        st = colour_to_rgb(&f, name, rgb);
    }
    if (st.code) {
        free(rgb);
    } else {
        out->width = h->columns;
        out->height = h->rows;
        out->rgb = rgb;
        out->source_bits = h->bits_stored;
        out->source_channels = h->samples_per_pixel;
        out->format = "dicom";
    }
    dicom_frame_free(&f);
    return st;
}

/* ---- metadata ----------------------------------------------------------------------------- */

/* Hex SHA-256 of salt, 0x00, id (spaces trimmed). */
static bool patient_key(const char *salt, const char *id, char hex[65])
{
    while (*id == ' ') id++;
    size_t len = strlen(id);
    while (len && id[len - 1] == ' ') len--;
    unsigned char digest[32];
    unsigned int digest_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
              EVP_DigestUpdate(ctx, salt, strlen(salt) + 1) &&  /* the salt and its NUL */
              EVP_DigestUpdate(ctx, id, len) && EVP_DigestFinal_ex(ctx, digest, &digest_len) &&
              digest_len == 32;
    EVP_MD_CTX_free(ctx);
    if (!ok) return false;
    for (int i = 0; i < 32; i++) {
        static const char digits[] = "0123456789abcdef";
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = 0;
    return true;
}

raddino_status raddino_dicom_read_info_memory(const void *data, size_t size, const char *name,
                                              const char *salt, raddino_dicom_info *out)
{
    if (!name) name = "<memory>";
    if (!out) return status_error(RADDINO_ERR_ARGUMENT, "%s: no output", name);
    memset(out, 0, sizeof *out);
    if (!data && size) return status_error(RADDINO_ERR_ARGUMENT, "%s: no data", name);
    if (salt && !*salt)
        return status_error(RADDINO_ERR_ARGUMENT, "%s: empty salt: the patient key needs one",
                            name);
    if (!dicom_sniff(data, size))
        return status_error(RADDINO_ERR_FORMAT, "%s: not a DICOM file (no DICM marker at byte "
                            "128)", name);
    dicom_header h;
    raddino_status st = dicom_read_header(data, size, name, &h);
    if (st.code) return st;
    *out = h.info;
    if (salt && h.patient_id[0] && !patient_key(salt, h.patient_id, out->patient_key))
        st = status_error(RADDINO_ERR_NOMEM, "%s: cannot hash the patient key", name);
    dicom_header_free(&h);
    return st;
}

raddino_status raddino_dicom_read_info(const char *path, const char *salt,
                                       raddino_dicom_info *out)
{
    if (!out) return status_error(RADDINO_ERR_ARGUMENT, "dicom: no output");
    memset(out, 0, sizeof *out);
    if (!path) return status_error(RADDINO_ERR_ARGUMENT, "dicom: no path");
    uint8_t *data;
    size_t size;
    raddino_status st = image_read_file(path, &data, &size);
    if (st.code) return st;
    st = raddino_dicom_read_info_memory(data, size, path, salt, out);
    free(data);
    return st;
}
