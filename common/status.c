/* status.c — the raddino_status constructors (raddino_status.h). */
#include "raddino_status.h"

#include <stdio.h>

raddino_status raddino_status_ok(void)
{
    raddino_status st;
    st.code = RADDINO_OK;
    st.message[0] = 0;
    return st;
}

raddino_status raddino_status_errorv(int code, const char *fmt, va_list ap)
{
    raddino_status st;
    st.code = code;
    vsnprintf(st.message, sizeof st.message, fmt, ap);
    /* One line: a newline inside a file name or a library message must not break it. */
    for (char *p = st.message; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return st;
}

raddino_status raddino_status_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    raddino_status st = raddino_status_errorv(code, fmt, ap);
    va_end(ap);
    return st;
}
