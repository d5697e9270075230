/* csv.h — a strict RFC 4180 CSV reader for label files: quoted fields (commas, quotes doubled,
 * line breaks inside quotes), LF, CRLF or CR line ends, a UTF-8 byte order mark, blank lines
 * skipped. Every byte is hostile: the file size is capped, NUL bytes and text after a closing
 * quote are errors naming the line. */
#ifndef RADDINO_CLI_CSV_H
#define RADDINO_CLI_CSV_H

#include "raddino_encoder.h"

#include <stddef.h>

#define CSV_MAX_BYTES (1ull << 30)

typedef struct {
    char *data;             /* the file, unescaped in place: fields point into it */
    size_t size, pos;
    size_t line;            /* line where the record just read starts (from 1) */
    size_t cur;             /* line being read */
    char **fields;          /* the record just read */
    size_t n_fields, cap_fields;
    char name[256];         /* for messages */
} csv_reader;

/* Reads the whole file (at most CSV_MAX_BYTES). */
raddino_status csv_open(csv_reader *r, const char *path);
/* Parses text already in memory (copied). */
raddino_status csv_open_memory(csv_reader *r, const char *text, size_t size, const char *name);
/* The next record: 1 read (fields valid until csv_close), 0 at the end, -1 error (*st set). */
int csv_next(csv_reader *r, raddino_status *st);
void csv_close(csv_reader *r);

#endif
