/* dicom_direct.c — greyscale JPEG 2000 and JPEG-LS frames straight through OpenJPEG and
 * CharLS.
 *
 * GDCM decodes both with the same libraries, but on the way it copies the frame's fragments
 * into a stream, the codestream into a buffer, the decoded samples into a byte value and that
 * into ours, and runs OpenJPEG with one thread per CPU. On 1841x1955 radiographs that was
 * 0.3-0.4 core-seconds in the decoder process (JPEG 2000; 0.2-0.3 for JPEG-LS) against about
 * 0.12 for OpenJPEG alone, and OpenJPEG's threads competed with the indexer's encoder threads.
 * Here the frame's bytes (joined as pydicom joins them, dicom_encapsulated_frame) go to the
 * codec from memory, OpenJPEG with one thread (the indexer runs one decoder per core), and the
 * samples are written once, into the caller's buffer, exactly as GDCM writes them: each sample
 * in the 8- or 16-bit word, little endian.
 *
 * Only the plain case is taken: one component, not subsampled, the header's size, precision
 * equal to Bits Stored, words of the size GDCM would choose for that precision, and the
 * signedness of Pixel Representation (JPEG 2000; JPEG-LS samples are unsigned, so signed
 * JPEG-LS is left alone). Anything else, and any stream the codec does not decode, is left to
 * GDCM (DICOM_DIRECT_FALLBACK), so that what GDCM accepts, refuses or adjusts stays as it was.
 * This runs in the decoder child process like every codec we do not own (dicom.cpp,
 * codec_decode_isolated). */
#include "dicom_internal.h"

#include <charls/charls.h>
#include <openjpeg.h>
#include <string.h>

typedef struct {
    const uint8_t *data;
    size_t size, at;
} memory_stream;

static OPJ_SIZE_T stream_read(void *buffer, OPJ_SIZE_T n, void *user)
{
    memory_stream *s = user;
    if (s->at >= s->size) return (OPJ_SIZE_T)-1;     /* end of stream */
    size_t left = s->size - s->at;
    if (n > left) n = left;
    memcpy(buffer, s->data + s->at, n);
    s->at += n;
    return n;
}

static OPJ_OFF_T stream_skip(OPJ_OFF_T n, void *user)
{
    memory_stream *s = user;
    if (n < 0) {
        if ((uint64_t)-n > s->at) return -1;
        s->at -= (size_t)-n;
        return n;
    }
    size_t left = s->size - s->at;
    if ((uint64_t)n > left) n = (OPJ_OFF_T)left;
    s->at += (size_t)n;
    return n;
}

static OPJ_BOOL stream_seek(OPJ_OFF_T to, void *user)
{
    memory_stream *s = user;
    if (to < 0 || (uint64_t)to > s->size) return OPJ_FALSE;
    s->at = (size_t)to;
    return OPJ_TRUE;
}

static void quiet(const char *message, void *user)
{
    (void)message;
    (void)user;
}

/* A JP2 file begins with its signature box; anything else is taken for a raw codestream. */
static bool is_jp2(const uint8_t *data, size_t size)
{
    static const uint8_t signature[12] = {0, 0, 0, 12, 'j', 'P', ' ', ' ', 13, 10, 0x87, 10};
    return size >= sizeof signature && memcmp(data, signature, sizeof signature) == 0;
}

/* The plain case this file decodes (see the top). */
static bool plain(const opj_image_t *img, const dicom_header *h)
{
    if (img->numcomps != 1 || img->x0 != 0 || img->y0 != 0) return false;
    const opj_image_comp_t *c = &img->comps[0];
    int word = c->prec <= 8 ? 8 : 16;
    return c->dx == 1 && c->dy == 1 && c->w == (OPJ_UINT32)h->columns &&
           c->h == (OPJ_UINT32)h->rows && c->prec >= 1 && (int)c->prec == h->bits_stored &&
           (int)c->sgnd == h->pixel_representation && word == h->bits_allocated;
}

static void write_samples(const opj_image_comp_t *c, int bits_allocated, uint8_t *pixels)
{
    size_t n = (size_t)c->w * c->h;
    if (bits_allocated == 8) {
        for (size_t i = 0; i < n; i++) pixels[i] = (uint8_t)c->data[i];
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t v = (uint16_t)c->data[i];
        pixels[2 * i] = (uint8_t)v;
        pixels[2 * i + 1] = (uint8_t)(v >> 8);
    }
}

dicom_direct_result dicom_j2k_decode(const uint8_t *stream, size_t size, const dicom_header *h,
                                  uint8_t *pixels, size_t frame_bytes)
{
    if (h->samples_per_pixel != 1 || (h->bits_allocated != 8 && h->bits_allocated != 16) ||
        frame_bytes != (size_t)h->rows * (size_t)h->columns * (size_t)(h->bits_allocated / 8))
        return DICOM_DIRECT_FALLBACK;
    memory_stream ms = {stream, size, 0};
    opj_stream_t *s = opj_stream_default_create(OPJ_TRUE);
    opj_codec_t *codec = opj_create_decompress(is_jp2(stream, size) ? OPJ_CODEC_JP2
                                                                     : OPJ_CODEC_J2K);
    opj_image_t *img = NULL;
    dicom_direct_result result = DICOM_DIRECT_FALLBACK;
    if (!s || !codec) goto done;
    opj_stream_set_user_data(s, &ms, NULL);
    opj_stream_set_user_data_length(s, size);
    opj_stream_set_read_function(s, stream_read);
    opj_stream_set_skip_function(s, stream_skip);
    opj_stream_set_seek_function(s, stream_seek);
    opj_set_error_handler(codec, quiet, NULL);
    opj_set_warning_handler(codec, quiet, NULL);
    opj_set_info_handler(codec, quiet, NULL);
    opj_dparameters_t params;
    opj_set_default_decoder_parameters(&params);
    if (!opj_setup_decoder(codec, &params) || !opj_read_header(s, codec, &img) || !img ||
        !plain(img, h))
        goto done;
    if (!opj_decode(codec, s, img) || !opj_end_decompress(codec, s)) goto done;
    /* Decoding may not change what the header said; check again before writing. */
    if (!plain(img, h) || !img->comps[0].data || img->comps[0].factor != 0) goto done;
    write_samples(&img->comps[0], h->bits_allocated, pixels);
    result = DICOM_DIRECT_DECODED;
done:
    if (img) opj_image_destroy(img);
    if (codec) opj_destroy_codec(codec);
    if (s) opj_stream_destroy(s);
    return result;
}

/* ---- JPEG-LS ------------------------------------------------------------------------------ */

dicom_direct_result dicom_jls_decode(const uint8_t *stream, size_t size, const dicom_header *h,
                                     uint8_t *pixels, size_t frame_bytes)
{
    if (h->samples_per_pixel != 1 || h->pixel_representation != 0 ||
        (h->bits_allocated != 8 && h->bits_allocated != 16) ||
        frame_bytes != (size_t)h->rows * (size_t)h->columns * (size_t)(h->bits_allocated / 8))
        return DICOM_DIRECT_FALLBACK;
    charls_jpegls_decoder *decoder = charls_jpegls_decoder_create();
    if (!decoder) return DICOM_DIRECT_FALLBACK;
    dicom_direct_result result = DICOM_DIRECT_FALLBACK;
    charls_frame_info info;
    size_t needed = 0;
    if (charls_jpegls_decoder_set_source_buffer(decoder, stream, size) ||
        charls_jpegls_decoder_read_header(decoder) ||
        charls_jpegls_decoder_get_frame_info(decoder, &info))
        goto done;
    int word = info.bits_per_sample <= 8 ? 8 : 16;
    if (info.component_count != 1 || info.width != (uint32_t)h->columns ||
        info.height != (uint32_t)h->rows || info.bits_per_sample != h->bits_stored ||
        word != h->bits_allocated)
        goto done;
    if (charls_jpegls_decoder_get_destination_size(decoder, 0, &needed) || needed != frame_bytes)
        goto done;
    if (charls_jpegls_decoder_decode_to_buffer(decoder, pixels, frame_bytes, 0)) goto done;
    result = DICOM_DIRECT_DECODED;
done:
    charls_jpegls_decoder_destroy(decoder);
    return result;
}
