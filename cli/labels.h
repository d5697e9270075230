/* labels.h — label CSVs for eval and probe: which stored images a row names, their labels
 * (one column, or several labels in one field with a separator) and their group (patient).
 *
 * A row names images by path or by file name: a value with '/' is a path (a relative one is
 * taken from the CSV's folder, then normalised as the store normalises paths); anything else
 * is a file name, matching every image of that name with or without its extension (NIH
 * `Image Index`, MHH `image_id`). The first row naming an image wins; later rows with another
 * label are counted as conflicts. */
#ifndef RADDINO_CLI_LABELS_H
#define RADDINO_CLI_LABELS_H

#include "raddino_encoder.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *path_column;    /* NULL: path, file, filename, file_name, image, image_path,
                                   Image Index, image_id */
    const char *label_column;   /* NULL: label, finding, Finding Labels, class, diagnosis */
    const char *group_column;   /* NULL: none; "patient": patient, patient_id, patientid,
                                   Patient ID, else the stored DICOM patient key */
    const char *separator;      /* multi-label: "A|B" holds A and B; NULL: the field is one label */
    const char *none_label;     /* multi-label: the value that means no label (No Finding) */
} cli_label_options;

typedef struct {
    size_t n;                   /* images (the paths given) */
    int n_labels;
    char **names;               /* n_labels label names, sorted */
    uint8_t *Y;                 /* n x n_labels: 1 when image i has label l */
    uint8_t *labelled;          /* n: a row named the image (it may have no label: No Finding) */
    char **group;               /* n: the group, NULL when none */
    int dicom_groups;           /* 1: group 'patient' with no such column: use DICOM keys */
    size_t rows, incomplete_rows, matched_rows, labelled_images, conflicts;
} cli_labels;

/* Reads the CSV for the n stored images named by paths (normalised). Errors name the CSV. */
raddino_status cli_labels_read(const char *csv, const cli_label_options *o,
                               char *const *paths, size_t n, cli_labels *out);
void cli_labels_free(cli_labels *l);

/* A path from a CSV: relative ones are taken from the CSV's folder; the result is normalised
 * (raddino_store_normalise_path). */
raddino_status cli_resolve_csv_path(const char *csv, const char *value, char *out, size_t cap);

#endif
