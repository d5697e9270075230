/* encoder_status.h — private to encoder/: the short names of the status constructors (status.c). */
#ifndef RADDINO_ENCODER_STATUS_H
#define RADDINO_ENCODER_STATUS_H

#include "raddino_encoder.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status.c ---- */
raddino_status status_ok(void);
raddino_status status_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif
