#!/usr/bin/python3
"""Writes the PNG decoding fixtures in this folder and, for each, NAME.rgb: the bytes of Pillow's
Image.open(NAME).convert("RGB") (the reference the decoder must equal). The PNGs are built here
byte by byte (Pillow cannot write interlaced or 2/4-bit grey files); Pillow is only the judge.
Run once with Debian's python3-pil; the outputs are committed."""
import os
import struct
import zlib

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]          # (x0, y0, dx, dy) of each pass


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def pack_row(values, bits):
    """Samples -> bytes, most significant bits first (PNG order)."""
    if bits == 8:
        return bytes(values)
    out, acc, used = bytearray(), 0, 0
    for v in values:
        acc = acc << bits | v
        used += bits
        if used == 8:
            out.append(acc)
            acc, used = 0, 0
    if used:
        out.append(acc << (8 - used))
    return bytes(out)


def raw_data(pixels, width, height, bits, samples, interlaced):
    """Filter type 0 rows, per pass when interlaced; pixels[y][x] is a tuple of samples."""
    passes = ADAM7 if interlaced else [(0, 0, 1, 1)]
    out = bytearray()
    for x0, y0, dx, dy in passes:
        xs, ys = range(x0, width, dx), range(y0, height, dy)
        if not xs or not ys:
            continue
        for y in ys:
            row = [s for x in xs for s in pixels[y][x][:samples]]
            out += b"\0" + pack_row(row, bits)
    return bytes(out)


def write(name, width, height, bits, color, pixels, interlaced=False, palette=None, trns=None):
    samples = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bits, color, 0, 0,
                                      1 if interlaced else 0))
    if palette:
        png += chunk(b"PLTE", bytes(c for rgb in palette for c in rgb))
    if trns is not None:
        png += chunk(b"tRNS", trns)
    png += chunk(b"IDAT", zlib.compress(raw_data(pixels, width, height, bits, samples,
                                                 interlaced), 9))
    png += chunk(b"IEND", b"")
    path = os.path.join(HERE, name + ".png")
    with open(path, "wb") as f:
        f.write(png)
    with open(os.path.join(HERE, name + ".rgb"), "wb") as f:
        f.write(Image.open(path).convert("RGB").tobytes())


def grid(width, height, fn):
    return [[fn(x, y) for x in range(width)] for y in range(height)]


def main():
    write("gray1_9x5", 9, 5, 1, 0, grid(9, 5, lambda x, y: ((x + y) % 2,)))
    write("gray2_7x3", 7, 3, 2, 0, grid(7, 3, lambda x, y: ((x * 3 + y) % 4,)))
    write("gray4_5x4_interlaced", 5, 4, 4, 0, grid(5, 4, lambda x, y: ((x * 5 + y * 3) % 16,)),
          interlaced=True)
    write("gray8_13x11_interlaced", 13, 11, 8, 0,
          grid(13, 11, lambda x, y: ((x * 19 + y * 23) % 256,)), interlaced=True)
    write("rgb8_6x9_interlaced", 6, 9, 8, 2,
          grid(6, 9, lambda x, y: (x * 40, y * 25, (x * y * 7) % 256)), interlaced=True)
    palette = [(i * 16, 255 - i * 16, (i * 77) % 256) for i in range(16)]
    write("palette4_7x5_trns", 7, 5, 4, 3, grid(7, 5, lambda x, y: ((x + 2 * y) % 16,)),
          palette=palette, trns=bytes([0, 128, 255]))
    write("palette2_5x6_interlaced", 5, 6, 2, 3, grid(5, 6, lambda x, y: ((x + y) % 4,)),
          interlaced=True, palette=palette[:4])
    write("graya8_4x3", 4, 3, 8, 4, grid(4, 3, lambda x, y: (x * 60, y * 100)))


if __name__ == "__main__":
    main()
