/* html_report.h — self-contained HTML pages: escaping, thumbnails as data URIs, the page
 * skeleton and its CSS, written atomically. Shared by the --html reports of search, cluster,
 * clusters, dedup and eval (and meant for `raddino serve`).
 *
 * A report is one file with no external asset: thumbnails are JPEGs embedded as base64 data
 * URIs, plots are inline SVG, the CSS is inline. Thumbnails come from the decoding path of
 * embedding (raddino_image_load_ex with the command's load options, so DICOM windows apply),
 * box-filtered down to HTML_THUMB_SIDE pixels on the longest side. An image that cannot be
 * decoded gets a placeholder box, never a failed report. */
#ifndef RADDINO_HTML_REPORT_H
#define RADDINO_HTML_REPORT_H

#include "raddino_encoder.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HTML_THUMB_SIDE 160         /* longest side of a thumbnail, pixels */
#define HTML_THUMB_QUALITY 85       /* JPEG quality */
#define HTML_MAX_THUMBS 100         /* thumbnails per section at most (the rest: a count) */
#define HTML_MAX_SECTIONS 200       /* sections (queries, clusters, groups) with thumbnails */
#define HTML_MAX_POINTS 10000       /* points of a 2-D map at most (an even sample beyond) */

typedef struct {
    FILE *f;                        /* the temporary file being written */
    char path[RADDINO_PATH_MAX];    /* where it goes */
    char tmp[RADDINO_PATH_MAX + 16];
    raddino_load_options load;      /* how thumbnails are decoded */
    size_t thumbs, failed_thumbs;   /* counts, for the caller's summary */
} html_report;

/* Opens PATH.tmp.XXXXXX and writes the page head (title escaped) and the opening of <body>. */
raddino_status html_report_open(html_report *r, const char *path, const char *title,
                                const raddino_load_options *load);
/* Writes the page end, flushes, syncs and renames the file into place. On any failure the
 * temporary file is removed and the status says why. */
raddino_status html_report_close(html_report *r);
/* Drops a report being written (an error elsewhere): the temporary file is removed. */
void html_report_discard(html_report *r);

/* Writes s with &, <, >, " and ' escaped (for text and attribute values alike). Bytes that
 * are not valid UTF-8 become U+FFFD so the page stays well formed. */
void html_escape(FILE *f, const char *s);
/* Writes n bytes as base64 (RFC 4648, padded). */
void html_base64(FILE *f, const unsigned char *data, size_t n);

/* Decodes an image file as embedding does and encodes a JPEG thumbnail (longest side at most
 * max_side) in memory: *jpeg is malloc'd, the caller frees it. */
raddino_status html_thumbnail_jpeg(const char *path, const raddino_load_options *load,
                                   int max_side, unsigned char **jpeg, size_t *size);

/* Writes <img class="thumb" src="data:image/jpeg;base64,..." alt="PATH"> for the image at
 * path, or a placeholder <div class="thumb missing"> saying why it could not be shown. */
void html_thumb(html_report *r, const char *path);

/* A colour of cluster c (distinct hues, golden-angle steps), as "hsl(H,S%,L%)" into buf. */
void html_cluster_colour(int c, char *buf, size_t cap);

/* (The 2-D map itself is raddino_pca2, analysis/raddino_analysis.h.) */
/* Writes an inline SVG scatter plot of n points (xy pairs), coloured by cluster[i], each with a
 * <title> tooltip of label[i] (escaped) and its cluster. */
void html_scatter_svg(FILE *f, const float *xy, const int *cluster, const char *const *label,
                      size_t n);

#endif
