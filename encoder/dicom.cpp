/* dicom.cpp — GDCM behind a small C interface (encoder_internal.h, "dicom.cpp" section).
 *
 * This is the only C++ file of the project. It does two things with GDCM and nothing else:
 *   - reads the attributes that decide how pixels become grey levels, and the identifiers the
 *     store keeps (dicom_read_header);
 *   - decodes one frame of the pixel data, whatever its transfer syntax (dicom_decode_frame).
 * Everything a reader sees (Modality LUT, MONOCHROME1, padding, windowing, colour) is done in C,
 * in dicom_pixels.c.
 *
 * No exception may leave this file: every entry point catches everything and returns a status.
 * GDCM's console messages are switched off (gdcm::Trace is per process: harmless here, since we
 * never want them). Sizes are checked from the header before anything is decoded. */
#include "dicom_internal.h"
#include "encoder_status.h"
#include "image_internal.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <utility>
#include <set>
#include <sstream>
#include <streambuf>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gdcmDataSet.h>
#include <gdcmFile.h>
#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmJPEG2000Codec.h>
#include <gdcmJPEGCodec.h>
#include <gdcmJPEGLSCodec.h>
#include <gdcmReader.h>
#include <gdcmSequenceOfFragments.h>
#include <gdcmSequenceOfItems.h>
#include <gdcmStringFilter.h>
#include <gdcmTrace.h>
#include <gdcmTransferSyntax.h>

namespace {

/* A read-only istream over caller memory, with the seeking GDCM needs (no copy of the file). */
class memory_buffer : public std::streambuf {
public:
    memory_buffer(const uint8_t *data, size_t size)
    {
        char *p = const_cast<char *>(reinterpret_cast<const char *>(data));
        setg(p, p, p + size);
    }

protected:
    pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode) override
    {
        off_type base = dir == std::ios_base::beg   ? 0
                        : dir == std::ios_base::cur ? gptr() - eback()
                                                    : egptr() - eback();
        return seek_to(base + off);
    }
    pos_type seekpos(pos_type pos, std::ios_base::openmode) override
    {
        return seek_to(off_type(pos));
    }

private:
    pos_type seek_to(off_type pos)
    {
        if (pos < 0 || pos > egptr() - eback()) return pos_type(off_type(-1));
        setg(eback(), eback() + pos, egptr());
        return pos_type(pos);
    }
};

void silence_gdcm()
{
    gdcm::Trace::SetDebug(false);
    gdcm::Trace::SetWarning(false);
    gdcm::Trace::SetError(false);
}

const gdcm::Tag TAG_PIXEL_DATA(0x7fe0, 0x0010);

/* The attribute as text (GDCM's StringFilter: numbers of binary VRs become decimal text, values
 * separated by '\'), trailing spaces and NULs removed; "" when absent or empty. */
std::string text_of(const gdcm::File &file, const gdcm::DataSet &ds, uint16_t group,
                    uint16_t element)
{
    gdcm::Tag tag(group, element);
    if (!ds.FindDataElement(tag)) return std::string();
    const gdcm::DataElement &de = ds.GetDataElement(tag);
    if (de.IsEmpty() || !de.GetByteValue()) return std::string();  /* sequences, fragments */
    gdcm::StringFilter sf;
    sf.SetFile(file);
    std::string s = sf.ToString(de);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
    size_t start = s.find_first_not_of(' ');
    return start == std::string::npos ? std::string() : s.substr(start);
}

void copy_text(char *dst, size_t cap, const std::string &s)
{
    size_t n = s.size() < cap - 1 ? s.size() : cap - 1;
    std::memcpy(dst, s.data(), n);
    dst[n] = 0;
    for (size_t i = 0; i < n; i++)   /* keep messages and JSON one line: no control bytes */
        if ((unsigned char)dst[i] < 0x20) dst[i] = ' ';
}

/* First value of a multi-valued attribute. */
std::string first_value(const std::string &s)
{
    size_t bs = s.find('\\');
    return bs == std::string::npos ? s : s.substr(0, bs);
}

bool parse_double(const std::string &s, double *out)
{
    if (s.empty()) return false;
    const char *p = s.c_str();
    char *end;
    double v = std::strtod(p, &end);
    while (*end == ' ') end++;
    if (end == p || (*end && *end != '\\')) return false;
    if (!(v == v) || v > 1e300 || v < -1e300) return false;   /* NaN, infinities */
    *out = v;
    return true;
}

bool parse_int(const std::string &s, long long lo, long long hi, long long *out)
{
    double v = 0;
    if (!parse_double(s, &v) || v != (double)(long long)v || v < lo || v > hi) return false;
    *out = (long long)v;
    return true;
}

int int_or(const std::string &s, long long lo, long long hi, int fallback)
{
    long long v;
    return parse_int(s, lo, hi, &v) ? (int)v : fallback;
}

/* "a\b" -> two doubles; both 0 when absent or unreadable. */
void parse_pair(const std::string &s, double out[2])
{
    out[0] = out[1] = 0;
    size_t bs = s.find('\\');
    if (bs == std::string::npos) return;
    double a = 0, b = 0;
    if (parse_double(s.substr(0, bs), &a) && parse_double(s.substr(bs + 1), &b)) {
        out[0] = a;
        out[1] = b;
    }
}

/* A LUT from the first item of a sequence (Modality LUT Sequence or VOI LUT Sequence):
 * LUT Descriptor (entries, first mapped value, bits) and LUT Data (16-bit words). A LUT we
 * cannot read is left absent (n = 0), as a viewer would ignore it. */
void read_lut(const gdcm::File &file, const gdcm::DataSet &ds, uint16_t seq_element,
              int pixel_representation, dicom_lut *lut)
{
    gdcm::Tag seq_tag(0x0028, seq_element);
    if (!ds.FindDataElement(seq_tag)) return;
    gdcm::SmartPointer<gdcm::SequenceOfItems> sq = ds.GetDataElement(seq_tag).GetValueAsSQ();
    if (!sq || sq->GetNumberOfItems() < 1) return;
    const gdcm::DataSet &item = sq->GetItem(1).GetNestedDataSet();
    std::string desc = text_of(file, item, 0x0028, 0x3002);
    long long entries = 0, first = 0, bits = 0;
    size_t a = desc.find('\\'), b = a == std::string::npos ? a : desc.find('\\', a + 1);
    if (b == std::string::npos || !parse_int(desc.substr(0, a), 0, 65535, &entries) ||
        !parse_int(desc.substr(a + 1, b - a - 1), -32768, 65535, &first) ||
        !parse_int(desc.substr(b + 1), 1, 16, &bits))
        return;
    if (entries == 0) entries = 65536;  /* PS3.3 C.11.1.1: 0 means 2^16 */
    /* The first mapped value is US or SS as the pixel data: a signed one may be read as US. */
    if (pixel_representation == 1 && first > 32767) first -= 65536;
    gdcm::Tag data_tag(0x0028, 0x3006);
    if (!item.FindDataElement(data_tag)) return;
    const gdcm::ByteValue *bv = item.GetDataElement(data_tag).GetByteValue();
    if (!bv || bv->GetLength() < (uint32_t)entries * 2) return;
    uint16_t *data = (uint16_t *)std::malloc((size_t)entries * sizeof(uint16_t));
    if (!data) return;
    const uint8_t *src = reinterpret_cast<const uint8_t *>(bv->GetPointer());
    for (long long i = 0; i < entries; i++)   /* little endian as stored by GDCM */
        data[i] = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
    lut->n = (int)entries;
    lut->first = first;
    lut->bits = (int)bits;
    lut->data = data;
}

void fill_header(const gdcm::File &file, dicom_header *h)
{
    const gdcm::DataSet &ds = file.GetDataSet();
    auto text = [&](uint16_t g, uint16_t e) { return text_of(file, ds, g, e); };

    copy_text(h->transfer_syntax, sizeof h->transfer_syntax,
              file.GetHeader().GetDataSetTransferSyntax().GetString()
                  ? file.GetHeader().GetDataSetTransferSyntax().GetString()
                  : "");
    std::string ts = h->transfer_syntax;
    while (!ts.empty() && (ts.back() == ' ' || ts.back() == '\0')) ts.pop_back();
    copy_text(h->transfer_syntax, sizeof h->transfer_syntax, ts);

    h->rows = int_or(text(0x0028, 0x0010), 0, 65535, -1);
    h->columns = int_or(text(0x0028, 0x0011), 0, 65535, -1);
    h->samples_per_pixel = int_or(text(0x0028, 0x0002), 0, 65535, 1);
    h->frames = int_or(first_value(text(0x0028, 0x0008)), 0, 1 << 30, 1);
    if (h->frames == 0) h->frames = 1;
    h->bits_allocated = int_or(text(0x0028, 0x0100), 0, 65535, -1);
    h->bits_stored = int_or(text(0x0028, 0x0101), 0, 65535, h->bits_allocated);
    h->high_bit = int_or(text(0x0028, 0x0102), 0, 65535, h->bits_stored - 1);
    h->pixel_representation = int_or(text(0x0028, 0x0103), 0, 1, 0);
    h->planar_configuration = int_or(text(0x0028, 0x0006), 0, 65535, 0);  /* checked below */
    copy_text(h->photometric, sizeof h->photometric, text(0x0028, 0x0004));
    copy_text(h->presentation_lut_shape, sizeof h->presentation_lut_shape,
              text(0x2050, 0x0020));

    h->has_rescale = parse_double(text(0x0028, 0x1053), &h->rescale_slope) &&
                     parse_double(text(0x0028, 0x1052), &h->rescale_intercept);
    if (!h->has_rescale) {
        h->rescale_slope = 1;
        h->rescale_intercept = 0;
    }
    long long v = 0;
    h->has_padding = parse_int(text(0x0028, 0x0120), -32768, 65535, &v);
    if (h->has_padding) h->padding_value = v;
    h->has_padding_limit = h->has_padding && parse_int(text(0x0028, 0x0121), -32768, 65535, &v);
    if (h->has_padding_limit) h->padding_limit = v;
    if (h->pixel_representation == 1) {   /* US/SS: a signed value may have been read as US */
        if (h->has_padding && h->padding_value > 32767) h->padding_value -= 65536;
        if (h->has_padding_limit && h->padding_limit > 32767) h->padding_limit -= 65536;
    }
    h->has_window = parse_double(first_value(text(0x0028, 0x1050)), &h->window_center) &&
                    parse_double(first_value(text(0x0028, 0x1051)), &h->window_width);
    copy_text(h->voi_function, sizeof h->voi_function, text(0x0028, 0x1056));
    read_lut(file, ds, 0x3000, h->pixel_representation, &h->modality_lut);
    read_lut(file, ds, 0x3010, h->pixel_representation, &h->voi_lut);

    raddino_dicom_info *info = &h->info;
    copy_text(info->sop_instance_uid, sizeof info->sop_instance_uid, text(0x0008, 0x0018));
    copy_text(info->study_instance_uid, sizeof info->study_instance_uid, text(0x0020, 0x000d));
    copy_text(info->series_instance_uid, sizeof info->series_instance_uid,
              text(0x0020, 0x000e));
    copy_text(info->modality, sizeof info->modality, text(0x0008, 0x0060));
    copy_text(info->view_position, sizeof info->view_position, text(0x0018, 0x5101));
    copy_text(info->body_part_examined, sizeof info->body_part_examined, text(0x0018, 0x0015));
    copy_text(info->photometric_interpretation, sizeof info->photometric_interpretation,
              h->photometric);
    copy_text(info->transfer_syntax_uid, sizeof info->transfer_syntax_uid, h->transfer_syntax);
    info->rows = h->rows < 0 ? 0 : h->rows;
    info->columns = h->columns < 0 ? 0 : h->columns;
    info->frames = h->frames;
    parse_pair(text(0x0028, 0x0030), info->pixel_spacing);
    parse_pair(text(0x0018, 0x1164), info->imager_pixel_spacing);
    copy_text(h->patient_id, sizeof h->patient_id, text(0x0010, 0x0020));
}

/* The bytes GDCM gets to read the header: up to the pixel data element, which ReadUpToTag
 * would otherwise still parse (a fragment it misreads there made it allocate 800 MB). */
size_t header_bytes(size_t size, const dicom_layout *l)
{
    return l->pixel_data_element_at ? l->pixel_data_element_at : size;
}

/* Parses everything up to the pixel data (the pixel data itself is not read). */
raddino_status read_header_stream(const uint8_t *data, size_t size, const char *name,
                                  dicom_header *out)
{
    memory_buffer buf(data, size);
    std::istream is(&buf);
    gdcm::Reader reader;
    reader.SetStream(is);
    if (!reader.ReadUpToTag(TAG_PIXEL_DATA))
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: cannot parse the data set "
                            "(truncated or malformed)", name);
    fill_header(reader.GetFile(), out);
    return status_ok();
}

/* The header checks every decode needs, before any pixel is decoded. */
raddino_status check_header(const dicom_header *h, const char *name, uint64_t max_pixels)
{
    if (h->rows <= 0 || h->columns <= 0)
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: missing or zero Rows/Columns", name);
    uint64_t limit = max_pixels ? max_pixels : RADDINO_DEFAULT_MAX_PIXELS;
    uint64_t per_frame = (uint64_t)h->rows * (uint64_t)h->columns;
    uint64_t all = per_frame * (uint64_t)h->frames;
    if (all > limit)
        return status_error(RADDINO_ERR_TOO_LARGE,
                            "%s: DICOM image is %dx%d x %d frame(s) = %llu pixels, over the pixel "
                            "limit of %llu",
                            name, h->columns, h->rows, h->frames, (unsigned long long)all,
                            (unsigned long long)limit);
    if (h->bits_allocated != 1 && h->bits_allocated != 8 && h->bits_allocated != 16 &&
        h->bits_allocated != 32)
        return status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: Bits Allocated %d not supported "
                            "(1, 8, 16 or 32)", name, h->bits_allocated);
    if (h->bits_stored < 1 || h->bits_stored > h->bits_allocated || h->high_bit < 0 ||
        h->high_bit >= h->bits_allocated || h->high_bit + 1 < h->bits_stored)
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: inconsistent Bits Stored %d / High "
                            "Bit %d / Bits Allocated %d", name, h->bits_stored, h->high_bit,
                            h->bits_allocated);
    if (h->samples_per_pixel != 1 && h->samples_per_pixel != 3)
        return status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: %d samples per pixel not "
                            "supported (1 or 3)", name, h->samples_per_pixel);
    if (h->bits_allocated == 1 && h->samples_per_pixel != 1)
        return status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: 1-bit samples with %d samples "
                            "per pixel (1-bit images are greyscale)", name, h->samples_per_pixel);
    /* GDCM's image reader asserts (aborts) on a palette image without its tables, and its raw
     * codec on YBR_ICT / YBR_RCT, which only JPEG 2000 streams can be: neither is an X-ray. */
    /* GDCM takes the first of its names that the value is a prefix of ("YBR_IC" is YBR_ICT). */
    static const char *const gdcm_names[] = {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB",
                                             "HSV", "ARGB", "CMYK", "YBR_FULL", "YBR_FULL_422",
                                             "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT",
                                             "YBR_RCT"};
    std::string pi = h->photometric;
    while (!pi.empty() && pi.back() == ' ') pi.pop_back();
    for (const char *known : gdcm_names)
        if (!pi.empty() && !strncmp(known, pi.c_str(), pi.size())) {
            pi = known;
            break;
        }
    bool j2k = !strncmp(h->transfer_syntax, "1.2.840.10008.1.2.4.9", 21) ||
               !strncmp(h->transfer_syntax, "1.2.840.10008.1.2.4.20", 22);
    if (pi == "PALETTE COLOR" || ((pi == "YBR_ICT" || pi == "YBR_RCT") && !j2k))
        return status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: photometric interpretation "
                            "'%s' not supported with transfer syntax %s", name, pi.c_str(),
                            h->transfer_syntax);
    /* GDCM's image reader asserts (aborts) on any other value. */
    if (h->planar_configuration > 1)
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: Planar Configuration %d (0 or 1)",
                            name, h->planar_configuration);
    return status_ok();
}

/* Sample precision of a lossy JPEG (SOF0 baseline, SOF1 extended, SOF2 progressive) at the start
 * of the first fragment; 0 when it is not one (lossless SOF3, JPEG-LS, or unreadable). */
int lossy_jpeg_precision(const gdcm::DataElement &pixel_data)
{
    const gdcm::SequenceOfFragments *sf = pixel_data.GetSequenceOfFragments();
    if (!sf || sf->GetNumberOfFragments() < 1) return 0;
    const gdcm::ByteValue *bv = sf->GetFragment(0).GetByteValue();
    if (!bv) return 0;
    const uint8_t *p = reinterpret_cast<const uint8_t *>(bv->GetPointer());
    size_t n = bv->GetLength(), at = 2;
    if (n < 4 || p[0] != 0xFF || p[1] != 0xD8) return 0;
    while (at + 4 < n) {
        if (p[at] != 0xFF) return 0;
        uint8_t marker = p[at + 1];
        if (marker == 0xFF) {   /* fill byte */
            at++;
            continue;
        }
        size_t len = (size_t)p[at + 2] << 8 | p[at + 3];
        if (marker == 0xC0 || marker == 0xC1 || marker == 0xC2) return p[at + 4];
        if (marker == 0xC3 || marker == 0xDA || len < 2) return 0;
        at += 2 + len;
    }
    return 0;
}

/* Width and height the codestream of the first fragment declares: JPEG (any SOF) and JPEG-LS
 * (SOF55) frame headers, JPEG 2000 SIZ. false when there is none to read (RLE, native). GDCM's
 * codecs write what the stream holds into a buffer sized from Rows x Columns, so a stream larger
 * than the header says would overflow it: the sizes must agree before decoding. j2k_components:
 * the component count of a JPEG 2000 SIZ (GDCM's codec asserts when it is not Samples per
 * Pixel), 0 for other streams. */
bool codestream_size(const gdcm::DataElement &pixel_data, uint32_t *w, uint32_t *h,
                     uint32_t *j2k_components)
{
    *j2k_components = 0;
    const gdcm::SequenceOfFragments *sf = pixel_data.GetSequenceOfFragments();
    if (!sf || sf->GetNumberOfFragments() < 1) return false;
    const gdcm::ByteValue *bv = sf->GetFragment(0).GetByteValue();
    if (!bv) return false;
    const uint8_t *p = reinterpret_cast<const uint8_t *>(bv->GetPointer());
    size_t n = bv->GetLength();
    auto be16 = [&](size_t at) { return (uint32_t)p[at] << 8 | p[at + 1]; };
    auto be32 = [&](size_t at) { return be16(at) << 16 | be16(at + 2); };
    /* JPEG 2000: the codestream (maybe inside a JP2 file) starts with SOC FF4F then SIZ FF51. */
    for (size_t at = 0; at + 24 <= n && at < 4096; at++) {
        if (p[at] == 0xFF && p[at + 1] == 0x4F && p[at + 2] == 0xFF && p[at + 3] == 0x51) {
            uint32_t xs = be32(at + 8), ys = be32(at + 12), xo = be32(at + 16), yo = be32(at + 20);
            if (at + 42 <= n) *j2k_components = be16(at + 40);    /* Csiz, after YTOsiz */
            if (xo > xs || yo > ys) return *w = *h = 0, true;
            *w = xs - xo;
            *h = ys - yo;
            return true;
        }
    }
    if (n < 4 || p[0] != 0xFF || p[1] != 0xD8) return false;
    size_t at = 2;
    while (at + 9 <= n) {
        if (p[at] != 0xFF) return *w = *h = 0, true;   /* broken marker chain */
        uint8_t m = p[at + 1];
        if (m == 0xFF) {
            at++;
            continue;
        }
        bool sof = (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) || m == 0xF7;
        if (sof) {
            *h = be16(at + 5);
            *w = be16(at + 7);
            return true;
        }
        if (m == 0xDA) break;   /* a scan before any frame header */
        at += 2 + be16(at + 2);
    }
    *w = *h = 0;
    return true;
}

/* The decoded pixel data of every frame, with the photometric and planar layout the codec
 * produced. */
struct decoded {
    std::vector<char> bytes;
    std::string photometric;
    int planar;
};

/* One of GDCM's codecs on the pixel data, set up from the header (what GDCM's image reader
 * would do), without the image reader. */
template <class Codec>
bool decode_with(Codec &codec, const gdcm::DataElement &pixel_data, const dicom_header *h,
                 const gdcm::PixelFormat &pf, decoded *out)
{
    codec.SetNumberOfDimensions(h->frames > 1 ? 3 : 2);
    unsigned int dims[3] = {(unsigned)h->columns, (unsigned)h->rows, (unsigned)h->frames};
    codec.SetDimensions(dims);
    gdcm::PhotometricInterpretation pi =
        gdcm::PhotometricInterpretation::GetPIType(h->photometric);
    codec.SetPhotometricInterpretation(pi);
    codec.SetPlanarConfiguration((unsigned)h->planar_configuration);
    codec.SetPixelFormat(pf);   /* last: JPEGCodec makes its inner codec from the settings */
    gdcm::DataElement result;
    if (!codec.Decode(pixel_data, result)) return false;
    const gdcm::ByteValue *bv = result.GetByteValue();
    if (!bv) return false;
    out->bytes.assign(bv->GetPointer(), bv->GetPointer() + bv->GetLength());
    const char *pi_out = gdcm::PhotometricInterpretation::GetPIString(
        codec.GetPhotometricInterpretation());
    out->photometric = pi_out ? pi_out : h->photometric;
    out->planar = (int)codec.GetPlanarConfiguration();
    return true;
}

/* GDCM picks its 8-, 12- or 16-bit libjpeg from Bits Allocated; a 12-bit lossy JPEG in 16-bit
 * words first goes to the 16-bit one, which prints "Unsupported JPEG data precision 12" on
 * stderr (libjpeg's own output_message, which gdcm::Trace does not control) before GDCM retries.
 * Here the codec is chosen from the JPEG's own precision, so nothing is printed. */
bool decode_lossy_jpeg(const gdcm::File &file, const dicom_header *h, int precision,
                       decoded *out)
{
    gdcm::JPEGCodec codec;
    gdcm::PixelFormat pf((unsigned short)h->samples_per_pixel, (unsigned short)precision,
                         (unsigned short)precision, (unsigned short)(precision - 1),
                         (unsigned short)h->pixel_representation);
    return decode_with(codec, file.GetDataSet().GetDataElement(TAG_PIXEL_DATA), h, pf, out);
}

/* The codec of the transfer syntax, for a file GDCM reads as a copy naming another syntax
 * (syntax_copy): its image reader would take the pixel data for native. false: not a syntax
 * decoded this way. */
bool decode_by_syntax(const gdcm::File &file, const dicom_header *h, decoded *out,
                      bool *known)
{
    const gdcm::DataElement &px = file.GetDataSet().GetDataElement(TAG_PIXEL_DATA);
    gdcm::PixelFormat pf((unsigned short)h->samples_per_pixel,
                         (unsigned short)h->bits_allocated, (unsigned short)h->bits_stored,
                         (unsigned short)h->high_bit, (unsigned short)h->pixel_representation);
    std::string ts = h->transfer_syntax;
    *known = true;
    /* The codecs assert (abort) on a photometric interpretation GDCM does not know. */
    if (gdcm::PhotometricInterpretation::GetPIType(h->photometric) ==
        gdcm::PhotometricInterpretation::PI_END)
        return false;
    if (ts == "1.2.840.10008.1.2.4.50" || ts == "1.2.840.10008.1.2.4.51" ||
        ts == "1.2.840.10008.1.2.4.57" || ts == "1.2.840.10008.1.2.4.70") {
        gdcm::JPEGCodec codec;
        return decode_with(codec, px, h, pf, out);
    }
    if (ts == "1.2.840.10008.1.2.4.80" || ts == "1.2.840.10008.1.2.4.81") {
        gdcm::JPEGLSCodec codec;
        return decode_with(codec, px, h, pf, out);
    }
    if (ts == "1.2.840.10008.1.2.4.90" || ts == "1.2.840.10008.1.2.4.91") {
        gdcm::JPEG2000Codec codec;
        return decode_with(codec, px, h, pf, out);
    }
    *known = false;
    return false;
}

bool decode_with_image_reader(const uint8_t *data, size_t size, const dicom_header *h,
                              decoded *out, bool *size_mismatch)
{
    memory_buffer buf(data, size);
    std::istream is(&buf);
    gdcm::ImageReader reader;
    reader.SetStream(is);
    if (!reader.Read()) return false;
    const gdcm::Image &image = reader.GetImage();
    const unsigned int *dims = image.GetDimensions();
    uint64_t frames = image.GetNumberOfDimensions() >= 3 ? dims[2] : 1;
    const gdcm::PixelFormat &pf = image.GetPixelFormat();
    if (dims[0] != (unsigned)h->columns || dims[1] != (unsigned)h->rows ||
        frames != (uint64_t)h->frames || pf.GetSamplesPerPixel() != (unsigned)h->samples_per_pixel ||
        pf.GetBitsAllocated() != (unsigned)h->bits_allocated) {
        *size_mismatch = true;
        return false;
    }
    out->bytes.resize(image.GetBufferLength());
    if (!image.GetBuffer(out->bytes.data())) return false;
    /* GDCM's codecs may change the photometric (JPEG YBR -> RGB) and the planar layout. */
    const char *pi = gdcm::PhotometricInterpretation::GetPIString(
        image.GetPhotometricInterpretation());
    out->photometric = pi ? pi : h->photometric;
    out->planar = (int)image.GetPlanarConfiguration();
    return true;
}

/* Native pixel data, read as pydicom's numpy reader reads it: samples of 8 bits as stored,
 * wider ones byte-swapped under big endian, 1-bit samples unpacked least significant bit first
 * (to one byte each: the header then says 8 bits allocated, 1 stored), YBR_FULL_422 kept
 * subsampled (two samples per pixel). */
raddino_status native_frame(const uint8_t *data, const dicom_layout *l, const char *name,
                            int frame, dicom_header *h, dicom_frame *out)
{
    uint64_t pixels = (uint64_t)h->rows * (uint64_t)h->columns;
    bool ybr422 = std::strcmp(h->photometric, "YBR_FULL_422") == 0 && h->samples_per_pixel == 3;
    if (ybr422 && h->columns % 2)
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: YBR_FULL_422 with an odd number of "
                            "columns (%d)", name, h->columns);
    uint64_t samples = ybr422 ? pixels * 2 : pixels * (uint64_t)h->samples_per_pixel;
    uint64_t frame_bits = samples * (uint64_t)h->bits_allocated;
    if (frame_bits > (UINT64_MAX - 7) / (uint64_t)h->frames)   /* only past a huge pixel cap */
        return status_error(RADDINO_ERR_TOO_LARGE, "%s: DICOM: %d frames of %dx%d are too many "
                            "bits", name, h->frames, h->columns, h->rows);
    uint64_t needed = (frame_bits * (uint64_t)h->frames + 7) / 8;
    if (l->pixel_data_len < needed)
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: pixel data has %zu bytes, %dx%d x %d "
                            "frame(s) need %llu", name, l->pixel_data_len, h->columns, h->rows,
                            h->frames, (unsigned long long)needed);
    const uint8_t *src = data + l->pixel_data_at;
    size_t bytes = h->bits_allocated == 1 ? (size_t)samples : (size_t)(frame_bits / 8);
    out->pixels = (uint8_t *)std::malloc(bytes);
    if (!out->pixels)
        return status_error(RADDINO_ERR_NOMEM, "%s: out of memory for %dx%d pixels", name,
                            h->columns, h->rows);
    out->size = bytes;
    if (h->bits_allocated == 1) {
        uint64_t bit = (uint64_t)frame * frame_bits;   /* frames are not byte-aligned */
        for (size_t i = 0; i < bytes; i++, bit++)
            out->pixels[i] = (uint8_t)(src[bit >> 3] >> (bit & 7) & 1);
        h->bits_allocated = 8;
    } else {
        std::memcpy(out->pixels, src + (size_t)frame * bytes, bytes);
        size_t word = (size_t)h->bits_allocated / 8;
        if (l->big_endian && word > 1)
            for (size_t i = 0; i + word <= bytes; i += word)
                for (size_t a = i, b = i + word - 1; a < b; a++, b--)
                    std::swap(out->pixels[a], out->pixels[b]);
    }
    h->subsampled_422 = ybr422;
    return status_ok();
}

/* RLE Lossless: the frame's fragments, decoded by dicom_rle_decode (dicom_pixels.c says why not
 * GDCM's decoder). The result is planar. */
raddino_status rle_frame(const uint8_t *data, const dicom_layout *l, const char *name, int frame,
                         dicom_header *h, dicom_frame *out)
{
    if (h->bits_allocated == 1)
        return status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: RLE with Bits Allocated 1 (RLE "
                            "segments are whole bytes; pydicom refuses it too)", name);
    uint8_t *encoded;
    size_t encoded_size;
    raddino_status st =
        dicom_encapsulated_frame(data, l, name, h->frames, frame, true, &encoded, &encoded_size);
    if (st.code) return st;
    size_t bps = (size_t)h->bits_allocated / 8;
    size_t bytes = (size_t)h->rows * (size_t)h->columns * (size_t)h->samples_per_pixel * bps;
    out->pixels = (uint8_t *)std::malloc(bytes);
    if (!out->pixels) {
        std::free(encoded);
        return status_error(RADDINO_ERR_NOMEM, "%s: out of memory for %dx%d pixels", name,
                            h->columns, h->rows);
    }
    out->size = bytes;
    st = dicom_rle_decode(encoded, encoded_size, name, h->rows, h->columns, h->samples_per_pixel,
                          (int)bps, out->pixels);
    std::free(encoded);
    h->planar_configuration = h->samples_per_pixel > 1 ? 1 : 0;
    return st;
}

/* The transfer syntaxes of native (not encapsulated) pixel data; "" when the file meta
 * information does not say (GDCM and pydicom then guess from the data set). */
bool native_syntax(const char *ts)
{
    return !*ts || !std::strcmp(ts, "1.2.840.10008.1.2") ||
           !std::strcmp(ts, "1.2.840.10008.1.2.1") || !std::strcmp(ts, "1.2.840.10008.1.2.2");
}

/* GDCM's image reader asserts (aborts) when a Frame Increment Pointer is present and Number of
 * Frames is not (it reads the absent attribute as if it were there), as RT Dose files often
 * are. A copy of the file where that element, in place and at the same length, becomes Number
 * of Frames "1" (what its absence means) reads the same otherwise. */
bool patch_frame_pointer(const uint8_t *data, size_t size, const dicom_layout *l,
                         std::vector<uint8_t> *copy)
{
    if (!l->frame_pointer_at || l->has_frames) return true;
    if (l->frame_pointer_header != 8 || l->frame_pointer_len == 0 || l->big_endian) return false;
    copy->assign(data, data + size);
    uint8_t *e = copy->data() + l->frame_pointer_at;
    e[0] = 0x28, e[1] = 0x00, e[2] = 0x08, e[3] = 0x00;
    if (!l->implicit) e[4] = 'I', e[5] = 'S';
    std::memset(e + 8, ' ', l->frame_pointer_len);
    e[8] = '1';
    return true;
}

/* A greyscale JPEG 2000 or JPEG-LS frame's joined fragments, for dicom_direct.c; data NULL:
 * none. */
struct frame_stream {
    const uint8_t *data;
    size_t size;
    bool jpeg_ls;   /* else JPEG 2000 */
};

/* What the codec path hands back besides the pixels (see codec_decode_isolated). */
struct codec_result {
    raddino_status st;
    char photometric[24];   /* as the codec left it (JPEG YBR -> RGB) */
    int planar;
    int done;               /* the child got to the end (set last) */
};

/* JPEG, JPEG-LS and JPEG 2000 through GDCM: frame `frame` into pixels (frame_bytes), or a
 * status. Runs in the child process of codec_decode_isolated. */
void codec_decode(const uint8_t *data, size_t size, const char *name, int frame,
                  const dicom_header *h, bool by_syntax, const frame_stream *direct,
                  size_t frame_bytes, uint8_t *pixels, codec_result *r)
{
    if (direct->data &&
        (direct->jpeg_ls ? dicom_jls_decode : dicom_j2k_decode)(
            direct->data, direct->size, h, pixels, frame_bytes) == DICOM_DIRECT_DECODED) {
        copy_text(r->photometric, sizeof r->photometric, h->photometric);
        r->planar = 0;
        r->st = status_ok();
        return;
    }
    /* The whole data set, pixel data as stored (nothing decoded yet). */
    memory_buffer buf(data, size);
    std::istream is(&buf);
    gdcm::Reader reader;
    reader.SetStream(is);
    bool parsed = reader.Read();
    const gdcm::DataSet &ds = reader.GetFile().GetDataSet();
    if (!parsed || !ds.FindDataElement(TAG_PIXEL_DATA) ||
        ds.GetDataElement(TAG_PIXEL_DATA).IsEmpty()) {
        r->st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: cannot read the pixel data "
                             "(truncated or malformed)", name);
        return;
    }
    uint32_t stream_w, stream_h, components;
    bool sized = codestream_size(ds.GetDataElement(TAG_PIXEL_DATA), &stream_w, &stream_h,
                                 &components);
    if (sized && (stream_w != (uint32_t)h->columns || stream_h != (uint32_t)h->rows)) {
        r->st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: the codestream in the pixel data "
                             "declares %ux%u, the header says %dx%d (a damaged stream)", name,
                             stream_w, stream_h, h->columns, h->rows);
        return;
    }
    if (sized && components && components != (uint32_t)h->samples_per_pixel) {
        r->st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: the JPEG 2000 codestream has %u "
                             "component%s, the header says %d samples per pixel", name,
                             components, components == 1 ? "" : "s", h->samples_per_pixel);
        return;
    }
    /* GDCM's codec also asserts on a count other than the one of the photometric
     * interpretation as it reads it. */
    gdcm::PhotometricInterpretation header_pi =
        gdcm::PhotometricInterpretation::GetPIType(h->photometric);
    if (sized && components && header_pi != gdcm::PhotometricInterpretation::PI_END &&
        header_pi.GetSamplesPerPixel() != components) {
        r->st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: the JPEG 2000 codestream has %u "
                             "component%s, photometric interpretation '%s' has %u", name,
                             components, components == 1 ? "" : "s", h->photometric,
                             (unsigned)header_pi.GetSamplesPerPixel());
        return;
    }
    decoded d;
    bool ok, size_mismatch = false, known = true;
    int precision = lossy_jpeg_precision(ds.GetDataElement(TAG_PIXEL_DATA));
    if (precision >= 2 && precision <= 12 && precision < h->bits_allocated)
        ok = decode_lossy_jpeg(reader.GetFile(), h, precision, &d);
    else if (by_syntax)
        ok = decode_by_syntax(reader.GetFile(), h, &d, &known);
    else
        ok = decode_with_image_reader(data, size, h, &d, &size_mismatch);
    if (!known) {
        r->st = status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: transfer syntax %s with a "
                             "data set in the other VR encoding", name, h->transfer_syntax);
        return;
    }
    if (size_mismatch) {
        r->st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: image size or pixel format "
                             "disagrees with the header", name);
        return;
    }
    if (!ok) {
        r->st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: cannot decode the pixel data "
                             "(transfer syntax %s; truncated, malformed or unsupported)", name,
                             h->transfer_syntax);
        return;
    }
    size_t expected = frame_bytes * (size_t)h->frames;
    if (d.bytes.size() != expected) {
        r->st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: decoded %zu bytes, expected %zu",
                             name, d.bytes.size(), expected);
        return;
    }
    std::memcpy(pixels, d.bytes.data() + (size_t)frame * frame_bytes, frame_bytes);
    std::string pi = d.photometric;
    while (!pi.empty() && pi.back() == ' ') pi.pop_back();
    copy_text(r->photometric, sizeof r->photometric, pi);
    r->planar = d.planar;
    r->st = status_ok();
}

void codec_decode_catching(const uint8_t *data, size_t size, const char *name, int frame,
                           const dicom_header *h, bool by_syntax, const frame_stream *direct,
                           size_t frame_bytes, uint8_t *pixels, codec_result *r)
{
    try {
        codec_decode(data, size, name, frame, h, by_syntax, direct, frame_bytes, pixels, r);
    } catch (const std::bad_alloc &) {
        r->st = status_error(RADDINO_ERR_NOMEM, "%s: DICOM: out of memory", name);
    } catch (const std::exception &e) {
        r->st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: malformed file (%.200s)", name,
                             e.what());
    } catch (...) {
        r->st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: malformed file", name);
    }
}

#ifndef RADDINO_DICOM_NO_FORK
/* Seconds a codec child may take: a minute, and a second more per MB of output (a 200-megapixel
 * 16-bit frame, 400 MB, gets about 8 minutes; real radiographs decode in about a second). A
 * child that takes longer has hung (a lock some other thread held at the fork, a codec loop)
 * and is killed, so that no caller waits for ever. */
static int codec_time_limit(size_t frame_bytes)
{
    const char *test_limit = getenv("RADDINO_TEST_DICOM_CODEC_LIMIT_S");   /* tests only */
    if (test_limit && atoi(test_limit) > 0) return atoi(test_limit);
    size_t extra = frame_bytes / 1000000;
    return 60 + (int)(extra > 3600 ? 3600 : extra);
}

/* Waits until the child has exited or limit_s seconds have passed; 1 when it exited. The child
 * is not reaped here. A pidfd (Linux 5.3) wakes poll() when the child ends; without one, the
 * exit is looked for every 10 ms. */
static bool wait_for_child(pid_t pid, int limit_s)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long fd = syscall(SYS_pidfd_open, pid, 0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left_ms = (long long)limit_s * 1000 - ((now.tv_sec - start.tv_sec) * 1000LL +
                                                         (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left_ms <= 0) break;
        if (fd >= 0) {
            struct pollfd p = {(int)fd, POLLIN, 0};
            int r = poll(&p, 1, left_ms > 1000 ? 1000 : (int)left_ms);
            if (r > 0) {
                close((int)fd);
                return true;
            }
            if (r < 0 && errno != EINTR) {
                close((int)fd);
                fd = -1;
            }
        } else {
            siginfo_t info;
            std::memset(&info, 0, sizeof info);
            int r = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT);
            if (r == 0 && info.si_pid == pid) return true;
            if (r < 0 && errno != EINTR) return true;   /* not ours to wait for: waitpid says */
            struct timespec tick = {0, 10000000};
            nanosleep(&tick, nullptr);
        }
    }
    if (fd >= 0) close((int)fd);
    return false;
}
#endif

/* The codecs we do not own (GDCM's IJG JPEG, CharLS, OpenJPEG) run in a child process. Debian
 * builds GDCM with its assert()s on, and damaged compressed streams reach some of them: what we
 * can check before calling GDCM we check (dicom_check_structure, check_header, the codestream's
 * size, the JPEG header), but a codec's internal state cannot be validated from outside, so an
 * abort there must not take the caller with it (raddino embed, search, serve, any program using
 * the library). The child (fork: no exec, it shares the parent's pages copy-on-write) decodes
 * into a shared anonymous mapping and exits (the frame then stays in that mapping:
 * dicom_frame.mapping); a child killed by a signal becomes a refusal.
 * Cost: one fork per compressed DICOM image, about a millisecond against tens to hundreds of
 * milliseconds of decoding (bench figures in the README); native and RLE data, which we decode
 * ourselves, never fork. Only the forking thread exists in the child: GDCM and the codecs take
 * no lock another thread of ours could hold there, and malloc is fork-safe in glibc; should a
 * child hang all the same, it is killed after codec_time_limit() and the file refused.
 * AddressSanitizer's allocator is not fork-safe with threads (a child of a threaded parent can
 * block for ever on its locks), so sanitizer builds decode in process (CMakeLists.txt).
 * Built with RADDINO_DICOM_NO_FORK (the fuzz build: the fuzzer must see the crash itself),
 * the codecs run in process. Testing hooks: RADDINO_TEST_DICOM_CODEC_ABORT=1 makes the child
 * abort() before decoding, RADDINO_TEST_DICOM_CODEC_HANG=1 makes it wait for ever, and
 * RADDINO_TEST_DICOM_CODEC_LIMIT_S=N sets the time limit. */
raddino_status codec_decode_isolated(const uint8_t *data, size_t size, const char *name,
                                     int frame, const dicom_header *h, bool by_syntax,
                                     const frame_stream *direct, size_t frame_bytes,
                                     dicom_frame *pixels, codec_result *out)
{
#ifdef RADDINO_DICOM_NO_FORK
    std::memset(out, 0, sizeof *out);
    pixels->pixels = (uint8_t *)std::malloc(frame_bytes);
    if (!pixels->pixels)
        return status_error(RADDINO_ERR_NOMEM, "%s: out of memory for %dx%d pixels", name,
                            h->columns, h->rows);
    pixels->size = frame_bytes;
    codec_decode_catching(data, size, name, frame, h, by_syntax, direct, frame_bytes,
                          pixels->pixels, out);
    return out->st;
#else
    size_t header = (sizeof(codec_result) + 63) / 64 * 64;
    size_t total = header + frame_bytes;
    void *mem = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return status_error(RADDINO_ERR_NOMEM, "%s: DICOM: cannot map %zu bytes for the decoder",
                            name, total);
    codec_result *shared = static_cast<codec_result *>(mem);
    uint8_t *shared_pixels = static_cast<uint8_t *>(mem) + header;
    pid_t pid = fork();
    if (pid < 0) {
        munmap(mem, total);
        return status_error(RADDINO_ERR_NOMEM, "%s: DICOM: cannot start the decoder process "
                            "(%s)", name, std::strerror(errno));
    }
    if (pid == 0) {
        /* The child: what the codecs print (libjpeg warnings, an assert's text) goes nowhere,
         * so the caller's error stays one line. _exit: no atexit handler, no stdio flush of
         * the parent's buffers. */
        int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null_fd >= 0) dup2(null_fd, STDERR_FILENO);
        /* Testing hook: a codec that aborts, as GDCM's do on some damaged streams. */
        const char *hook = getenv("RADDINO_TEST_DICOM_CODEC_ABORT");
        if (hook && *hook) abort();
        /* Testing hook: a codec that never returns (a deadlock). */
        const char *hang = getenv("RADDINO_TEST_DICOM_CODEC_HANG");
        if (hang && *hang)
            for (;;) pause();
        codec_decode_catching(data, size, name, frame, h, by_syntax, direct, frame_bytes,
                              shared_pixels, shared);
        __atomic_store_n(&shared->done, 1, __ATOMIC_RELEASE);
        _exit(0);
    }
    int status = 0;
    int limit_s = codec_time_limit(frame_bytes);
    bool timed_out = !wait_for_child(pid, limit_s);
    if (timed_out) kill(pid, SIGKILL);
    pid_t waited;
    while ((waited = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {}
    bool done = !timed_out && __atomic_load_n(&shared->done, __ATOMIC_ACQUIRE) != 0;
    raddino_status st;
    if (timed_out)
        st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: the %s decoder did not finish within "
                          "%d s; stopped", name, h->transfer_syntax, limit_s);
    else if (waited == pid && WIFSIGNALED(status))
        st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: the %s decoder died on this file "
                          "(signal %d, %s): damaged or unsupported pixel data", name,
                          h->transfer_syntax, WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (!done)   /* exited early, or not our child to wait for (SIGCHLD ignored...) */
        st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: the decoder process ended without a "
                          "result", name);
    else
        st = shared->st;
    if (st.code) {
        munmap(mem, total);
        return st;
    }
    /* The frame stays where the child wrote it (no copy: a 2000x2000 16-bit frame is 8 MB
     * whose copy, and the page faults of a fresh buffer, cost a tenth of a decode). */
    *out = *shared;
    pixels->pixels = shared_pixels;
    pixels->size = frame_bytes;
    pixels->mapping = mem;
    pixels->mapping_size = total;
    return st;
#endif
}

void restore_syntax(dicom_header *h, const std::string &syntax);

/* A single-frame greyscale JPEG 2000 or JPEG-LS image's fragments, joined for dicom_direct.c
 * (which leaves anything but the plain case to GDCM); returns the buffer to free, NULL (direct
 * left empty) for other images or when the fragments cannot be joined (GDCM then says why).
 * Testing hook: RADDINO_TEST_DICOM_GDCM_ONLY=1 leaves every image to GDCM. */
uint8_t *direct_frame(const uint8_t *data, const dicom_layout *l, const char *name,
                      const dicom_header *h, frame_stream *direct)
{
    const char *ts = h->transfer_syntax;
    bool j2k = !std::strcmp(ts, "1.2.840.10008.1.2.4.90") ||
               !std::strcmp(ts, "1.2.840.10008.1.2.4.91");
    bool jls = !std::strcmp(ts, "1.2.840.10008.1.2.4.80") ||
               !std::strcmp(ts, "1.2.840.10008.1.2.4.81");
    if ((!j2k && !jls) || h->frames != 1 || h->samples_per_pixel != 1) return nullptr;
    const char *hook = getenv("RADDINO_TEST_DICOM_GDCM_ONLY");
    if (hook && *hook) return nullptr;
    uint8_t *joined = nullptr;
    size_t joined_size = 0;
    raddino_status st = dicom_encapsulated_frame(data, l, name, 1, 0, false, &joined,
                                                 &joined_size);
    if (st.code) return nullptr;
    direct->data = joined;
    direct->size = joined_size;
    direct->jpeg_ls = jls;
    return joined;
}

/* syntax: the transfer syntax the file names when GDCM reads a copy naming another (see
 * syntax_copy), else "". */
raddino_status decode_stream(const uint8_t *data, size_t size, const char *name,
                             uint64_t max_pixels, int frame, const dicom_layout *l,
                             const std::string &syntax, dicom_frame *out)
{
    dicom_header *h = &out->header;
    /* The header first: the pixel cap and the formats are checked before the pixel data is
     * even read. */
    raddino_status st = read_header_stream(data, header_bytes(size, l), name, h);
    if (st.code) return st;
    restore_syntax(h, syntax);
    st = check_header(h, name, max_pixels);
    if (st.code) return st;
    if (!l->pixel_data_at)
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM file has no pixel data (not an image)",
                            name);
    if (l->pixel_data_len == 0)
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: cannot read the pixel data "
                            "(truncated or malformed)", name);
    if (frame < 0 && h->frames > 1)
        return status_error(RADDINO_ERR_UNSUPPORTED,
                            "%s: DICOM: multi-frame image (%d frames); only single-frame images "
                            "are read (a program can pick one: raddino_load_options.frame)",
                            name, h->frames);
    if (frame < 0) frame = 0;
    if (frame >= h->frames)
        return status_error(RADDINO_ERR_ARGUMENT, "%s: DICOM: frame %d asked, the file has %d",
                            name, frame + 1, h->frames);
    if (l->encapsulated == native_syntax(h->transfer_syntax))
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: %s pixel data under transfer syntax "
                            "%s", name, l->encapsulated ? "encapsulated" : "native",
                            *h->transfer_syntax ? h->transfer_syntax : "(none)");
    /* Native and RLE data are decoded here, from the walked bytes: GDCM's image reader (and
     * the asserts of its header interpretation) is only used for the codecs we do not own. */
    if (!l->encapsulated) return native_frame(data, l, name, frame, h, out);
    if (!std::strcmp(h->transfer_syntax, "1.2.840.10008.1.2.5"))
        return rle_frame(data, l, name, frame, h, out);
    if (h->bits_allocated == 1)
        return status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: Bits Allocated 1 with transfer "
                            "syntax %s (1-bit images are read uncompressed only)", name,
                            h->transfer_syntax);

    std::vector<uint8_t> patched;
    if (!patch_frame_pointer(data, size, l, &patched))
        return status_error(RADDINO_ERR_UNSUPPORTED, "%s: DICOM: Frame Increment Pointer without "
                            "Number of Frames, in a form the decoder cannot read", name);
    if (!patched.empty()) {
        data = patched.data();
        size = patched.size();
    }
    size_t frame_bytes = (size_t)h->rows * (size_t)h->columns * (size_t)h->samples_per_pixel *
                         (size_t)(h->bits_allocated / 8);
    codec_result r;
    frame_stream direct = {nullptr, 0, false};
    uint8_t *joined = direct_frame(data, l, name, h, &direct);
    st = codec_decode_isolated(data, size, name, frame, h, !syntax.empty(), &direct, frame_bytes,
                               out, &r);
    std::free(joined);
    if (st.code) return st;
    copy_text(h->photometric, sizeof h->photometric, r.photometric);
    h->planar_configuration = r.planar;
    return status_ok();
}

/* A data set whose VR is not its transfer syntax's (dicom_layout.vr_mismatch), which pydicom
 * reads with a warning: GDCM cannot read explicit VR under the implicit syntax at all, and reads
 * implicit VR under an explicit one only after trying it as explicit, taking a value's first
 * bytes for a length and allocating that much (a gigabyte for a 1 kB file). So GDCM reads a copy
 * whose Transfer Syntax UID names the data set's real encoding (explicit or implicit VR little
 * endian; the meta group length changes by the difference); the header keeps the syntax the
 * file names, and compressed pixel data then goes straight to its codec (codec_decode). */
bool syntax_copy(const uint8_t *data, size_t size, const dicom_layout *l,
                 std::vector<uint8_t> *copy)
{
    if (!l->vr_mismatch) return true;
    if (!l->syntax_at || l->big_endian) return false;
    static const char explicit_le[] = "1.2.840.10008.1.2.1";   /* 19 + NUL: 20, even */
    static const char implicit_le[] = "1.2.840.10008.1.2";     /* 17 + NUL: 18 */
    const char *uid = l->implicit ? implicit_le : explicit_le;
    size_t new_len = l->implicit ? sizeof implicit_le : sizeof explicit_le;
    size_t value_at = l->syntax_at + 8, old_len = l->syntax_len;
    if (value_at > size || old_len > size - value_at) return false;
    copy->reserve(size + new_len);
    copy->assign(data, data + value_at);
    copy->insert(copy->end(), uid, uid + new_len);
    copy->insert(copy->end(), data + value_at + old_len, data + size);
    uint8_t *c = copy->data();
    c[l->syntax_at + 6] = (uint8_t)new_len;
    c[l->syntax_at + 7] = (uint8_t)(new_len >> 8);
    if (l->meta_group_length_at && l->meta_group_length_at + 4 <= l->syntax_at) {
        uint8_t *g = c + l->meta_group_length_at;
        uint32_t v = (uint32_t)g[0] | (uint32_t)g[1] << 8 | (uint32_t)g[2] << 16 |
                     (uint32_t)g[3] << 24;
        v = v - (uint32_t)old_len + (uint32_t)new_len;
        g[0] = (uint8_t)v, g[1] = (uint8_t)(v >> 8), g[2] = (uint8_t)(v >> 16),
        g[3] = (uint8_t)(v >> 24);
    }
    return true;
}

/* The file as GDCM will read it: the input, or a copy (syntax_copy) with its layout walked
 * again; *syntax gets the transfer syntax the file names ("" when no copy was made). */
raddino_status prepare(const uint8_t **data, size_t *size, const char *name,
                       std::vector<uint8_t> *copy, dicom_layout *l, std::string *syntax)
{
    raddino_status st = dicom_check_structure(*data, *size, name, l);
    if (st.code) return st;
    if (!syntax_copy(*data, *size, l, copy))
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: the data set is %s VR, and the file "
                            "meta information has no Transfer Syntax UID to say so", name,
                            l->implicit ? "implicit" : "explicit");
    if (copy->empty()) return status_ok();
    size_t n = l->syntax_len;
    syntax->assign(reinterpret_cast<const char *>(*data) + l->syntax_at + 8, n);
    while (!syntax->empty() && (syntax->back() == ' ' || syntax->back() == '\0'))
        syntax->pop_back();
    *data = copy->data();
    *size = copy->size();
    return dicom_check_structure(*data, *size, name, l);
}

void restore_syntax(dicom_header *h, const std::string &syntax)
{
    if (syntax.empty()) return;
    copy_text(h->transfer_syntax, sizeof h->transfer_syntax, syntax);
    copy_text(h->info.transfer_syntax_uid, sizeof h->info.transfer_syntax_uid, syntax);
}

}  // namespace

extern "C" raddino_status dicom_read_header(const uint8_t *data, size_t size, const char *name,
                                            dicom_header *out)
{
    std::memset(out, 0, sizeof *out);
    try {
        silence_gdcm();
        std::vector<uint8_t> copy;
        dicom_layout layout;
        std::string syntax;
        raddino_status st = prepare(&data, &size, name, &copy, &layout, &syntax);
        if (st.code) return st;
        st = read_header_stream(data, header_bytes(size, &layout), name, out);
        restore_syntax(out, syntax);
        if (st.code) dicom_header_free(out);
        return st;
    } catch (const std::bad_alloc &) {
        dicom_header_free(out);
        return status_error(RADDINO_ERR_NOMEM, "%s: DICOM: out of memory", name);
    } catch (const std::exception &e) {
        dicom_header_free(out);
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: malformed file (%.200s)", name,
                            e.what());
    } catch (...) {
        dicom_header_free(out);
        return status_error(RADDINO_ERR_FORMAT, "%s: DICOM: malformed file", name);
    }
}

extern "C" raddino_status dicom_decode_frame(const uint8_t *data, size_t size, const char *name,
                                             uint64_t max_pixels, int frame, dicom_frame *out)
{
    std::memset(out, 0, sizeof *out);
    raddino_status st;
    try {
        silence_gdcm();
        std::vector<uint8_t> copy;
        dicom_layout layout;
        std::string syntax;
        st = prepare(&data, &size, name, &copy, &layout, &syntax);
        if (!st.code)
            st = decode_stream(data, size, name, max_pixels, frame, &layout, syntax, out);
    } catch (const std::bad_alloc &) {
        st = status_error(RADDINO_ERR_NOMEM, "%s: DICOM: out of memory", name);
    } catch (const std::exception &e) {
        st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: malformed file (%.200s)", name,
                          e.what());
    } catch (...) {
        st = status_error(RADDINO_ERR_FORMAT, "%s: DICOM: malformed file", name);
    }
    if (st.code) dicom_frame_free(out);
    return st;
}

extern "C" void dicom_header_free(dicom_header *h)
{
    if (!h) return;
    std::free(h->modality_lut.data);
    std::free(h->voi_lut.data);
    h->modality_lut.data = h->voi_lut.data = nullptr;
    h->modality_lut.n = h->voi_lut.n = 0;
    /* The plain Patient ID never outlives the call that needed it. */
    volatile char *p = h->patient_id;
    for (size_t i = 0; i < sizeof h->patient_id; i++) p[i] = 0;
}

extern "C" void dicom_frame_free(dicom_frame *f)
{
    if (!f) return;
    dicom_header_free(&f->header);
    if (f->mapping) {
#ifndef RADDINO_DICOM_NO_FORK
        munmap(f->mapping, f->mapping_size);
#endif
    } else {
        std::free(f->pixels);
    }
    f->pixels = nullptr;
    f->size = 0;
    f->mapping = nullptr;
    f->mapping_size = 0;
}
