#!/usr/bin/python3
"""Writes the BMP, PNM and TGA decoding fixtures of tests/data/formats/ and their references.

Every file is built here byte by byte (Pillow cannot write most of these variants: RLE BMP,
OS/2 headers, short palettes, right-to-left TGA...); Debian's Pillow (python3-pil 9.4) is only
the judge. For each case cases.tsv holds one line:

    NAME  FILE  ok  WIDTH  HEIGHT          NAME.rgb = the reference pixels, W*H*3 bytes
    NAME  FILE  refused  PILLOW'S MESSAGE  raddino must refuse it too (a status, one line)

The reference is Image.open(FILE) then convert("RGB"), except for Pillow's 32-bit grey mode "I"
(PGM with maxval > 255) and for PPM with maxval > 255, which get raddino's rule for images
with more than 8 bits (spec: min-max to 0..255 on the samples as Pillow scales them to 16 bits,
round(v / maxval * 65535); jointly over R, G, B for colour, as for 16-bit PNG).

Run once with Debian's python3 (/usr/bin/python3, python3-pil + python3-numpy); the outputs are
committed and the test suite (tests/test_image.c, formats_match_pillow) needs no Python.
"""
import io
import math
import os
import struct
import sys

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "formats")
cases = []


def rng(seed):
    x = seed & 0xFFFFFFFF
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        yield x >> 16


def rand_bytes(n, seed, mod=256):
    g = rng(seed)
    return bytes(next(g) % mod for _ in range(n))


def rule16(values, maxval):
    """raddino's rule for more than 8 bits: samples as Pillow scales them to 16 bits, then
    min-max over all colour samples to 0..255 (round half up, double precision)."""
    v = np.asarray(values, dtype=np.float64)
    if maxval != 65535:
        v = np.minimum(65535, np.round(v / maxval * 65535))   # numpy round: half to even, as Python
    mn, mx = v.min(), v.max()
    if mx == mn:
        return np.zeros(v.shape, np.uint8)
    return np.floor((v - mn) * 255.0 / (mx - mn) + 0.5).astype(np.uint8)


def reference(path, data):
    """Pillow's verdict: ('ok', w, h, rgb bytes) or ('refused', message)."""
    try:
        im = Image.open(path)
        im.load()
        if im.mode == "I":
            a = np.asarray(im).astype(np.int64)
            maxval = 65535
            rgb = np.repeat(rule16(a, maxval)[..., None], 3, axis=2)
        else:
            rgb = np.asarray(im.convert("RGB"))
        # The same bytes through memory (no mmap path) must agree, or the case is not sound.
        im2 = Image.open(io.BytesIO(data))
        im2.load()
        rgb2 = np.repeat(rule16(np.asarray(im2).astype(np.int64), 65535)[..., None], 3, 2) \
            if im2.mode == "I" else np.asarray(im2.convert("RGB"))
        if not np.array_equal(rgb, rgb2):
            return ("unsound", "file and memory decodes differ")
        return ("ok", im.size[0], im.size[1], rgb.astype(np.uint8).tobytes())
    except Exception as e:    # noqa: BLE001 (any refusal by Pillow is a refusal)
        msg = (str(e) or type(e).__name__).replace("\t", " ").replace("\n", " ")
        return ("refused", f"{type(e).__name__}: {msg}"[:150])


def add(name, ext, data, expect=None, override=None):
    """Writes NAME.ext; expect ('ok'/'refused') documents the intended outcome and is checked
    so a case cannot silently test something else. override: a reference computed here (for
    PPM with maxval > 255, where raddino's 16-bit rule replaces Pillow's 8-bit result)."""
    fname = f"{name}.{ext}"
    path = os.path.join(OUT, fname)
    with open(path, "wb") as f:
        f.write(data)
    ref = reference(path, data)
    if override is not None and ref[0] == "ok":
        w, h = ref[1], ref[2]
        ref = ("ok", w, h, override)
    if ref[0] == "unsound":
        sys.exit(f"{name}: {ref[1]}")
    if expect and ref[0] != expect:
        sys.exit(f"{name}: expected {expect}, Pillow says {ref}")
    if ref[0] == "ok":
        with open(os.path.join(OUT, name + ".rgb"), "wb") as f:
            f.write(ref[3])
        cases.append(f"{name}\t{fname}\tok\t{ref[1]}\t{ref[2]}")
    else:
        cases.append(f"{name}\t{fname}\trefused\t{ref[1]}")


# ---- BMP ---------------------------------------------------------------------------------

def bmp(hs, w, h, bits, comp=0, pal=b"", pix=b"", colors=0, masks=None, off=None,
        extra_masks=None, planes=1):
    """A BMP file: 14-byte file header, info header of hs bytes, bitfield masks after a
    40-byte header (extra_masks), palette, pixels at off (default: right after the palette)."""
    if hs == 12:
        hdr = struct.pack("<IHHHH", 12, w, h, planes, bits)
    else:
        hdr = struct.pack("<IiiHHIIiiII", hs, w, h, planes, bits, comp, len(pix), 2835, 2835,
                          colors, 0)
        if hs >= 56 and masks:
            hdr += struct.pack("<IIII", *masks)
        elif hs >= 52 and masks:
            hdr += struct.pack("<III", *masks[:3])
        hdr += b"\0" * (hs - len(hdr))
    body = hdr + (struct.pack("<III", *extra_masks) if extra_masks else b"") + pal
    o = 14 + len(body) if off is None else off
    body += b"\0" * max(0, o - 14 - len(body))
    return b"BM" + struct.pack("<IHHI", 14 + len(body) + len(pix), 0, 0, o) + body + pix


def rows(w, h, bits, seed, mod=None):
    """h rows of w samples of `bits` bits, each padded to 4 bytes (BMP stride)."""
    stride = ((w * bits + 31) >> 3) & ~3
    g = rng(seed)
    out = bytearray()
    for _ in range(h):
        vals = [next(g) % (mod or (1 << bits)) for _ in range(w)] if bits < 16 else None
        if bits in (1, 4):
            acc = 0
            row = bytearray()
            for i, v in enumerate(vals):
                acc = acc << bits | v
                if (i + 1) * bits % 8 == 0:
                    row.append(acc & 0xFF)
                    acc = 0
            if w * bits % 8:
                row.append((acc << (8 - w * bits % 8)) & 0xFF)
        elif bits == 8:
            row = bytearray(vals)
        else:
            row = bytearray(next(g) & 0xFF for _ in range(w * bits // 8))
        out += row + b"\0" * (stride - len(row))
    return bytes(out)


def bgrx(entries):
    return b"".join(bytes([b, g, r, 0]) for r, g, b in entries)


def bgr(entries):
    return b"".join(bytes([b, g, r]) for r, g, b in entries)


def colours(n, seed):
    g = rng(seed)
    return [(next(g) & 255, next(g) & 255, next(g) & 255) for _ in range(n)]


def make_bmp():
    # Palette images, every header version
    add("bmp_info40_pal8", "bmp", bmp(40, 13, 7, 8, pal=bgrx(colours(256, 1)),
                                      pix=rows(13, 7, 8, 2)), "ok")
    add("bmp_info40_pal8_short_palette", "bmp",   # 3 colours, indices up to 255
        bmp(40, 17, 9, 8, pal=bgrx(colours(3, 3)), colors=3, pix=rows(17, 9, 8, 4)), "ok")
    add("bmp_info40_pal8_grey_ramp", "bmp",       # a grey ramp palette: Pillow reads it as L
        bmp(40, 9, 5, 8, pal=bgrx([(i, i, i) for i in range(256)]), pix=rows(9, 5, 8, 5)), "ok")
    add("bmp_info40_pal4", "bmp", bmp(40, 11, 6, 4, pal=bgrx(colours(16, 6)),
                                      pix=rows(11, 6, 4, 7)), "ok")
    add("bmp_info40_pal4_short_palette", "bmp",
        bmp(40, 11, 6, 4, pal=bgrx(colours(5, 8)), colors=5, pix=rows(11, 6, 4, 9)), "ok")
    add("bmp_info40_pal1_colour", "bmp", bmp(40, 21, 5, 1, pal=bgrx(colours(2, 10)),
                                             pix=rows(21, 5, 1, 11)), "ok")
    add("bmp_info40_pal1_black_white", "bmp",     # Pillow's mode "1"
        bmp(40, 21, 5, 1, pal=bgrx([(0, 0, 0), (255, 255, 255)]), pix=rows(21, 5, 1, 12)), "ok")
    add("bmp_info40_pal1_one_colour", "bmp",      # colours=1: index 1 is past the palette
        bmp(40, 19, 3, 1, pal=bgrx([(200, 10, 10)]), colors=1, pix=rows(19, 3, 1, 13)), "ok")
    add("bmp_core12_pal8", "bmp", bmp(12, 10, 4, 8, pal=bgr(colours(256, 14)),
                                      pix=rows(10, 4, 8, 15)), "ok")
    add("bmp_core12_pal4", "bmp", bmp(12, 7, 4, 4, pal=bgr(colours(16, 16)),
                                      pix=rows(7, 4, 4, 17)), "ok")
    add("bmp_core12_pal1", "bmp", bmp(12, 30, 3, 1, pal=bgr(colours(2, 18)),
                                      pix=rows(30, 3, 1, 19)), "ok")
    # OS/2 1.x has no colour count: Pillow reads 3 * 256 bytes as the palette whatever follows
    # (here 16 real entries, then the pixels, then the end of the file).
    add("bmp_core12_pal8_short_palette", "bmp",
        bmp(12, 8, 6, 8, pal=bgr(colours(16, 20)), pix=rows(8, 6, 8, 21, mod=40)), "ok")
    add("bmp_core12_rgb24", "bmp", bmp(12, 5, 3, 24, pix=rows(5, 3, 24, 22)), "ok")
    add("bmp_os2v2_64_pal8", "bmp", bmp(64, 6, 5, 8, pal=bgrx(colours(256, 23)),
                                        pix=rows(6, 5, 8, 24)), "ok")
    add("bmp_v4_pal8_short_palette", "bmp",
        bmp(108, 7, 5, 8, pal=bgrx(colours(20, 25)), colors=20, pix=rows(7, 5, 8, 26)), "ok")
    add("bmp_v5_pal4", "bmp", bmp(124, 9, 4, 4, pal=bgrx(colours(16, 27)),
                                  pix=rows(9, 4, 4, 28)), "ok")
    add("bmp_v5_pal8", "bmp", bmp(124, 5, 5, 8, pal=bgrx(colours(256, 29)),
                                  pix=rows(5, 5, 8, 30)), "ok")
    add("bmp_v2_52", "bmp", bmp(52, 4, 4, 24, pix=rows(4, 4, 24, 31)), "refused")
    add("bmp_v3_56", "bmp", bmp(56, 4, 4, 24, pix=rows(4, 4, 24, 32)), "refused")
    # Truecolour
    add("bmp_info40_rgb24", "bmp", bmp(40, 7, 3, 24, pix=rows(7, 3, 24, 33)), "ok")
    add("bmp_info40_rgb32", "bmp", bmp(40, 5, 3, 32, pix=rows(5, 3, 32, 34)), "ok")
    add("bmp_info40_rgb16_555", "bmp", bmp(40, 64, 64, 16, pix=rows(64, 64, 16, 35)), "ok")
    add("bmp_info40_bitfields_565", "bmp", bmp(40, 64, 64, 16, comp=3,
        extra_masks=(0xF800, 0x7E0, 0x1F), pix=rows(64, 64, 16, 36)), "ok")
    add("bmp_info40_bitfields_555", "bmp", bmp(40, 33, 7, 16, comp=3,
        extra_masks=(0x7C00, 0x3E0, 0x1F), pix=rows(33, 7, 16, 37)), "ok")
    add("bmp_v4_bitfields_565", "bmp", bmp(108, 31, 9, 16, comp=3,
        masks=(0xF800, 0x7E0, 0x1F, 0), pix=rows(31, 9, 16, 38)), "ok")
    add("bmp_v5_bitfields_bgra", "bmp", bmp(124, 6, 4, 32, comp=3,
        masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000), pix=rows(6, 4, 32, 39)), "ok")
    add("bmp_v5_bitfields_rgba", "bmp", bmp(124, 6, 4, 32, comp=3,
        masks=(0xFF, 0xFF00, 0xFF0000, 0xFF000000), pix=rows(6, 4, 32, 40)), "ok")
    add("bmp_v4_bitfields_xbgr", "bmp", bmp(108, 6, 4, 32, comp=3,
        masks=(0xFF000000, 0xFF0000, 0xFF00, 0), pix=rows(6, 4, 32, 41)), "ok")
    add("bmp_v4_bitfields_abgr", "bmp", bmp(108, 6, 4, 32, comp=3,
        masks=(0xFF000000, 0xFF0000, 0xFF00, 0xFF), pix=rows(6, 4, 32, 42)), "ok")
    add("bmp_info40_bitfields_24", "bmp", bmp(40, 5, 4, 24, comp=3,
        extra_masks=(0xFF0000, 0xFF00, 0xFF), pix=rows(5, 4, 24, 43)), "ok")
    add("bmp_info40_bitfields_odd", "bmp", bmp(40, 5, 4, 16, comp=3,
        extra_masks=(0xF000, 0xF00, 0xF0), pix=rows(5, 4, 16, 44)), "refused")
    add("bmp_v4_rgb16_raw_ignores_masks", "bmp", bmp(108, 9, 3, 16,
        masks=(0xF800, 0x7E0, 0x1F, 0), pix=rows(9, 3, 16, 45)), "ok")
    # Top-down (negative height)
    add("bmp_info40_pal8_topdown", "bmp", bmp(40, 6, -5, 8, pal=bgrx(colours(256, 46)),
                                              pix=rows(6, 5, 8, 47)), "ok")
    add("bmp_info40_rgb24_topdown", "bmp", bmp(40, 7, -4, 24, pix=rows(7, 4, 24, 48)), "ok")
    add("bmp_v5_rgb32_topdown", "bmp", bmp(124, 3, -3, 32, pix=rows(3, 3, 32, 49)), "ok")
    # RLE
    w, h = 12, 7
    rle8 = bytearray()
    rle8 += bytes([4, 7, 3, 9, 0, 5, 1, 2, 3, 4, 5, 0])     # run 4x7, run 3x9, absolute 5 (+pad)
    rle8 += bytes([0, 0])                                   # end of line at the row end: no-op
    rle8 += bytes([5, 200, 20, 77, 0, 0])                   # a run past the row end is clipped
    rle8 += bytes([0, 2, 9, 9, 3, 0])                       # delta: Pillow 9.4 reads 4 bytes
    rle8 += bytes([2, 250, 0, 0])                           # run, end of line (zero padded)
    rle8 += bytes([0, 4, 10, 11, 12, 13, 0, 0])             # absolute 4 (even), end of line
    rle8 += bytes([0, 3, 1, 2, 3, 0, 0, 2, 0, 0, 1, 1])     # absolute 3 (+pad), delta 1 row down
    rle8 += bytes([7, 99, 0, 0, 12, 42, 0, 0, 0, 1])        # run, end of line, a row, EOL, EOB
    pal = bgrx(colours(256, 50))
    add("bmp_rle8", "bmp", bmp(40, w, h, 8, comp=1, pal=pal, pix=bytes(rle8)), None)
    add("bmp_rle8_topdown", "bmp", bmp(40, w, -h, 8, comp=1, pal=pal, pix=bytes(rle8)), None)
    add("bmp_rle8_short_palette", "bmp",
        bmp(40, w, h, 8, comp=1, pal=bgrx(colours(4, 51)), colors=4, pix=bytes(rle8)), None)
    early = bytes([4, 7, 0, 0, 0, 1])                       # end of bitmap after one row
    add("bmp_rle8_early_end", "bmp", bmp(40, 4, 3, 8, comp=1, pal=pal, pix=early), None)
    rle4 = bytearray()
    rle4 += bytes([5, 0x12, 0, 3, 0x34, 0x50, 0, 0])        # run 5 of 1,2,1,2,1; absolute 3
    rle4 += bytes([9, 0xAB, 0, 0])
    rle4 += bytes([0, 6, 0x12, 0x34, 0x56, 0, 0, 0])        # absolute 6, EOL
    rle4 += bytes([3, 0xF0, 0, 0, 0, 1])
    pal16 = bgrx(colours(16, 52))
    add("bmp_rle4", "bmp", bmp(40, 9, 4, 4, comp=2, pal=pal16, pix=bytes(rle4)), None)
    add("bmp_rle4_topdown", "bmp", bmp(40, 9, -4, 4, comp=2, pal=pal16, pix=bytes(rle4)), None)
    add("bmp_rle8_truncated", "bmp", bmp(40, w, h, 8, comp=1, pal=pal, pix=bytes(rle8[:9])),
        "refused")
    # Refusals
    add("bmp_bits2", "bmp", bmp(40, 8, 2, 2, pal=bgrx(colours(4, 53)), pix=rows(8, 2, 4, 54)),
        "refused")
    add("bmp_jpeg_compression", "bmp", bmp(40, 4, 4, 24, comp=4, pix=rows(4, 4, 24, 55)),
        "refused")
    add("bmp_alphabitfields", "bmp", bmp(56, 4, 4, 32, comp=6,
        masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000), pix=rows(4, 4, 32, 56)), "refused")
    full = bmp(40, 20, 10, 24, pix=rows(20, 10, 24, 57))
    add("bmp_rgb24_truncated", "bmp", full[:len(full) - 70], "refused")
    full = bmp(40, 20, 10, 8, pal=bgrx(colours(256, 58)), pix=rows(20, 10, 8, 59))
    add("bmp_pal8_truncated", "bmp", full[:len(full) - 30], "refused")
    add("bmp_palette_too_large", "bmp", bmp(40, 4, 4, 8, pal=bgrx(colours(300, 60)),
                                            colors=300, pix=rows(4, 4, 8, 61)), "refused")
    short = bmp(40, 4, 4, 8, pal=bgrx(colours(300, 62)), colors=300, pix=b"", off=94)
    add("bmp_palette_300_file_short", "bmp", short[:14 + 40 + 4 * 200], "ok")


# ---- PNM ---------------------------------------------------------------------------------

def be16(vals):
    return b"".join(struct.pack(">H", v) for v in vals)


def make_pnm():
    g = rng(100)
    v8 = [next(g) & 255 for _ in range(7 * 5 * 3)]
    add("pnm_p5_8bit", "pgm", b"P5\n7 5\n255\n" + bytes(v8[:35]), "ok")
    add("pnm_p6_8bit", "ppm", b"P6 7 5 255\n" + bytes(v8), "ok")
    g = rng(101)
    v16 = [next(g) * 7 % 65536 for _ in range(9 * 4)]
    add("pnm_p5_16bit", "pgm", b"P5\n9 4\n65535\n" + be16(v16), "ok")
    v12 = [x % 4096 for x in v16]
    add("pnm_p5_maxval4095", "pgm", b"P5\n9 4\n4095\n" + be16(v12), "ok")
    v100 = [x % 130 for x in v8[:35]]                                  # some above maxval
    add("pnm_p5_maxval100", "pgm", b"P5 7 5 100\n" + bytes(v100), "ok")
    add("pnm_p6_maxval15", "ppm", b"P6 7 5 15\n" + bytes(x % 16 for x in v8), "ok")
    g = rng(102)
    v = [next(g) % 1001 for _ in range(4 * 3 * 3)]
    add("pnm_p6_maxval1000", "ppm", b"P6 4 3 1000\n" + be16(v), "ok",
        override=rule16(v, 1000).tobytes())
    g = rng(103)
    v = [next(g) for _ in range(4 * 3 * 3)]
    add("pnm_p6_16bit", "ppm", b"P6 4 3 65535\n" + be16(v), "ok",
        override=rule16(v, 65535).tobytes())
    add("pnm_comments", "pgm", b"P5 # magic\n#x\n 3#in\n 2 #c\r255\nabcdef", "ok")
    add("pnm_p1", "pbm", b"P1\n# plain bitmap\n5 3\n1 0 1 0 1\n00110\n1 1 1 0 0\n", "ok")
    add("pnm_p4", "pbm", b"P4\n10 3\n" + bytes([0xA5, 0xC0, 0x0F, 0x40, 0xFF, 0xFF]), "ok")
    add("pnm_p2", "pgm", b"P2\n4 2\n15\n0 1 2 3\n# c\n4 15 7 8\n", "ok")
    add("pnm_p2_16bit", "pgm", b"P2\n3 2\n1000\n0 1 500\n999 1000 3\n", "ok")
    add("pnm_p3", "ppm", b"P3\n2 2\n255\n255 0 0  0 255 0\n0 0 255  10 20 30\n", "ok")
    add("pnm_p5_truncated", "pgm", b"P5 4 4 255\n" + bytes(15), "refused")
    add("pnm_p5_16bit_truncated", "pgm", b"P5 4 4 65535\n" + bytes(31), "refused")
    add("pnm_p6_truncated", "ppm", b"P6 4 4 255\n" + bytes(47), "refused")
    add("pnm_p2_truncated", "pgm", b"P2 3 3 255\n1 2 3 4 5\n", "refused")
    add("pnm_p2_over_maxval", "pgm", b"P2 2 1 10\n3 11\n", "refused")
    add("pnm_p1_bad_token", "pbm", b"P1 2 2\n0 1 2 0\n", "refused")
    add("pnm_maxval0", "pgm", b"P5 2 2 0\n\0\0\0\0", "refused")
    add("pnm_maxval65536", "pgm", b"P5 2 1 65536\n\0\0\0\0", "refused")
    add("pnm_p7_pam", "pam", b"P7\nWIDTH 2\nHEIGHT 1\nDEPTH 1\nMAXVAL 255\nTUPLTYPE GRAYSCALE\n"
        b"ENDHDR\n\1\2", "refused")


# ---- TGA ---------------------------------------------------------------------------------

def tga(kind, w, h, depth, desc=0, data=b"", cmap=None, cmap_start=0, cmap_depth=24,
        ident=b""):
    cm_type = 1 if cmap is not None else 0
    cm_len = len(cmap) // max(1, (cmap_depth + 7) // 8) if cmap is not None else 0
    hdr = struct.pack("<BBBHHBHHHHBB", len(ident), cm_type, kind, cmap_start, cm_len,
                      cmap_depth if cmap is not None else 0, 0, 0, w, h, depth, desc)
    return hdr + ident + (cmap or b"") + data


def tga_rle(pixels, bpp, w):
    """RLE packets per row: runs of equal pixels, literals otherwise (never across rows)."""
    out = bytearray()
    for y in range(len(pixels) // (w * bpp)):
        row = [pixels[(y * w + x) * bpp:(y * w + x + 1) * bpp] for x in range(w)]
        x = 0
        while x < w:
            n = 1
            while x + n < w and n < 128 and row[x + n] == row[x]:
                n += 1
            if n > 1:
                out += bytes([0x80 | (n - 1)]) + row[x]
                x += n
            else:
                n = 1
                while x + n < w and n < 128 and row[x + n] != row[x + n - 1]:
                    n += 1
                out += bytes([n - 1]) + b"".join(row[x:x + n])
                x += n
    return bytes(out)


def runny(n, bpp, seed):
    """Pixels with repeats, so that RLE has runs and literals."""
    g = rng(seed)
    out = bytearray()
    cur = bytes(next(g) & 255 for _ in range(bpp))
    for _ in range(n):
        if next(g) % 3 == 0:
            cur = bytes(next(g) & 255 for _ in range(bpp))
        out += cur
    return bytes(out)


def make_tga():
    w, h = 9, 5
    p24 = runny(w * h, 3, 200)
    for desc, tag in ((0x00, "bottomup"), (0x20, "topdown"), (0x10, "bottomup_rtl"),
                      (0x30, "topdown_rtl")):
        add(f"tga_rgb24_{tag}", "tga", tga(2, w, h, 24, desc, p24), "ok")
        add(f"tga_rle24_{tag}", "tga", tga(10, w, h, 24, desc, tga_rle(p24, 3, w)), "ok")
    p32 = runny(w * h, 4, 201)
    add("tga_rgb32_topdown", "tga", tga(2, w, h, 32, 0x28, p32), "ok")
    add("tga_rle32_rtl", "tga", tga(10, w, h, 32, 0x18, tga_rle(p32, 4, w)), "ok")
    p16 = runny(w * h, 2, 202)
    add("tga_rgb16", "tga", tga(2, w, h, 16, 0x20, p16), "ok")
    add("tga_rle16", "tga", tga(10, w, h, 16, 0x00, tga_rle(p16, 2, w)), "ok")
    add("tga_rgb15_depth", "tga", tga(2, w, h, 15, 0x20, p16), "refused")
    p8 = runny(w * h, 1, 203)
    add("tga_grey8", "tga", tga(3, w, h, 8, 0x00, p8, ident=b"an id field"), "ok")
    add("tga_rle_grey8_rtl", "tga", tga(11, w, h, 8, 0x10, tga_rle(p8, 1, w)), "ok")
    add("tga_grey16_la", "tga", tga(3, w, h, 16, 0x20, p16), "ok")
    add("tga_grey1", "tga", tga(3, 16, 3, 1, 0x20, rand_bytes(6, 204)), "ok")
    cmap24 = bgr(colours(10, 205))
    idx = bytes(x % 14 for x in p8)                          # indices 10..13 past the map
    add("tga_cmap8_map24", "tga", tga(1, w, h, 8, 0x00, idx, cmap=cmap24), "ok")
    add("tga_rle_cmap8_map24_rtl", "tga", tga(9, w, h, 8, 0x30, tga_rle(idx, 1, w), cmap=cmap24),
        "ok")
    add("tga_cmap8_map24_start", "tga", tga(1, w, h, 8, 0x20, idx, cmap=cmap24, cmap_start=3),
        "ok")
    cmap16 = rand_bytes(2 * 16, 206)
    add("tga_cmap8_map16", "tga", tga(1, w, h, 8, 0x20, bytes(x % 16 for x in p8), cmap=cmap16,
                                      cmap_depth=16), "ok")
    cmap32 = rand_bytes(4 * 16, 207)
    add("tga_cmap8_map32", "tga", tga(1, w, h, 8, 0x20, bytes(x % 16 for x in p8), cmap=cmap32,
                                      cmap_depth=32), "refused")
    add("tga_rgb24_with_cmap", "tga", tga(2, w, h, 24, 0x20, p24, cmap=cmap24), "refused")
    # A literal packet that runs into the next rows (Pillow carries it over), one that runs
    # past the last row (the rest is ignored), a run that crosses a row (Pillow refuses).
    lit = bytes([0x80 | 1, 9, 9, 9]) + bytes([4]) + rand_bytes(15, 208) + bytes([0x80, 1, 2, 3])
    add("tga_rle_literal_across_rows", "tga", tga(10, 4, 2, 24, 0x20, lit), "ok")
    lit = bytes([0x80, 7, 7, 7]) + bytes([4]) + rand_bytes(15, 209)
    add("tga_rle_literal_over_rows", "tga", tga(10, 2, 3, 24, 0x00, lit), "ok")
    lit = bytes([0x80, 7, 7, 7]) + bytes([7]) + rand_bytes(24, 210)
    add("tga_rle_literal_past_end", "tga", tga(10, 3, 2, 24, 0x10, lit), "ok")
    run = bytes([0x80 | 5, 1, 2, 3, 0x80 | 1, 4, 5, 6])
    add("tga_rle_run_across_rows", "tga", tga(10, 4, 2, 24, 0x20, run), "refused")
    # Colour-mapped without a map Pillow reads: the default palette; a 15-bit map is not
    # skipped (its bytes are read as pixels).
    add("tga_cmap8_no_map", "tga", tga(1, w, h, 8, 0x20, idx), "ok")
    add("tga_cmap8_map15", "tga", tga(1, w, h, 8, 0x20, idx, cmap=rand_bytes(20, 211),
                                      cmap_depth=15), "ok")
    add("tga_grey8_id10_pcx", "tga", tga(3, w, h, 8, 0x00, p8, ident=b"0123456789"), "refused")
    add("tga_grey8_id10", "tga", tga(3, w, h, 8, 0x00, p8[:40], ident=b"0123456789")[:60],
        "refused")     # too short for PCX: read as TGA, then refused as truncated
    add("tga_rgb24_truncated", "tga", tga(2, w, h, 24, 0x20, p24[:-5]), "refused")
    add("tga_rle24_truncated", "tga", tga(10, w, h, 24, 0x20, tga_rle(p24, 3, w)[:-4]),
        "refused")
    add("tga_rgb8_unsupported", "tga", tga(2, w, h, 8, 0x20, p8), "refused")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f != "README.md":
            os.remove(os.path.join(OUT, f))
    make_bmp()
    make_pnm()
    make_tga()
    with open(os.path.join(OUT, "cases.tsv"), "w") as f:
        f.write("# name\tfile\tok\twidth\theight | name\tfile\trefused\tPillow's message "
                "(tests/tools/make_image_fixtures.py)\n")
        f.write("\n".join(cases) + "\n")
    print(f"{len(cases)} cases written to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
