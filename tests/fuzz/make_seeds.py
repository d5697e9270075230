#!/usr/bin/env python3
"""Writes the fuzzers' starting corpora into OUT/<parser>/ (standard library only; JPEG seeds
need cjpeg and djpeg from libjpeg-turbo-progs and are skipped without them).

    python3 tests/fuzz/make_seeds.py build-fuzz/seeds

The committed regression corpus (tests/fuzz/corpus/) is what the fuzzers kept from these seeds,
minimised with -merge=1; this script is how to start again from scratch."""
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
SHARED = "/work/shared/data"


def put(out, parser, name, data):
    d = os.path.join(out, parser)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- safetensors: a micro model (hidden 4, 1 layer, MLP 8, patch 2, 2x2 grid) ----

def f32(values):
    return struct.pack("<%df" % len(values), *values)


def f16(values):
    return struct.pack("<%de" % len(values), *values)


def bf16(values):
    return b"".join(struct.pack("<f", v)[2:] for v in values)


def safetensors(tensors, dtype="F32", metadata=None, pad=0):
    """tensors: [(name, shape)]; values are small and distinct so a conversion bug shows."""
    header, blobs, offset = {}, [], 0
    conv = {"F32": (f32, 4), "F16": (f16, 2), "BF16": (bf16, 2)}[dtype]
    for i, (name, shape) in enumerate(tensors):
        n = 1
        for d in shape:
            n *= d
        blob = conv[0]([((i * 7 + j) % 13 - 6) / 8 for j in range(n)])
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode() + b" " * pad
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def micro_hf():
    D, M = 4, 8
    t = [("embeddings.cls_token", [1, 1, D]), ("embeddings.mask_token", [1, D]),
         ("embeddings.patch_embeddings.projection.weight", [D, 3, 2, 2]),
         ("embeddings.patch_embeddings.projection.bias", [D]),
         ("embeddings.position_embeddings", [1, 5, D])]
    p = "encoder.layer.0."
    for n in ("query", "key", "value"):
        t += [(p + "attention.attention.%s.weight" % n, [D, D]),
              (p + "attention.attention.%s.bias" % n, [D])]
    t += [(p + "attention.output.dense.weight", [D, D]), (p + "attention.output.dense.bias", [D]),
          (p + "layer_scale1.lambda1", [D]), (p + "layer_scale2.lambda1", [D]),
          (p + "mlp.fc1.weight", [M, D]), (p + "mlp.fc1.bias", [M]),
          (p + "mlp.fc2.weight", [D, M]), (p + "mlp.fc2.bias", [D]),
          (p + "norm1.weight", [D]), (p + "norm1.bias", [D]),
          (p + "norm2.weight", [D]), (p + "norm2.bias", [D]),
          ("layernorm.weight", [D]), ("layernorm.bias", [D])]
    return t


def micro_backbone():
    D, M = 4, 8
    t = [("cls_token", [1, 1, D]), ("mask_token", [1, D]), ("patch_embed.proj.weight", [D, 3, 2, 2]),
         ("patch_embed.proj.bias", [D]), ("pos_embed", [1, 5, D])]
    p = "blocks.0."
    t += [(p + "attn.qkv.weight", [3 * D, D]), (p + "attn.qkv.bias", [3 * D]),
          (p + "attn.proj.weight", [D, D]), (p + "attn.proj.bias", [D]),
          (p + "ls1.gamma", [D]), (p + "ls2.gamma", [D]),
          (p + "mlp.fc1.weight", [M, D]), (p + "mlp.fc1.bias", [M]),
          (p + "mlp.fc2.weight", [D, M]), (p + "mlp.fc2.bias", [D]),
          (p + "norm1.weight", [D]), (p + "norm1.bias", [D]),
          (p + "norm2.weight", [D]), (p + "norm2.bias", [D]),
          ("norm.weight", [D]), ("norm.bias", [D])]
    return t


def safetensors_seeds(out):
    put(out, "safetensors", "micro_hf_f32", safetensors(micro_hf(), metadata={"format": "pt"}))
    put(out, "safetensors", "micro_hf_f32_unaligned", safetensors(micro_hf(), pad=1))
    put(out, "safetensors", "micro_backbone_f16", safetensors(micro_backbone(), "F16"))
    put(out, "safetensors", "micro_backbone_bf16", safetensors(micro_backbone(), "BF16"))
    put(out, "safetensors", "scalar_and_empty",
        safetensors([("a", []), ("b", [0, 3]), ("c", [2, 1, 1, 1, 1, 1, 1, 1])]))
    for model in ("tiny", "tiny224"):
        with open(os.path.join(DATA, "models", model, "model.safetensors"), "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0]
            put(out, "safetensors", model + "_header_truncated", head + f.read(n) + b"\0" * 64)


# ---- config.json / preprocessor_config.json ----

def config_seeds(out):
    for model in ("tiny", "tiny224", "vitb1"):
        for name in ("config.json", "preprocessor_config.json"):
            with open(os.path.join(DATA, "models", model, name), "rb") as f:
                put(out, "config", "%s_%s" % (model, name), f.read())
    extra = {
        "pre_size_int": {"size": 256, "crop_size": 224, "image_mean": 0.5, "image_std": 0.25},
        "pre_size_hw": {"size": {"height": 300, "width": 200}, "crop_size": [224, 200],
                        "do_center_crop": False, "resample": 3},
        "pre_size_list": {"size": [518, 518], "crop_size": {"height": 1, "width": 1}},
        "model_minimal": {"hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1,
                          "patch_size": 2, "image_size": 4, "mlp_ratio": 1.5},
        "model_refused": {"model_type": "dinov2_with_registers", "num_register_tokens": 4,
                          "use_swiglu_ffn": True, "hidden_act": "silu"},
    }
    for name, obj in extra.items():
        put(out, "config", name + ".json", json.dumps(obj).encode())


# ---- images ----

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(w, h, bit_depth, color_type, rows, extra=b"", interlace=0):
    """rows: the filtered scanlines already laid out (filter byte + packed samples), per pass."""
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra +
            png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b""))


def packed_rows(w, h, channels, bit_depth, sample, filt=0):
    out = bytearray()
    for y in range(h):
        out.append(filt if y else 0)
        if bit_depth >= 8:
            for x in range(w):
                for c in range(channels):
                    v = sample(x, y, c) % (1 << bit_depth)
                    out += v.to_bytes(bit_depth // 8, "big")
        else:
            bits, acc, nbits = bit_depth, 0, 0
            for x in range(w):
                acc = acc << bits | (sample(x, y, 0) % (1 << bits))
                nbits += bits
                if nbits == 8:
                    out.append(acc)
                    acc = nbits = 0
            if nbits:
                out.append(acc << (8 - nbits))
    return bytes(out)


def adam7_rows(w, h, sample):
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)]
    out = bytearray()
    for x0, y0, dx, dy in passes:
        xs = list(range(x0, w, dx))
        if not xs:
            continue
        for y in range(y0, h, dy):
            out.append(0)
            out += bytes(sample(x, y, 0) & 255 for x in xs)
    return bytes(out)


def grad(x, y, c):
    return x * 37 + y * 11 + c * 85


def png_seeds(out):
    put(out, "image", "gray8.png", png(8, 8, 8, 0, packed_rows(8, 8, 1, 8, grad)))
    put(out, "image", "gray8_filters.png", png(9, 5, 8, 0, packed_rows(9, 5, 1, 8, grad, 4)))
    put(out, "image", "gray16.png",
        png(6, 5, 16, 0, packed_rows(6, 5, 1, 16, lambda x, y, c: 1000 + x * 900 + y * 3000)))
    put(out, "image", "gray1.png", png(11, 3, 1, 0, packed_rows(11, 3, 1, 1, grad)))
    put(out, "image", "gray4.png", png(5, 3, 4, 0, packed_rows(5, 3, 1, 4, grad)))
    put(out, "image", "rgb8.png", png(5, 3, 8, 2, packed_rows(5, 3, 3, 8, grad, 1)))
    put(out, "image", "rgb16.png", png(3, 3, 16, 2, packed_rows(3, 3, 3, 16, lambda x, y, c: x * 20000 + c)))
    put(out, "image", "graya8.png", png(4, 4, 8, 4, packed_rows(4, 4, 2, 8, grad, 2)))
    put(out, "image", "rgba8.png", png(4, 2, 8, 6, packed_rows(4, 2, 4, 8, grad, 3)))
    put(out, "image", "rgba16.png", png(2, 2, 16, 6, packed_rows(2, 2, 4, 16, grad)))
    plte = png_chunk(b"PLTE", bytes(range(0, 48))) + png_chunk(b"tRNS", b"\x00\x80")
    put(out, "image", "palette2.png", png(7, 3, 2, 3, packed_rows(7, 3, 1, 2, grad), plte))
    put(out, "image", "palette8.png", png(4, 4, 8, 3, packed_rows(4, 4, 1, 8, lambda x, y, c: (x + y) % 16), plte))
    put(out, "image", "gray8_adam7.png", png(9, 9, 8, 0, adam7_rows(9, 9, grad), interlace=1))
    for name in ("gray8_1x1.png", "gray8_14x14.png"):
        with open(os.path.join(DATA, "images", name), "rb") as f:
            put(out, "image", name, f.read())


def bmp(w, h, bpp, pixels, palette=b"", compression=0, masks=b""):
    info = 40 + len(masks)
    offset = 14 + info + len(palette)
    dib = struct.pack("<IiiHHIIiiII", info, w, h, 1, bpp, compression, len(pixels), 2835, 2835,
                      len(palette) // 4, 0) + masks
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + dib + palette + pixels


def bmp_rows(w, h, bytes_per_pixel, sample):
    out = bytearray()
    stride = (w * bytes_per_pixel + 3) & ~3
    for y in range(h):
        row = bytearray()
        for x in range(w):
            for c in range(bytes_per_pixel):
                row.append(sample(x, y, c) & 255)
        out += row + b"\0" * (stride - len(row))
    return bytes(out)


def bmp_seeds(out):
    put(out, "image", "rgb24.bmp", bmp(5, 3, 24, bmp_rows(5, 3, 3, grad)))
    put(out, "image", "rgb24_topdown.bmp", bmp(3, -2, 24, bmp_rows(3, 2, 3, grad)))
    pal = b"".join(bytes((i * 16, i * 8, i * 4, 0)) for i in range(16))
    put(out, "image", "pal8.bmp", bmp(6, 2, 8, bmp_rows(6, 2, 1, lambda x, y, c: x + y), pal))
    put(out, "image", "pal4.bmp", bmp(7, 2, 4, bytes([0x12, 0x34, 0x56, 0x70] * 2), pal))
    put(out, "image", "mono1.bmp", bmp(9, 2, 1, bytes([0xA5, 0x80, 0, 0, 0x5A, 0x00, 0, 0]),
                                       b"\0\0\0\0\xff\xff\xff\0"))
    masks = struct.pack("<III", 0xF800, 0x07E0, 0x001F)
    put(out, "image", "rgb565.bmp", bmp(3, 2, 16, bmp_rows(3, 2, 2, grad), compression=3, masks=masks))
    put(out, "image", "rgba32.bmp", bmp(2, 2, 32, bmp_rows(2, 2, 4, grad)))
    rle8 = bytes([3, 1, 0, 3, 2, 3, 4, 0, 0, 4, 5, 0, 1])
    put(out, "image", "rle8.bmp", bmp(6, 2, 8, rle8, pal, compression=1))


def pnm_seeds(out):
    put(out, "image", "gray8.pgm", b"P5\n# c\n4 3\n255\n" + bytes(range(0, 240, 20)))
    put(out, "image", "gray16.pgm", b"P5 3 2 65535\n" + b"".join(struct.pack(">H", v * 9000) for v in range(6)))
    put(out, "image", "rgb8.ppm", b"P6\n2 2\n255\n" + bytes(range(12)))
    put(out, "image", "rgb_max1000.ppm", b"P6 2 1 1000\n" + b"".join(struct.pack(">H", v * 150) for v in range(6)))
    put(out, "image", "gray_max15.pgm", b"P5 3 1 15\n\x00\x07\x0f")


def tga(w, h, image_type, bpp, pixels, cmap=b"", cmap_bits=0, desc=0):
    cmap_len = len(cmap) * 8 // cmap_bits if cmap_bits else 0
    head = struct.pack("<BBBHHBHHHHBB", 0, 1 if cmap else 0, image_type, 0, cmap_len, cmap_bits, 0, 0,
                       w, h, bpp, desc)
    return head + cmap + pixels


def tga_seeds(out):
    put(out, "image", "rgb24.tga", tga(3, 2, 2, 24, bytes(grad(i, 0, 0) & 255 for i in range(18))))
    put(out, "image", "rgba32_top.tga", tga(2, 2, 2, 32, bytes(range(16)), desc=0x28))
    put(out, "image", "gray8.tga", tga(4, 2, 3, 8, bytes(range(0, 256, 32))))
    rle = bytes([0x82, 10, 20, 30, 0x01, 1, 2, 3, 4, 5, 6, 0x81, 200, 100, 50])
    put(out, "image", "rle24.tga", tga(7, 1, 10, 24, rle))
    cmap = bytes(range(0, 48))
    put(out, "image", "cmap8.tga", tga(4, 2, 1, 8, bytes([0, 1, 2, 3, 15, 14, 13, 12]), cmap, 24))
    put(out, "image", "rgb16.tga", tga(2, 1, 2, 16, b"\x1f\x7c\xe0\x03"))


def jpeg_seeds(out, tmp):
    if not shutil.which("cjpeg") or not shutil.which("djpeg"):
        print("cjpeg/djpeg missing: no JPEG seeds", file=sys.stderr)
        return
    os.makedirs(tmp, exist_ok=True)
    ppm = os.path.join(tmp, "src.ppm")
    pgm = os.path.join(tmp, "src.pgm")
    with open(ppm, "wb") as f:
        f.write(b"P6 19 13 255\n" + bytes(grad(x, y, c) & 255 for y in range(13) for x in range(19) for c in range(3)))
    with open(pgm, "wb") as f:
        f.write(b"P5 17 9 255\n" + bytes(grad(x, y, 0) & 255 for y in range(9) for x in range(17)))
    variants = {
        "rgb_baseline.jpg": (["-quality", "75"], ppm),
        "rgb_444.jpg": (["-sample", "1x1"], ppm),
        "rgb_progressive.jpg": (["-progressive"], ppm),
        "rgb_arithmetic.jpg": (["-arithmetic"], ppm),
        "rgb_restart.jpg": (["-restart", "1B", "-optimize"], ppm),
        "gray_baseline.jpg": (["-grayscale"], pgm),
        "gray_progressive.jpg": (["-progressive"], pgm),
    }
    for name, (args, src) in variants.items():
        data = subprocess.run(["cjpeg"] + args + [src], check=True, capture_output=True).stdout
        put(out, "image", name, data)
    # A real chest radiograph, scaled down to a few KB (CC BY 4.0, see the corpus README).
    real = os.path.join(SHARED, "bmc-ccby4_ieee8023-covid-chestxray-dataset", "41182_2020_203_Fig5_HTML.jpg")
    if os.path.exists(real):
        small = subprocess.run(["djpeg", "-scale", "1/8", "-grayscale", "-pnm", real], check=True,
                               capture_output=True).stdout
        data = subprocess.run(["cjpeg", "-quality", "60"], input=small, check=True,
                              capture_output=True).stdout
        put(out, "image", "xray_bmc_fig5_small.jpg", data)


# ---- .npy ----

def npy(shape, descr="<f4", fortran=False, values=None):
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    head = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (descr, fortran, dims)
    total = (10 + len(head) + 1 + 63) // 64 * 64
    head = head + " " * (total - 10 - len(head) - 1) + "\n"
    n = 1
    for d in shape:
        n *= d
    data = f32(values if values is not None else [i * 0.5 for i in range(n)])
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head.encode() + data


def npy_seeds(out):
    put(out, "npy", "vector.npy", npy([4]))
    put(out, "npy", "matrix.npy", npy([2, 3]))
    put(out, "npy", "cube.npy", npy([1, 2, 2]))
    put(out, "npy", "scalar.npy", npy([]))
    put(out, "npy", "empty.npy", npy([0, 768]))
    put(out, "npy", "eight_dims.npy", npy([1, 1, 1, 1, 1, 1, 2, 1]))
    put(out, "npy", "f8.npy", npy([2], descr="<f8", values=[1, 2, 3, 4]))
    put(out, "npy", "fortran.npy", npy([2, 2], fortran=True))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_seeds.py OUT")
    out = sys.argv[1]
    safetensors_seeds(out)
    config_seeds(out)
    png_seeds(out)
    bmp_seeds(out)
    pnm_seeds(out)
    tga_seeds(out)
    jpeg_seeds(out, os.path.join(out, "tmp"))
    npy_seeds(out)


if __name__ == "__main__":
    main()
