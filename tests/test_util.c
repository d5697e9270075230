#define _XOPEN_SOURCE 700    /* nftw */
#include "test_util.h"

#include <check.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOTS 8

static char *next_slot(void)
{
    static char buffers[SLOTS][4096];
    static int next;
    char *slot = buffers[next];
    next = (next + 1) % SLOTS;
    return slot;
}

const char *test_path(const char *fmt, ...)
{
    char *slot = next_slot();
    int used = snprintf(slot, 4096, "%s/", RADDINO_TEST_DATA);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(slot + used, 4096 - (size_t)used, fmt, ap);
    va_end(ap);
    return slot;
}

void *test_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(data);
    ck_assert_msg(fread(data, 1, (size_t)len, f) == (size_t)len, "short read on %s", path);
    fclose(f);
    data[len] = 0;
    *size = (size_t)len;
    return data;
}

float *test_read_f32(const char *path, size_t *n)
{
    size_t size;
    float *data = test_read_file(path, &size);
    ck_assert_msg(size % 4 == 0, "%s: size %zu is not a multiple of 4", path, size);
    *n = size / 4;
    return data;
}

double *test_read_f64(const char *path, size_t *n)
{
    size_t size;
    double *data = test_read_file(path, &size);
    ck_assert_msg(size % 8 == 0, "%s: size %zu is not a multiple of 8", path, size);
    *n = size / 8;
    return data;
}

/* The folders test_temp_dir made, each with the process that made it. Check runs every test in
 * a child process, so a folder belongs to its test: it is removed when that process exits
 * (RADDINO_TEST_KEEP=1 keeps them, to look at after a failure). */
typedef struct {
    char path[4096];
    pid_t owner;
} temp_dir;

static temp_dir *temp_dirs;
static size_t n_temp_dirs;

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_temp_dirs(void)
{
    const char *keep = getenv("RADDINO_TEST_KEEP");
    if (keep && *keep) return;
    pid_t self = getpid();
    for (size_t i = 0; i < n_temp_dirs; i++)
        if (temp_dirs[i].owner == self) nftw(temp_dirs[i].path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *test_temp_dir(void)
{
    char *slot = next_slot();
    const char *base = getenv("TMPDIR");
    snprintf(slot, 4096, "%s/raddino-test-XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(slot));
    temp_dir *grown = realloc(temp_dirs, (n_temp_dirs + 1) * sizeof *temp_dirs);
    ck_assert_ptr_nonnull(grown);
    temp_dirs = grown;
    if (n_temp_dirs == 0) atexit(remove_temp_dirs);
    snprintf(temp_dirs[n_temp_dirs].path, sizeof temp_dirs->path, "%s", slot);
    temp_dirs[n_temp_dirs++].owner = getpid();
    return slot;
}

const char *test_write_temp(const void *data, size_t size, const char *suffix)
{
    const char *dir = test_temp_dir();
    char *slot = next_slot();
    snprintf(slot, 4096, "%s/file%s", dir, suffix ? suffix : "");
    FILE *f = fopen(slot, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert(fwrite(data, 1, size, f) == size);
    fclose(f);
    return slot;
}

uint64_t test_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float test_rng_gauss(uint64_t *state)
{
    double u = ((double)(test_rng_next(state) >> 11) + 0.5) * 0x1.0p-53;
    double v = ((double)(test_rng_next(state) >> 11) + 0.5) * 0x1.0p-53;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

static test_diff compare(const float *a, const float *bf, const double *bd, size_t n, size_t cols)
{
    test_diff d = {0, 0, 1.0};
    double err2 = 0, ref2 = 0;
    for (size_t row = 0; row < n / cols; row++) {
        double dot = 0, na = 0, nb = 0;
        for (size_t j = 0; j < cols; j++) {
            size_t i = row * cols + j;
            double x = a[i], y = bf ? bf[i] : bd[i];
            double diff = fabs(x - y);
            if (!(diff <= d.max_abs)) d.max_abs = diff;  /* NaN propagates as a failure */
            err2 += (x - y) * (x - y);
            ref2 += y * y;
            dot += x * y; na += x * x; nb += y * y;
        }
        double cosine = (na > 0 && nb > 0) ? dot / sqrt(na * nb) : (na == nb ? 1.0 : 0.0);
        if (!(cosine >= d.min_cosine)) d.min_cosine = cosine;
    }
    d.rel_l2 = ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2);
    if (isnan(d.max_abs)) d.max_abs = INFINITY;
    return d;
}

test_diff test_compare_f32(const float *a, const float *b, size_t n, size_t cols)
{
    return compare(a, b, NULL, n, cols);
}

test_diff test_compare_f32_f64(const float *a, const double *b, size_t n, size_t cols)
{
    return compare(a, NULL, b, n, cols);
}

const char *const test_golden_images[] = {
    "gray16_900x1024.png", "gray8_14x14.png", "gray8_1601x519.png", "gray8_1x1.png",
    "gray8_2000x40.png", "gray8_300x400.png", "gray8_518x518.png", "gray8_600x700.png",
    "gray8prog_500x600.jpg", "graya8_320x400.png", "palette8_400x320.png", "rgb8_640x480.jpg",
    "rgb8_640x480.png", "xray_nih_00000075_000.png", "xray_nih_00001369_000_rgba.png",
    "xray_mhh_0a7faa2a.png", "xray_rg1_chest_15bit.png", NULL};

const char *test_golden_key(const char *image_name)
{
    char *slot = next_slot();
    snprintf(slot, 4096, "%s", image_name);
    for (char *p = slot; *p; p++)
        if (*p == '.') *p = '_';
    return slot;
}
