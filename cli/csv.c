/* csv.c — the label-file CSV reader (see csv.h). Fields are unescaped in place: a field's text
 * is never longer than its raw bytes, so the write position never passes the read position. */
#include "csv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static raddino_status csv_error(const csv_reader *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static raddino_status csv_error(const csv_reader *r, int code, const char *fmt, ...)
{
    char reason[RADDINO_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return raddino_status_error(code, "%s: %s", r->name, reason);
}

static raddino_status start(csv_reader *r, const char *name)
{
    snprintf(r->name, sizeof r->name, "%s", name);
    r->line = 0;
    r->cur = 1;
    if (r->size >= 3 && !memcmp(r->data, "\xef\xbb\xbf", 3)) r->pos = 3;   /* UTF-8 BOM */
    if (memchr(r->data, 0, r->size)) {
        free(r->data);
        r->data = NULL;
        return csv_error(r, RADDINO_ERR_FORMAT, "NUL byte in a CSV file");
    }
    raddino_status st = {RADDINO_OK, ""};
    return st;
}

raddino_status csv_open_memory(csv_reader *r, const char *text, size_t size, const char *name)
{
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    if (size > CSV_MAX_BYTES) return csv_error(r, RADDINO_ERR_TOO_LARGE, "CSV over 1 GiB");
    r->data = malloc(size + 1);
    if (!r->data) return csv_error(r, RADDINO_ERR_NOMEM, "out of memory");
    memcpy(r->data, text, size);
    r->data[size] = 0;
    r->size = size;
    return start(r, name);
}

raddino_status csv_open(csv_reader *r, const char *path)
{
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) return csv_error(r, RADDINO_ERR_IO, "%s", strerror(errno));
    struct stat sb;
    raddino_status st = {RADDINO_OK, ""};
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode))
        st = csv_error(r, RADDINO_ERR_IO, "not a regular file");
    else if ((unsigned long long)sb.st_size > CSV_MAX_BYTES)
        st = csv_error(r, RADDINO_ERR_TOO_LARGE, "CSV over 1 GiB");
    else if (!(r->data = malloc((size_t)sb.st_size + 1)))
        st = csv_error(r, RADDINO_ERR_NOMEM, "out of memory");
    else if (fread(r->data, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size)
        st = csv_error(r, RADDINO_ERR_IO, "read failed");
    fclose(f);
    if (st.code) {
        free(r->data);
        r->data = NULL;
        return st;
    }
    r->size = (size_t)sb.st_size;
    r->data[r->size] = 0;
    return start(r, path);
}

static int push_field(csv_reader *r, char *field)
{
    if (r->n_fields == r->cap_fields) {
        size_t cap = r->cap_fields ? 2 * r->cap_fields : 16;
        char **f = realloc(r->fields, cap * sizeof *f);
        if (!f) return -1;
        r->fields = f;
        r->cap_fields = cap;
    }
    r->fields[r->n_fields++] = field;
    return 0;
}

/* Consumes a line end at pos (LF, CRLF or CR); returns 1 when there was one. */
static int line_end(csv_reader *r)
{
    char c = r->data[r->pos];
    if (c == '\n') {
        r->pos++;
        r->cur++;
        return 1;
    }
    if (c == '\r') {
        r->pos += r->data[r->pos + 1] == '\n' ? 2 : 1;
        r->cur++;
        return 1;
    }
    return 0;
}

/* One field from pos; *end_of_record when a line end or the end of the data followed it. */
static int read_field(csv_reader *r, int *end_of_record, raddino_status *st)
{
    char *out = r->data + r->pos, *w = out;
    if (r->data[r->pos] == '"') {
        size_t opened = r->cur;
        r->pos++;
        for (;;) {
            if (r->pos >= r->size) {
                *st = csv_error(r, RADDINO_ERR_FORMAT, "line %zu: unterminated quoted field",
                                opened);
                return -1;
            }
            char c = r->data[r->pos++];
            if (c == '"') {
                if (r->data[r->pos] != '"') break;
                r->pos++;
            } else if (c == '\n' || (c == '\r' && r->data[r->pos] != '\n')) {
                r->cur++;
            }
            *w++ = c;
        }
        char c = r->data[r->pos];
        if (c != ',' && c != '\n' && c != '\r' && r->pos < r->size) {
            *st = csv_error(r, RADDINO_ERR_FORMAT, "line %zu: text after a closing quote",
                            r->cur);
            return -1;
        }
    } else {
        while (r->pos < r->size) {
            char c = r->data[r->pos];
            if (c == ',' || c == '\n' || c == '\r') break;
            *w++ = c;
            r->pos++;
        }
    }
    /* The separator is read before the terminator is written over it. */
    *end_of_record = r->pos >= r->size || line_end(r);
    if (!*end_of_record) r->pos++;  /* the comma */
    *w = 0;
    if (push_field(r, out)) {
        *st = csv_error(r, RADDINO_ERR_NOMEM, "out of memory");
        return -1;
    }
    return 0;
}

int csv_next(csv_reader *r, raddino_status *st)
{
    for (;;) {
        r->n_fields = 0;
        if (!r->data || r->pos >= r->size) return 0;
        size_t line = r->cur;
        if (line_end(r)) continue;      /* blank line */
        int end = 0;
        while (!end)
            if (read_field(r, &end, st)) return -1;
        r->line = line;
        return 1;
    }
}

void csv_close(csv_reader *r)
{
    free(r->data);
    free(r->fields);
    memset(r, 0, sizeof *r);
}
