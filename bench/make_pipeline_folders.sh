#!/bin/sh
# make_pipeline_folders.sh — the two folders bench_pipeline indexes, made from the shared test
# data: OUT/dicom (compressed DICOM: JPEG 2000 irreversible and reversible, JPEG-LS near-lossless
# and lossless, lossless JPEG process 14, RLE) and OUT/png (8-bit and 16-bit chest PNGs).
#
# `raddino index` reuses the vector of a file whose SHA-256 it has seen, without decoding it, so
# every copy must differ in content while decoding the same: a DICOM copy differs in its
# 128-byte preamble (which readers skip), a PNG copy in a tEXt chunk after IHDR.
#
#   sh bench/make_pipeline_folders.sh OUT [DATA] [COPIES]
#   DATA: the shared data folder (default ../shared/data beside the clone); COPIES: of each
#   file (default 3 DICOM; the PNGs get COPIES-1, at least 1).
set -eu
out=${1:?usage: make_pipeline_folders.sh OUT [DATA] [COPIES]}
data=${2:-$(dirname "$0")/../../shared/data}
copies=${3:-3}
exec /usr/bin/python3 - "$out" "$data" "$copies" <<'PY'
import os, struct, sys, zlib
out, data, copies = sys.argv[1], sys.argv[2], int(sys.argv[3])
dicom = ["dicom_pydicom-pylibjpeg-data/" + n for n in
         ["RG1_J2KI.dcm", "RG3_J2KR.dcm", "RG1_JLSN.dcm", "RG2_JLSL.dcm", "RG2_JPLL.dcm"]] + \
        ["derived_dicom/" + n for n in
         ["RG1_chest_q_RLE.dcm", "966_chest_q_RLE.dcm", "RG1_chest_q_JPEGLossless_P14_SV6.dcm"]]
pngs = sorted("nih-cxr14_jrzech-reproduce-chexnet/" + n
              for n in os.listdir(os.path.join(data, "nih-cxr14_jrzech-reproduce-chexnet"))
              if n.endswith(".png")) + \
       sorted("derived_png16/" + n for n in os.listdir(os.path.join(data, "derived_png16")))

def dicom_copy(raw, i):
    assert raw[128:132] == b"DICM", "no DICM marker"
    tag = ("raddino bench copy %d" % i).encode().ljust(128, b"\0")
    return tag + raw[128:]

def png_copy(raw, i):
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    end = 8 + 8 + struct.unpack(">I", raw[8:12])[0] + 4      # after IHDR's CRC
    body = b"tEXt" + b"Comment\0raddino bench copy %d" % i
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    return raw[:end] + chunk + raw[end:]

for sub, names, n, copy in (("dicom", dicom, copies, dicom_copy),
                            ("png", pngs, max(copies - 1, 1), png_copy)):
    folder = os.path.join(out, sub)
    os.makedirs(folder, exist_ok=True)
    for name in names:
        raw = open(os.path.join(data, name), "rb").read()
        stem, ext = os.path.splitext(os.path.basename(name))
        for i in range(n):
            with open(os.path.join(folder, "%s_%d%s" % (stem, i, ext)), "wb") as f:
                f.write(copy(raw, i))
    print("%s: %d files" % (folder, len(names) * n))
PY
