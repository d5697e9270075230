/* status.c — the encoder's short names for the status constructors (common/status.c). */
#include "encoder_status.h"

raddino_status status_ok(void)
{
    return raddino_status_ok();
}

raddino_status status_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    raddino_status st = raddino_status_errorv(code, fmt, ap);
    va_end(ap);
    return st;
}
