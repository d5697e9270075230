/* labels.c — reading label CSVs for eval and probe (see labels.h).
 *
 * Lookups from a CSV value to stored images use rows sorted by path, by file name and by file
 * name without its extension (its stem), searched by bisection, so that a label file of many
 * rows costs n log n, not rows x n. */
#include "labels.h"
#include "csv.h"
#include "raddino_store.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static raddino_status nomem(void)
{
    return raddino_status_error(RADDINO_ERR_NOMEM, "out of memory");
}

raddino_status cli_resolve_csv_path(const char *csv, const char *value, char *out, size_t cap)
{
    if (value[0] == '/') return raddino_store_normalise_path(value, out, cap);
    const char *slash = strrchr(csv, '/');
    char joined[RADDINO_PATH_MAX * 2];
    if (slash)
        snprintf(joined, sizeof joined, "%.*s/%s", (int)(slash - csv), csv, value);
    else
        snprintf(joined, sizeof joined, "%s", value);
    return raddino_store_normalise_path(joined, out, cap);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

typedef struct {
    const char *text;       /* the path, or its file name */
    size_t len;             /* compared length (the stem: up to the last '.') */
    size_t row;
} name_key;

typedef struct {
    name_key *by_path, *by_name, *by_stem;
    size_t n;
} name_index;

static int compare_keys(const void *a, const void *b)
{
    const name_key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->text, y->text, n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

static raddino_status build_name_index(char *const *paths, size_t n, name_index *ix)
{
    size_t cap = n ? n : 1;
    ix->n = n;
    ix->by_path = malloc(cap * sizeof *ix->by_path);
    ix->by_name = malloc(cap * sizeof *ix->by_name);
    ix->by_stem = malloc(cap * sizeof *ix->by_stem);
    if (!ix->by_path || !ix->by_name || !ix->by_stem) return nomem();
    for (size_t i = 0; i < n; i++) {
        const char *b = base_name(paths[i]);
        const char *dot = strrchr(b, '.');
        ix->by_path[i] = (name_key){paths[i], strlen(paths[i]), i};
        ix->by_name[i] = (name_key){b, strlen(b), i};
        ix->by_stem[i] = (name_key){b, dot ? (size_t)(dot - b) : strlen(b), i};
    }
    qsort(ix->by_path, n, sizeof *ix->by_path, compare_keys);
    qsort(ix->by_name, n, sizeof *ix->by_name, compare_keys);
    qsort(ix->by_stem, n, sizeof *ix->by_stem, compare_keys);
    return raddino_status_ok();
}

static void free_name_index(name_index *ix)
{
    free(ix->by_path);
    free(ix->by_name);
    free(ix->by_stem);
}

/* The first key equal to text in a sorted table (row 0 sorts first among equals); n if none. */
static size_t first_equal(const name_key *keys, size_t n, const char *text)
{
    name_key probe = {text, strlen(text), 0};
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (compare_keys(&keys[mid], &probe) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int key_is(const name_key *k, const char *text)
{
    size_t len = strlen(text);
    return k->len == len && !memcmp(k->text, text, len);
}

typedef struct {
    char **raw;             /* n: the label field of the row that named the image */
    char **group;
    char *const *paths;
    cli_labels *out;
} reading;

static raddino_status set_text(char **slot, const char *text)
{
    if (*slot) return raddino_status_ok();
    *slot = strdup(text);
    return *slot ? raddino_status_ok() : nomem();
}

static raddino_status label_row(reading *r, size_t i, const char *label, const char *group)
{
    if (r->raw[i]) {
        r->out->conflicts += strcmp(r->raw[i], label) != 0;
        return raddino_status_ok();
    }
    raddino_status st = set_text(&r->raw[i], label);
    if (!st.code && group && *group) st = set_text(&r->group[i], group);
    r->out->labelled_images++;
    return st;
}

static raddino_status apply_row(reading *r, const name_index *ix, const char *csv,
                                const char *value, const char *label, const char *group)
{
    const name_key *tables[2] = {ix->by_name, ix->by_stem};
    int n_tables = 2;
    char normalised[RADDINO_PATH_MAX];
    if (strchr(value, '/')) {
        if (cli_resolve_csv_path(csv, value, normalised, sizeof normalised).code)
            return raddino_status_ok();
        value = normalised;
        tables[0] = ix->by_path;
        n_tables = 1;
    }
    int matched = 0;
    raddino_status st = raddino_status_ok();
    for (int t = 0; t < n_tables && !st.code; t++)
        for (size_t j = first_equal(tables[t], ix->n, value);
             j < ix->n && key_is(&tables[t][j], value) && !st.code; j++) {
            size_t row = tables[t][j].row;
            /* a file named exactly like a stem ("a" and "a.png") is found twice: once counts */
            if (t == 1 && r->raw[row] && !strcmp(base_name(r->paths[row]), value)) continue;
            matched = 1;
            st = label_row(r, row, label, group);
        }
    r->out->matched_rows += matched;
    return st;
}

static const char *const path_names[] = {"path", "file", "filename", "file_name", "image",
                                         "image_path", "Image Index", "image_id", NULL};
static const char *const label_names[] = {"label", "finding", "Finding Labels", "class",
                                          "diagnosis", NULL};
static const char *const patient_names[] = {"patient", "patient_id", "patientid",
                                            "Patient ID", NULL};

/* Column named `want` (case-insensitive), or the first of the candidates; -1 when none. */
static int find_column(char **header, size_t n, const char *want, const char *const *candidates)
{
    for (const char *const *c = want ? &want : candidates; *c; c++) {
        for (size_t i = 0; i < n; i++)
            if (!strcasecmp(header[i], *c)) return (int)i;
        if (want) break;
    }
    return -1;
}

/* Calls fn for each label of a field: the whole field, or its trimmed, non-empty pieces
 * between separators other than the none label. */
typedef raddino_status (*token_fn)(void *user, const char *token, size_t len);
static raddino_status each_token(const cli_label_options *o, const char *field, token_fn fn,
                                 void *user)
{
    if (!o->separator || !o->separator[0]) return fn(user, field, strlen(field));
    size_t sep = strlen(o->separator);
    const char *p = field;
    for (;;) {
        const char *end = strstr(p, o->separator);
        const char *stop = end ? end : p + strlen(p);
        const char *a = p, *b = stop;
        while (a < b && (*a == ' ' || *a == '\t')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
        size_t len = (size_t)(b - a);
        bool none = o->none_label && strlen(o->none_label) == len &&
                    !strncasecmp(a, o->none_label, len);
        if (len && !none) {
            raddino_status st = fn(user, a, len);
            if (st.code) return st;
        }
        if (!end) break;
        p = end + sep;
    }
    return raddino_status_ok();
}

typedef struct {
    char **names;
    size_t n, cap;
} vocabulary;

static raddino_status add_name(void *user, const char *token, size_t len)
{
    vocabulary *v = user;
    for (size_t i = 0; i < v->n; i++)
        if (strlen(v->names[i]) == len && !memcmp(v->names[i], token, len))
            return raddino_status_ok();
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        char **bigger = realloc(v->names, cap * sizeof *bigger);
        if (!bigger) return nomem();
        v->names = bigger;
        v->cap = cap;
    }
    if (!(v->names[v->n] = strndup(token, len))) return nomem();
    v->n++;
    return raddino_status_ok();
}

typedef struct {
    const cli_labels *l;
    uint8_t *row;
} marking;

static raddino_status mark_name(void *user, const char *token, size_t len)
{
    marking *m = user;
    for (int i = 0; i < m->l->n_labels; i++)
        if (strlen(m->l->names[i]) == len && !memcmp(m->l->names[i], token, len)) m->row[i] = 1;
    return raddino_status_ok();
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static raddino_status read_rows(const char *csv, const cli_label_options *o, reading *r)
{
    csv_reader cr;
    raddino_status st = csv_open(&cr, csv);
    if (st.code) return st;
    int got = csv_next(&cr, &st);
    int path_col = -1, label_col = -1, group_col = -1;
    if (got == 0) st = raddino_status_error(RADDINO_ERR_FORMAT, "%s", "");
    if (got > 0) {
        path_col = find_column(cr.fields, cr.n_fields, o->path_column, path_names);
        label_col = find_column(cr.fields, cr.n_fields, o->label_column, label_names);
        if (o->group_column) {
            int patient = !strcasecmp(o->group_column, "patient");
            group_col = find_column(cr.fields, cr.n_fields, patient ? NULL : o->group_column,
                                    patient ? patient_names : NULL);
            r->out->dicom_groups = patient && group_col < 0;
            if (group_col < 0 && !patient)
                snprintf(st.message, sizeof st.message, "no column '%s'", o->group_column);
        }
        if (path_col < 0) snprintf(st.message, sizeof st.message, "no path column%s%s",
                                   o->path_column ? " " : " (see --path-column)",
                                   o->path_column ? o->path_column : "");
        if (label_col < 0) snprintf(st.message, sizeof st.message, "no label column%s%s",
                                    o->label_column ? " " : " (see --label-column)",
                                    o->label_column ? o->label_column : "");
        if (st.message[0]) st.code = RADDINO_ERR_FORMAT;
    }
    if (st.code) {
        char why[RADDINO_MESSAGE_MAX];
        snprintf(why, sizeof why, "%s", st.message[0] ? st.message : "empty file");
        if (got >= 0) st = raddino_status_error(RADDINO_ERR_FORMAT, "%.300s: %.200s", csv, why);
        csv_close(&cr);
        return st;
    }
    name_index ix = {0};
    st = build_name_index(r->paths, r->out->n, &ix);
    while (!st.code && (got = csv_next(&cr, &st)) > 0) {
        r->out->rows++;
        size_t need = (size_t)(path_col > label_col ? path_col : label_col);
        if (group_col > (int)need) need = (size_t)group_col;
        if (cr.n_fields <= need || !cr.fields[path_col][0] || !cr.fields[label_col][0]) {
            r->out->incomplete_rows++;      /* no path or no label: nothing to apply */
            continue;
        }
        st = apply_row(r, &ix, csv, cr.fields[path_col], cr.fields[label_col],
                       group_col >= 0 ? cr.fields[group_col] : NULL);
    }
    free_name_index(&ix);
    csv_close(&cr);
    return st;
}

raddino_status cli_labels_read(const char *csv, const cli_label_options *o,
                               char *const *paths, size_t n, cli_labels *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    size_t cap = n ? n : 1;
    reading r = {calloc(cap, sizeof(char *)), calloc(cap, sizeof(char *)), paths, out};
    out->labelled = calloc(cap, 1);
    vocabulary v = {0};
    raddino_status st = !r.raw || !r.group || !out->labelled ? nomem() : read_rows(csv, o, &r);
    for (size_t i = 0; i < n && !st.code; i++)
        if (r.raw[i]) st = each_token(o, r.raw[i], add_name, &v);
    if (!st.code) {
        if (v.n) qsort(v.names, v.n, sizeof *v.names, compare_names);   /* NULL when none */
        out->names = v.names;
        out->n_labels = (int)v.n;
        v.names = NULL;
        out->Y = calloc(cap * (v.n ? v.n : 1), 1);
        if (!out->Y) st = nomem();
    }
    for (size_t i = 0; i < n && !st.code; i++) {
        if (!r.raw[i]) continue;
        out->labelled[i] = 1;
        marking m = {out, out->Y + i * (size_t)out->n_labels};
        st = each_token(o, r.raw[i], mark_name, &m);
    }
    out->group = r.group;
    r.group = NULL;
    for (size_t i = 0; i < n; i++) free(r.raw ? r.raw[i] : NULL);
    free(r.raw);
    for (size_t i = 0; i < v.n && v.names; i++) free(v.names[i]);
    free(v.names);
    if (st.code) cli_labels_free(out);
    return st;
}

void cli_labels_free(cli_labels *l)
{
    if (!l) return;
    for (int i = 0; i < l->n_labels; i++) free(l->names[i]);
    free(l->names);
    for (size_t i = 0; l->group && i < l->n; i++) free(l->group[i]);
    free(l->group);
    free(l->Y);
    free(l->labelled);
    memset(l, 0, sizeof *l);
}
