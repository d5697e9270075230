"""serve_bombs.py — small files that cost a decoder much more than their size, for the serve
tests: a PNG of zero rows (any size, depth and channels; a few hundred KB for 196 MP) and a
progressive JPEG of grey zeros with as many AC scans as asked (each scan is a pass over every
block; EOB runs of 32767 blocks keep each scan a few bytes long). Written here, byte by byte,
because the tests have no image library to make them."""
import struct
import zlib


def png_zeros(width, height, bits=8, color_type=0):
    """color_type 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA; every pixel 0, filter 0."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\0" * (1 + width * channels * bits // 8)
    z = zlib.compressobj(9)
    parts = []
    for _ in range(height):
        parts.append(z.compress(row))
    parts.append(z.flush())
    data = b"".join(parts)

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff))
    ihdr = struct.pack(">IIBBBBB", width, height, bits, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) +
            chunk(b"IEND", b""))


class _Bits:
    """Entropy-coded bytes: MSB first, 0xFF stuffed with 0x00, padded with 1 bits."""
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value, length):
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc = 0
                self.n = 0

    def done(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)
        return bytes(self.out)


def jpeg_scans(width, height, ac_scans):
    """A progressive grey JPEG (all zero) with one DC scan and ac_scans AC scans."""
    def segment(marker, body):
        return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    out = bytearray(b"\xff\xd8")
    out += segment(0xDB, b"\x00" + b"\x01" * 64)                      # DQT 0: all ones
    out += segment(0xC2, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    # DC table 0: one code "0" = category 0. AC table 0: "0" = EOB14, "10" = EOB0.
    out += segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")
    out += segment(0xC4, b"\x10" + bytes([1, 1] + [0] * 14) + b"\xe0\x00")
    dc = _Bits()
    for _ in range(blocks):
        dc.put(0, 1)
    out += segment(0xDA, b"\x01\x01\x00\x00\x00\x00") + dc.done()
    ac = _Bits()
    for _ in range((blocks + 32766) // 32767):
        ac.put(0, 1)                # EOB14 ...
        ac.put(0x3FFF, 14)          # ... run 16384 + 16383 = 32767 blocks
    ac_data = ac.done()
    scan = segment(0xDA, b"\x01\x01\x00\x01\x3f\x00") + ac_data
    out += scan * ac_scans
    out += b"\xff\xd9"
    return bytes(out)


if __name__ == "__main__":
    import sys
    kind, w, h, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    data = png_zeros(w, h, n) if kind == "png" else jpeg_scans(w, h, n)
    sys.stdout.buffer.write(data)
