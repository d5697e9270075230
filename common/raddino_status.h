/* raddino_status.h — the status every raddino library call returns.
 *
 * A call returns a raddino_status by value: code 0 (RADDINO_OK) means success; otherwise
 * `message` is one line ("FILE: reason") that can be shown to a user as it is. Callers decide
 * on `code` (and on the fields a call fills), never on the message's text. Messages do not name
 * command-line options: the library does not know how it is driven.
 *
 * This header and common/status.c are a library of their own (raddino_status), so that the
 * store, the FAISS layer and the probe link only this, not the encoder (OpenBLAS, libcurl, GDCM).
 */
#ifndef RADDINO_STATUS_H
#define RADDINO_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif
/* Exported from libraddino.so, built with -fvisibility=hidden (see cmake/install.cmake). */
#pragma GCC visibility push(default)

typedef enum {
    RADDINO_OK = 0,
    RADDINO_ERR_ARGUMENT,    /* a caller mistake: NULL pointer, bad size, bad parameter */
    RADDINO_ERR_IO,          /* a file could not be opened, read, mapped or written */
    RADDINO_ERR_FORMAT,      /* a file's bytes are malformed (image, JSON, safetensors) */
    RADDINO_ERR_UNSUPPORTED, /* well-formed but not something we handle (SwiGLU, registers...) */
    RADDINO_ERR_TOO_LARGE,   /* over a limit: pixel cap, tensor size, header length */
    RADDINO_ERR_MODEL,       /* weights do not fit the config: missing tensor, shape, dtype */
    RADDINO_ERR_NOMEM,       /* an allocation failed */
    RADDINO_ERR_NOT_FOUND,   /* not in the Hugging Face cache, or not on the Hub (HTTP 404) */
    RADDINO_ERR_NETWORK,     /* the Hub could not be reached, failed, or HF_HUB_OFFLINE=1 */
    RADDINO_ERR_ACCESS,      /* the Hub refused access (HTTP 401/403): a token is needed */
    RADDINO_ERR_CHECKSUM,    /* a download's bytes do not match the Hub's checksum */
    RADDINO_ERR_CANCELLED    /* the caller's cancel callback asked to stop */
} raddino_status_code;

#define RADDINO_MESSAGE_MAX 512

typedef struct {
    int code;                           /* raddino_status_code */
    char message[RADDINO_MESSAGE_MAX];  /* one line, empty when code == RADDINO_OK */
} raddino_status;

/* Status constructors for every module and for callers: `message` is printf-formatted, cut to
 * RADDINO_MESSAGE_MAX and kept on one line (newlines become spaces). */
raddino_status raddino_status_ok(void);
raddino_status raddino_status_error(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
raddino_status raddino_status_errorv(int code, const char *fmt, va_list ap);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
