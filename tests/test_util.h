/* test_util.h — shared helpers for the Check suites: golden file paths, raw tensor reading,
 * comparisons with the tolerances of tests/data/GOLDEN_README.md. */
#ifndef RADDINO_TEST_UTIL_H
#define RADDINO_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* RADDINO_TEST_DATA "/" rel, in a static rotating buffer (8 slots). */
const char *test_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads a whole file; returns malloc'd bytes (NUL-terminated past the end) and sets *size.
 * Fails the running test when the file is missing. */
void *test_read_file(const char *path, size_t *size);
/* Raw little-endian float32 / float64 tensors; *n = element count. */
float *test_read_f32(const char *path, size_t *n);
double *test_read_f64(const char *path, size_t *n);
/* Writes bytes to a new temporary file and returns its path (static rotating buffer). */
const char *test_write_temp(const void *data, size_t size, const char *suffix);
/* A fresh temporary directory (static rotating buffer). */
const char *test_temp_dir(void);

typedef struct {
    double max_abs;     /* max |a - b| */
    double rel_l2;      /* ||a - b|| / ||b|| */
    double min_cosine;  /* smallest cosine between rows of width `cols` */
} test_diff;

test_diff test_compare_f32(const float *a, const float *b, size_t n, size_t cols);
test_diff test_compare_f32_f64(const float *a, const double *b, size_t n, size_t cols);

/* The tests' deterministic random numbers: splitmix64 steps of *state, and a standard normal
 * draw from two of them (Box-Muller, the first for the radius, the second for the angle). */
uint64_t test_rng_next(uint64_t *state);
float test_rng_gauss(uint64_t *state);

/* Golden keys: image file name with '.' -> '_'. */
extern const char *const test_golden_images[];   /* NULL-terminated, all 17 */
const char *test_golden_key(const char *image_name);

#endif
