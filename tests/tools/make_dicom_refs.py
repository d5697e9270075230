#!/usr/bin/python3
"""Makes the DICOM test data and reference values of tests/test_dicom.c.

Run once from the repository root, with Debian's python3 (not a virtualenv):
    /usr/bin/python3 tests/tools/make_dicom_refs.py
Needs Debian bookworm python3-pydicom, python3-gdcm, python3-numpy. Not needed by the tests.

1. Writes small files into tests/data/dicom/:
   - RG2_hip_q_J2KR.dcm, RG2_hip_q_JLSL.dcm: GDCM re-encodings (JPEG 2000 lossless, JPEG-LS
     lossless) of RG2_hip_q_ExplVRLE.dcm, so that every lossless family has an in-repo twin;
   - synthetic/*.dcm: tiny made-up images for the cases the real files lack (signed pixels with
     Bits Stored 12, rescale and padding; VOI LUT; MONOCHROME2 + INVERSE; RGB planar; YBR_FULL;
     two frames).
2. Writes tests/data/dicom/refs.tsv, one line per DICOM file (the in-repo ones and those of
   ../shared/data when present), with:
   - grey_sha256: SHA-256 of the grey levels as little-endian float64, row-major: pixels decoded
     by pydicom with its GDCM handler, bits above Bits Stored dropped (sign-extended when signed),
     then pydicom's apply_modality_lut;
   - minmax_sha256 / auto_sha256: SHA-256 of the 8-bit image (one byte per pixel; for colour,
     R G B interleaved) with min-max and with --window auto, by the rules of
     encoder/dicom_pixels.c written again here in numpy;
   - the 8-bit mean, the twin group (lossless files of one group must decode identically), the
     patient key for the salt "raddino-test-salt", the SOP Instance UID.
"""
import hashlib
import os
import sys
import tempfile

import numpy as np
import pydicom
import pydicom.config
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.pixel_data_handlers import gdcm_handler, numpy_handler, rle_handler
from pydicom.pixel_data_handlers.util import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import gdcm

# pydicom's own readers for native and RLE data (pydicom's RLE decoder, not GDCM's: Debian's
# GDCM orders the segments of 16- and 32-bit colour wrongly); GDCM for JPEG, JPEG-LS, JPEG 2000.
# Each handler takes only its own transfer syntaxes, so the order decides nothing else.
pydicom.config.pixel_data_handlers = [numpy_handler, rle_handler, gdcm_handler]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, 'tests', 'data', 'dicom')
SHARED = os.path.join(os.path.dirname(ROOT), 'shared', 'data')
SALT = 'raddino-test-salt'

# Lossless files that must decode to the same grey levels.
TWINS = {
    'RG1_chest_q_ExplVRLE.dcm': 'RG1q', 'RG1_chest_q_ImplVRLE.dcm': 'RG1q',
    'RG1_chest_q_RLE.dcm': 'RG1q', 'RG1_chest_q_JPEGLossless_P14_SV6.dcm': 'RG1q',
    '966_chest_q_ExplVRLE.dcm': '966q', '966_chest_q_RLE.dcm': '966q',
    'RG2_hip_q_ExplVRLE.dcm': 'RG2q', 'RG2_hip_q_J2KR.dcm': 'RG2q', 'RG2_hip_q_JLSL.dcm': 'RG2q',
    'RG2_JLSL.dcm': 'RG2', 'RG2_JPLL.dcm': 'RG2',
}


def reencode(src, dst, syntax):
    reader = gdcm.ImageReader()
    reader.SetFileName(src)
    assert reader.Read(), src
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(syntax))
    change.SetInput(reader.GetImage())
    assert change.Change(), dst
    writer = gdcm.ImageWriter()
    writer.SetFileName(dst)
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write(), dst


def new_dataset(path, rows, cols, pi, bits_alloc, bits_stored, signed, spp=1):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.1.1'     # DX for presentation
    key = os.path.relpath(path, DATA)       # the same UIDs from any checkout
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[key])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b'\0' * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[key, 'study'])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[key, 'series'])
    ds.Modality = 'DX'
    ds.PatientID = ' SYNTH-1 '
    ds.PatientName = 'Synthetic^Image'
    ds.ViewPosition = 'PA'
    ds.BodyPartExamined = 'CHEST'
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = spp
    ds.PhotometricInterpretation = pi
    ds.BitsAllocated = bits_alloc
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if spp == 3:
        ds.PlanarConfiguration = 0
    return ds


def save(ds, array, path):
    ds.PixelData = array.tobytes()
    ds['PixelData'].VR = 'OB' if ds.BitsAllocated == 8 else 'OW'
    ds.save_as(path, write_like_original=False)


def make_synthetic():
    out = os.path.join(DATA, 'synthetic')
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(8)
    yy, xx = np.mgrid[0:24, 0:20]
    ramp = (xx * 37 + yy * 11).astype(np.int64)

    # Signed, 12 of 16 bits, rescale, padding -2048 in a border, junk in the 4 high bits.
    p = os.path.join(out, 'signed12_rescale_padding.dcm')
    ds = new_dataset(p, 24, 20, 'MONOCHROME2', 16, 12, True)
    v = (ramp * 3 - 900).clip(-2000, 2047)
    v[:2, :] = -2048
    v[:, -1] = -2048
    raw = (v & 0xFFF) | (rng.integers(0, 16, v.shape) << 12)   # high bits not part of the value
    ds.RescaleSlope = '0.5'
    ds.RescaleIntercept = '-100'
    ds.PixelPaddingValue = -2048
    ds['PixelPaddingValue'].VR = 'SS'
    ds.WindowCenter = '50'
    ds.WindowWidth = '600'
    save(ds, raw.astype(np.uint16), p)

    # Unsigned 10 bits, MONOCHROME1 with padding range, VOI LUT and no window.
    p = os.path.join(out, 'mono1_voilut_padding_range.dcm')
    ds = new_dataset(p, 24, 20, 'MONOCHROME1', 16, 10, False)
    v = (ramp % 1024).astype(np.uint16)
    v[-3:, :] = 1020 + (xx[-3:, :] % 4)       # padding 1020..1023
    ds.PixelPaddingValue = 1020
    ds.PixelPaddingRangeLimit = 1023
    item = Dataset()
    item.LUTDescriptor = [512, 100, 12]
    item['LUTDescriptor'].VR = 'US'
    item.LUTData = [int(4095 * (i / 511) ** 0.5) for i in range(512)]
    item['LUTData'].VR = 'OW'
    item.LUTData = np.array(item.LUTData, dtype='<u2').tobytes()
    ds.VOILUTSequence = [item]
    save(ds, v, p)

    # MONOCHROME2 + INVERSE: inverted by the shape.
    p = os.path.join(out, 'mono2_inverse.dcm')
    ds = new_dataset(p, 24, 20, 'MONOCHROME2', 8, 8, False)
    ds.PresentationLUTShape = 'INVERSE'
    save(ds, (ramp % 256).astype(np.uint8), p)

    # RGB, planar configuration 1.
    p = os.path.join(out, 'rgb_planar.dcm')
    ds = new_dataset(p, 24, 20, 'RGB', 8, 8, False, spp=3)
    ds.PlanarConfiguration = 1
    planes = np.stack([ramp % 256, (ramp * 3) % 256, 255 - ramp % 256]).astype(np.uint8)
    save(ds, planes, p)

    # YBR_FULL, interleaved.
    p = os.path.join(out, 'ybr_full.dcm')
    ds = new_dataset(p, 24, 20, 'YBR_FULL', 8, 8, False, spp=3)
    ybr = np.stack([ramp % 256, 128 + (xx - 10) * 5, 128 + (yy - 12) * 4], axis=-1)
    save(ds, ybr.astype(np.uint8), p)

    # Two frames.
    p = os.path.join(out, 'two_frames.dcm')
    ds = new_dataset(p, 24, 20, 'MONOCHROME2', 8, 8, False)
    ds.NumberOfFrames = 2
    save(ds, np.stack([ramp % 256, 255 - ramp % 256]).astype(np.uint8), p)


# ---- edge cases (issue 16): files pydicom decodes that raddino once did not, and refusals ----

from pydicom.encaps import encapsulate, generate_pixel_data_frame
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.pixel_data_handlers.numpy_handler import pack_bits
from pydicom.uid import (ExplicitVRBigEndian, ImplicitVRLittleEndian, JPEG2000Lossless,
                         RLELossless)

RT_DOSE = '1.2.840.10008.5.1.4.1.1.481.2'


def rle_segment(plane):
    """PackBits (PS3.5 G.3.1): runs of 3 or more repeated, the rest literal; padded even."""
    b, out, i, n = bytes(plane), bytearray(), 0, len(plane)
    while i < n:
        j = i
        while j + 1 < n and b[j + 1] == b[i] and j - i < 127:
            j += 1
        if j - i + 1 >= 3:
            out += bytes([257 - (j - i + 1), b[i]])
            i = j + 1
            continue
        k = i
        while k < n and k - i < 128 and not (k + 2 < n and b[k] == b[k + 1] == b[k + 2]):
            k += 1
        out += bytes([k - i - 1]) + b[i:k]
        i = k
    return bytes(out) + b'\0' * (len(out) % 2)


def rle_frame(arr):
    """One RLE Lossless frame (PS3.5 G.5): arr is rows x columns (x samples), little-endian
    words; one segment per byte of each sample, most significant first. Our own encoder:
    pydicom's refuses 32-bit samples, and its decoder is the reference here."""
    a = arr.reshape(arr.shape[0], arr.shape[1], -1)
    width = a.dtype.itemsize
    segments = []
    for s in range(a.shape[2]):
        le = np.ascontiguousarray(a[:, :, s].astype('<u%d' % width)).view(np.uint8)
        le = le.reshape(-1, width)
        for byte in reversed(range(width)):
            segments.append(rle_segment(le[:, byte].tobytes()))
    header, at = [len(segments)], 64
    for seg in segments:
        header.append(at)
        at += len(seg)
    header += [0] * (16 - len(header))
    return b''.join(x.to_bytes(4, 'little') for x in header) + b''.join(segments)


def set_rle(ds, arr, frames=1):
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([rle_frame(f) for f in (arr if frames > 1 else [arr])])
    ds['PixelData'].VR = 'OB'
    ds['PixelData'].is_undefined_length = True


def write_raw(path, ds, implicit, little=True):
    """The file as given: data set encoded implicit/explicit whatever its meta says."""
    fp = DicomBytesIO()
    fp.write(b'\0' * 128 + b'DICM')
    write_file_meta_info(fp, ds.file_meta, enforce_standard=True)
    fp.is_little_endian, fp.is_implicit_VR = little, implicit
    write_dataset(fp, ds)
    with open(path, 'wb') as f:
        f.write(fp.getvalue())


def check_pixels(path, want):
    got = pydicom.dcmread(path).pixel_array
    assert got.shape == want.shape and (got == want).all(), path


def rt_dose(path, syntax):
    """RT Dose, one frame: Frame Increment Pointer -> Grid Frame Offset Vector, no Number of
    Frames (GDCM's image reader asserts on that pairing)."""
    ds = new_dataset(path, 10, 12, 'MONOCHROME2', 32, 32, False)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = RT_DOSE
    ds.Modality = 'RTDOSE'
    ds.FrameIncrementPointer = 0x3004000C
    ds.GridFrameOffsetVector = [0]
    ds.DoseUnits, ds.DoseType, ds.DoseSummationType = 'GY', 'PHYSICAL', 'PLAN'
    ds.DoseGridScaling = '1e-6'
    yy, xx = np.mgrid[0:10, 0:12]
    v = (795000 + xx * 30011 + yy * 4099 + (xx * yy) ** 2 * 97).astype(np.uint32)
    if syntax == RLELossless:
        set_rle(ds, v)
        ds.save_as(path, write_like_original=False)
    elif syntax == ExplicitVRBigEndian:
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
        ds.is_little_endian = False
        ds.PixelData = v.astype('>u4').tobytes()
        ds['PixelData'].VR = 'OW'
        ds.save_as(path, write_like_original=False)
    else:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.is_implicit_VR = True
        ds.PixelData = v.astype('<u4').tobytes()
        ds.save_as(path, write_like_original=False)
    check_pixels(path, v)


def rgb_rle(path, bits, frames=1):
    """RGB RLE with samples wider than 8 bits: R, G and B far apart, so a rotation shows."""
    ds = new_dataset(path, 16, 18, 'RGB', bits, bits, False, spp=3)
    yy, xx = np.mgrid[0:16, 0:18]
    top = (1 << bits) - 1
    r = (xx * top // 17)
    g = (yy * top // 15) // 2
    b = np.full(r.shape, top // 7) + xx * yy
    rgb = np.stack([r, g, b], axis=-1).astype(np.uint16 if bits == 16 else np.uint32)
    if frames > 1:
        rgb = np.stack([rgb, top - rgb])
        ds.NumberOfFrames = frames
    set_rle(ds, rgb, frames)
    ds.save_as(path, write_like_original=False)
    check_pixels(path, rgb)


def one_bit(path, big=False, frames=1):
    """Bits Allocated 1: 13 x 7 = 91 pixels, so a frame ends inside a byte."""
    ds = new_dataset(path, 13, 7, 'MONOCHROME2', 1, 1, False)
    yy, xx = np.mgrid[0:13, 0:7]
    bits = ((xx * 3 + yy * 5) % 7 < 3).astype(np.uint8)
    arr = bits if frames == 1 else np.stack([bits, 1 - bits])
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = pack_bits(arr)       # least significant bit first, as PS3.5 8.1.1 says
    ds['PixelData'].VR = 'OB'
    if big:
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
        ds.is_little_endian = False
    ds.save_as(path, write_like_original=False)
    check_pixels(path, arr)


def j2k_codestream_with(src, insert):
    """The JPEG 2000 codestream of src with bytes inserted after its SIZ segment."""
    ds = pydicom.dcmread(src)
    cs = next(generate_pixel_data_frame(ds.PixelData))
    assert cs[:4] == b'\xff\x4f\xff\x51', src
    siz_end = 4 + int.from_bytes(cs[4:6], 'big')
    return ds, cs[:siz_end] + insert + cs[siz_end:]


def make_edge_cases(tmp):
    out = os.path.join(DATA, 'synthetic')
    refused = os.path.join(DATA, 'refused')
    os.makedirs(refused, exist_ok=True)
    yy, xx = np.mgrid[0:24, 0:20]
    ramp16 = (xx * 97 + yy * 211 + 40).astype(np.uint16)

    # RT Dose without Number of Frames, in the three syntaxes of pydicom's rtdose_*_1frame.dcm.
    rt_dose(os.path.join(out, 'rtdose_1frame_implicit.dcm'), ImplicitVRLittleEndian)
    rt_dose(os.path.join(out, 'rtdose_1frame_big_endian.dcm'), ExplicitVRBigEndian)
    rt_dose(os.path.join(out, 'rtdose_1frame_rle.dcm'), RLELossless)

    # RGB RLE, 16 and 32 bits (GDCM's RLE decoder rotates their channels), and two frames.
    rgb_rle(os.path.join(out, 'rgb_rle_16bit.dcm'), 16)
    rgb_rle(os.path.join(out, 'rgb_rle_32bit.dcm'), 32)
    rgb_rle(os.path.join(out, 'rgb_rle_16bit_2frames.dcm'), 16, frames=2)

    # 1-bit, little and big endian, and two frames (the second starts inside a byte).
    one_bit(os.path.join(out, 'bits1.dcm'))
    one_bit(os.path.join(out, 'bits1_big_endian.dcm'), big=True)
    one_bit(os.path.join(out, 'bits1_2frames.dcm'), frames=2)

    # A native source for GDCM's JPEG 2000 encoder (no Frame Increment Pointer: GDCM would
    # assert reading it).
    src = os.path.join(tmp, 'grey16.dcm')
    ds = new_dataset(src, 24, 20, 'MONOCHROME2', 16, 12, False)
    save(ds, ramp16 % 4096, src)
    j2k = os.path.join(tmp, 'grey16_j2k.dcm')
    reencode(src, j2k, gdcm.TransferSyntax.JPEG2000Lossless)

    # JPEG 2000 with a Frame Increment Pointer and no Number of Frames (the GDCM codec path).
    p = os.path.join(out, 'j2k_frame_pointer_no_frames.dcm')
    ds = pydicom.dcmread(j2k)
    ds.FrameIncrementPointer = 0x00181063     # Frame Time
    ds.FrameTime = '33.3'
    ds.save_as(p, write_like_original=False)
    check_pixels(p, ramp16 % 4096)

    # A sequence delimiter's bytes (FFFE E0DD 00000000) inside a fragment, in a comment segment
    # of the codestream: fragments are read by their length, so this is just data.
    p = os.path.join(out, 'j2k_fragment_holds_delimiter.dcm')
    ds, cs = j2k_codestream_with(j2k, b'\xff\x64\x00\x0c\x00\x00' +
                                 b'\xfe\xff\xdd\xe0\x00\x00\x00\x00')
    ds.PixelData = encapsulate([cs + b'\0' * (len(cs) % 2)])
    ds.save_as(p, write_like_original=False)
    check_pixels(p, ramp16 % 4096)

    # Implicit VR data sets under explicit VR syntaxes (pydicom warns and reads them): native,
    # and encapsulated JPEG 2000; and the other way round, explicit under implicit.
    ds = new_dataset(os.path.join(out, 'implicit_under_explicit.dcm'), 24, 20, 'MONOCHROME2', 16,
                     12, False)
    ds.PixelData = (ramp16 % 4096).tobytes()
    write_raw(os.path.join(out, 'implicit_under_explicit.dcm'), ds, implicit=True)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds['PixelData'].VR = 'OW'
    write_raw(os.path.join(out, 'explicit_under_implicit.dcm'), ds, implicit=False)
    ds = pydicom.dcmread(j2k)
    write_raw(os.path.join(out, 'implicit_under_j2k.dcm'), ds, implicit=True)
    for f in ('implicit_under_explicit.dcm', 'explicit_under_implicit.dcm',
              'implicit_under_j2k.dcm'):
        check_pixels(os.path.join(out, f), ramp16 % 4096)

    # YBR_FULL_422, native: two luminances and one Cb Cr per pair of pixels.
    p = os.path.join(out, 'ybr_full_422.dcm')
    ds = new_dataset(p, 24, 20, 'YBR_FULL_422', 8, 8, False, spp=3)
    y = (xx * 11 + yy * 7) % 256
    cb = 128 + (xx[:, ::2] - 10) * 6
    cr = 128 + (yy[:, ::2] - 12) * 5
    packed = np.stack([y[:, ::2], y[:, 1::2], cb, cr], axis=-1).astype(np.uint8)
    save(ds, packed, p)
    assert pydicom.dcmread(p).pixel_array.shape == (24, 20, 3), p

    # ---- refused: tests/test_dicom.c checks the code and message of each ----
    # The JPEG 2000 file of pydicom's JPEG2000-embedded-sequence-delimiter.dcm: the delimiter's
    # bytes overwrite the codestream's own SIZ (Rsiz and the top of Xsiz), which then declares
    # 3722445056 columns. Not a fragment parsing matter: the stream is damaged (GDCM fails on
    # it, Pillow reads the same size and refuses it as a decompression bomb).
    ds = pydicom.dcmread(j2k)
    cs = bytearray(next(generate_pixel_data_frame(ds.PixelData)))
    cs[6:10] = b'\xfe\xff\xdd\xe0'
    ds.PixelData = encapsulate([bytes(cs) + b'\0' * (len(cs) % 2)])
    ds.save_as(os.path.join(refused, 'j2k_siz_overwritten_by_delimiter.dcm'),
               write_like_original=False)
    # 1-bit colour (1-bit images are greyscale) and 1-bit RLE (whole-byte segments).
    ds = new_dataset(os.path.join(refused, 'bits1_rgb.dcm'), 4, 4, 'RGB', 1, 1, False, spp=3)
    ds.PixelData = bytes(6)
    ds.save_as(os.path.join(refused, 'bits1_rgb.dcm'), write_like_original=False)
    ds = new_dataset(os.path.join(refused, 'bits1_rle.dcm'), 4, 4, 'MONOCHROME2', 1, 1, False)
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([(1).to_bytes(4, 'little') + (64).to_bytes(4, 'little') +
                                bytes(56) + b'\x01\x00\x00'  + b'\0'])
    ds.save_as(os.path.join(refused, 'bits1_rle.dcm'), write_like_original=False)
    # RLE frames whose header or segments do not fit the image.
    good = pydicom.dcmread(os.path.join(out, 'rtdose_1frame_rle.dcm'))
    frame = bytearray(next(generate_pixel_data_frame(good.PixelData)))
    bad = bytearray(frame)
    bad[0] = 3                                         # 3 segments for 4 bytes per sample
    good.PixelData = encapsulate([bytes(bad)])
    good.save_as(os.path.join(refused, 'rle_segment_count.dcm'), write_like_original=False)
    bad = frame[:len(frame) - 40]                      # the last segment cut short
    bad += b'\0' * (len(bad) % 2)
    good.PixelData = encapsulate([bytes(bad)])
    good.save_as(os.path.join(refused, 'rle_segment_short.dcm'), write_like_original=False)


# ---- the rules of encoder/dicom_pixels.c ----

def stored_values(ds, arr):
    bits_alloc, bits_stored = int(ds.BitsAllocated), int(ds.BitsStored)
    high_bit = int(ds.get('HighBit', bits_stored - 1))
    raw = arr.astype(np.int64) & ((1 << bits_alloc) - 1)
    v = (raw >> (high_bit + 1 - bits_stored)) & ((1 << bits_stored) - 1)
    if int(ds.PixelRepresentation) == 1:
        v = np.where(v >> (bits_stored - 1) & 1, v - (1 << bits_stored), v)
    return v


def padding_mask(ds, stored):
    if 'PixelPaddingValue' not in ds:
        return np.zeros(stored.shape, bool)
    pv = int(ds.PixelPaddingValue)
    if 'PixelPaddingRangeLimit' in ds:
        lo, hi = sorted((pv, int(ds.PixelPaddingRangeLimit)))
        return (stored >= lo) & (stored <= hi)
    return stored == pv


def round_u8(y):
    return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)


def to_u8(ds, grey, pad, auto):
    pi = ds.PhotometricInterpretation
    invert = pi == 'MONOCHROME1' or (pi == 'MONOCHROME2' and
                                     ds.get('PresentationLUTShape', '') == 'INVERSE')
    kind = 'minmax'
    if auto and 'WindowCenter' in ds and 'WindowWidth' in ds:
        c = ds.WindowCenter
        w = ds.WindowWidth
        c = float(c[0] if isinstance(c, pydicom.multival.MultiValue) else c)
        w = float(w[0] if isinstance(w, pydicom.multival.MultiValue) else w)
        fn = ds.get('VOILUTFunction', 'LINEAR') or 'LINEAR'
        assert fn == 'LINEAR' and w >= 1
        kind = 'linear'
    elif auto and 'VOILUTSequence' in ds:
        kind = 'table'
    if kind == 'linear':
        lo_edge, hi_edge = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
        with np.errstate(divide='ignore', invalid='ignore'):
            mid = ((grey - (c - 0.5)) / (w - 1) + 0.5) * 255.0 + 0.0
        y = np.where(grey <= lo_edge, 0.0, np.where(grey > hi_edge, 255.0, mid))
        out = round_u8(255 - y if invert else y)
        return np.where(pad, 0, out).astype(np.uint8)
    if kind == 'table':
        item = ds.VOILUTSequence[0]
        n, first, bits = [int(x) for x in item.LUTDescriptor]
        n = n or 65536
        lut = np.frombuffer(item.LUTData if isinstance(item.LUTData, bytes)
                            else np.array(item.LUTData, '<u2').tobytes(), '<u2')[:n]
        idx = np.clip(np.floor(grey).astype(np.int64) - first, 0, n - 1)
        y = np.minimum(lut[idx].astype(np.float64) * 255.0 / float((1 << bits) - 1), 255)
        out = round_u8(255 - y if invert else y)
        return np.where(pad, 0, out).astype(np.uint8)
    sign = -1.0 if invert else 1.0
    g = sign * grey
    if (~pad).any():
        lo, hi = g[~pad].min(), g[~pad].max()
    else:
        lo, hi = np.inf, -np.inf
    rng = hi - lo
    if not rng > 0:
        return np.zeros(grey.shape, np.uint8)
    out = np.floor((g - lo) * 255.0 / rng + 0.5).astype(np.uint8)
    return np.where(pad, 0, out).astype(np.uint8)


def ybr_to_rgb(ybr):
    y, cb, cr = [ybr[..., i].astype(np.float64) for i in range(3)]
    r = y + 1.402 * (cr - 128)
    g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
    b = y + 1.772 * (cb - 128)
    return np.stack([round_u8(r), round_u8(g), round_u8(b)], axis=-1)


def sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def patient_key(ds):
    pid = str(ds.get('PatientID', '')).strip(' ')
    if not pid:
        return '-'
    return hashlib.sha256(SALT.encode() + b'\0' + pid.encode()).hexdigest()


def reference(path):
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if int(ds.get('NumberOfFrames', 1) or 1) > 1:
        arr = arr[0]
    if int(ds.SamplesPerPixel) == 3:
        # pydicom's GDCM handler returns RGB for JPEG YBR; native data as stored. Wider samples:
        # one min-max over R, G and B together (the 16-bit PNG rule).
        if int(ds.BitsAllocated) > 8:
            v = stored_values(ds, arr).astype(np.float64)
            lo, hi = v.min(), v.max()
            a = (np.floor((v - lo) * 255.0 / (hi - lo) + 0.5) if hi > lo
                 else np.zeros(v.shape)).astype(np.uint8)
        else:
            a = arr.astype(np.uint8)
        # pydicom returns YBR_FULL_422 upsampled but still YBR (its numpy reader, and GDCM's
        # JPEG decode as pydicom calls it): converted like YBR_FULL.
        u8 = ybr_to_rgb(a) if ds.PhotometricInterpretation in ('YBR_FULL', 'YBR_FULL_422') else a
        return '-', sha(u8), sha(u8), u8.mean()
    stored = stored_values(ds, arr)
    grey = np.asarray(apply_modality_lut(stored, ds), dtype='<f8')
    pad = padding_mask(ds, stored)
    mm = to_u8(ds, grey, pad, auto=False)
    au = to_u8(ds, grey, pad, auto=True)
    return sha(grey), sha(mm), sha(au), mm.mean()


def main():
    rg2 = os.path.join(DATA, 'RG2_hip_q_ExplVRLE.dcm')
    reencode(rg2, os.path.join(DATA, 'RG2_hip_q_J2KR.dcm'), gdcm.TransferSyntax.JPEG2000Lossless)
    reencode(rg2, os.path.join(DATA, 'RG2_hip_q_JLSL.dcm'), gdcm.TransferSyntax.JPEGLSLossless)
    make_synthetic()
    with tempfile.TemporaryDirectory() as tmp:
        make_edge_cases(tmp)

    files = []
    for base, prefix in ((DATA, 'dicom/'), (os.path.join(DATA, 'synthetic'), 'dicom/synthetic/')):
        files += [(prefix + f, os.path.join(base, f))
                  for f in sorted(os.listdir(base)) if f.endswith('.dcm')]
    if os.path.isdir(SHARED):
        local = {os.path.basename(k) for k, _ in files}
        for sub in sorted(os.listdir(SHARED)):
            d = os.path.join(SHARED, sub)
            if not sub.startswith(('dicom_', 'derived_dicom')) or not os.path.isdir(d):
                continue
            files += [('shared/' + sub + '/' + f, os.path.join(d, f))
                      for f in sorted(os.listdir(d)) if f.endswith('.dcm') and f not in local]
    lines = ['# key\trows\tcols\tframes\tgrey_sha256\tminmax_sha256\tauto_sha256\tmean\ttwin\t'
             'patient_key\tsop_instance_uid\ttransfer_syntax\tphotometric']
    for key, path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        grey, mm, au, mean = reference(path)
        twin = TWINS.get(os.path.basename(path), '-')
        lines.append('\t'.join([key, str(ds.Rows), str(ds.Columns),
                                str(int(ds.get('NumberOfFrames', 1) or 1)), grey, mm, au,
                                '%.4f' % mean, twin, patient_key(ds), str(ds.SOPInstanceUID),
                                str(ds.file_meta.TransferSyntaxUID),
                                str(ds.PhotometricInterpretation)]))
        print(key, file=sys.stderr)
    with open(os.path.join(DATA, 'refs.tsv'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
