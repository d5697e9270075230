/* test_npy.c — .npy files written by raddino read back with the same shape and values, with
 * the header numpy expects; bad files are refused. */
#include "npy.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(round_trip_2d)
{
    const char *dir = test_temp_dir();
    char path[4096];
    snprintf(path, sizeof path, "%s/a.npy", dir);
    float data[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-8f, -7.0f};
    int64_t shape[2] = {2, 3};
    raddino_status st = npy_write_f32(path, data, 2, shape);
    ck_assert_msg(!st.code, "%s", st.message);
    size_t size;
    unsigned char *bytes = test_read_file(path, &size);
    ck_assert_mem_eq(bytes, "\x93NUMPY\x01\x00", 8);
    size_t header_len = bytes[8] | (size_t)bytes[9] << 8;
    ck_assert_uint_eq((10 + header_len) % 64, 0);          /* data aligned as numpy does */
    ck_assert_int_eq(bytes[10 + header_len - 1], '\n');
    ck_assert_uint_eq(size, 10 + header_len + sizeof data);
    ck_assert_ptr_nonnull(strstr((char *)bytes + 10, "'shape': (2, 3)"));
    free(bytes);

    float *back;
    int n_dims;
    int64_t back_shape[8];
    st = npy_read_f32(path, &back, &n_dims, back_shape);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_int_eq(n_dims, 2);
    ck_assert_int_eq(back_shape[0], 2);
    ck_assert_int_eq(back_shape[1], 3);
    ck_assert_mem_eq(back, data, sizeof data);
    free(back);
}
END_TEST

START_TEST(one_and_three_dims)
{
    const char *dir = test_temp_dir();
    char path[4096];
    snprintf(path, sizeof path, "%s/v.npy", dir);
    float v[4] = {1, 2, 3, 4};
    int64_t shape1[1] = {4};
    ck_assert(!npy_write_f32(path, v, 1, shape1).code);
    size_t size;
    char *bytes = test_read_file(path, &size);
    ck_assert_ptr_nonnull(strstr(bytes + 10, "'shape': (4,)"));   /* a Python 1-tuple */
    free(bytes);
    int64_t shape3[3] = {1, 2, 2};
    ck_assert(!npy_write_f32(path, v, 3, shape3).code);
    float *back;
    int n_dims;
    int64_t s[8];
    ck_assert(!npy_read_f32(path, &back, &n_dims, s).code);
    ck_assert_int_eq(n_dims, 3);
    ck_assert_int_eq(s[2], 2);
    free(back);
}
END_TEST

/* A .npy v1 file with the given shape text and data bytes (malloc'd). */
static char *npy_bytes(const char *shape, const char *tail, size_t tail_len, size_t *size)
{
    char header[256];
    int n = snprintf(header, sizeof header,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }\n", shape);
    char *out = malloc(10 + (size_t)n + tail_len);
    ck_assert_ptr_nonnull(out);
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (char)(n & 0xff);
    out[9] = (char)(n >> 8);
    memcpy(out + 10, header, (size_t)n);
    memcpy(out + 10 + n, tail, tail_len);
    *size = 10 + (size_t)n + tail_len;
    return out;
}

START_TEST(bad_files)
{
    float *data;
    int n_dims;
    int64_t shape[8];
    raddino_status st = npy_read_f32("/nonexistent/x.npy", &data, &n_dims, shape);
    ck_assert_int_eq(st.code, RADDINO_ERR_IO);
    const char *junk = test_write_temp("hello world, not numpy", 22, ".npy");
    st = npy_read_f32(junk, &data, &n_dims, shape);
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    ck_assert_msg(strstr(st.message, junk), "%s", st.message);
    /* Claims 2x3 floats but holds none. */
    const char head[] = "\x93NUMPY\x01\x00\x3c\x00{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (2, 3), }\n";
    const char *truncated = test_write_temp(head, sizeof head - 1, ".npy");
    st = npy_read_f32(truncated, &data, &n_dims, shape);
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    ck_assert_ptr_null(data);
    /* Claims 2^40 floats (4 TiB) in a small file: refused as truncated, not by trying to
     * allocate what the header says (the buffer grows only as data arrives). */
    size_t size;
    char *bytes = npy_bytes("(1099511627776,)", "abcd", 4, &size);
    const char *liar = test_write_temp(bytes, size, ".npy");
    free(bytes);
    st = npy_read_f32(liar, &data, &n_dims, shape);
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    ck_assert_msg(strstr(st.message, "truncated"), "%s", st.message);
    ck_assert_ptr_null(data);
    /* A shape whose product overflows. */
    bytes = npy_bytes("(4294967296, 4294967296)", "", 0, &size);
    st = npy_read_f32_memory(bytes, size, "over.npy", &data, &n_dims, shape);
    free(bytes);
    ck_assert_int_eq(st.code, RADDINO_ERR_TOO_LARGE);
    ck_assert_msg(strstr(st.message, "over.npy: "), "%s", st.message);
    /* The memory reader agrees with the file reader. */
    bytes = npy_bytes("(1,)", "\x00\x00\x80\x3f", 4, &size);
    st = npy_read_f32_memory(bytes, size, NULL, &data, &n_dims, shape);
    free(bytes);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_int_eq(n_dims, 1);
    ck_assert(data[0] == 1.0f);
    free(data);
    st = npy_read_f32_memory("", 0, NULL, &data, &n_dims, shape);
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    ck_assert_msg(strstr(st.message, "<memory>: "), "%s", st.message);
    /* Writing into a folder that does not exist fails cleanly. */
    int64_t one = 1;
    float x = 0;
    st = npy_write_f32("/nonexistent/dir/x.npy", &x, 1, &one);
    ck_assert_int_eq(st.code, RADDINO_ERR_IO);
}
END_TEST

/* float16 and float64 arrays are read as float32: half values exactly (normal, subnormal,
 * zero, negative, infinity), doubles rounded to nearest. npy_read_f32 keeps refusing them. */
START_TEST(half_and_double)
{
    const char h[] = "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }\n";
    /* 1.0, -2.0, 0.5, 2^-24 (smallest subnormal), 0, inf */
    const uint8_t hv[] = {0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0x01, 0x00, 0x00, 0x00, 0x00, 0x7c};
    uint8_t file[10 + sizeof h - 1 + sizeof hv];
    memcpy(file, "\x93NUMPY\x01\x00", 8);
    file[8] = (uint8_t)(sizeof h - 1);
    file[9] = 0;
    memcpy(file + 10, h, sizeof h - 1);
    memcpy(file + 10 + sizeof h - 1, hv, sizeof hv);
    const char *path = test_write_temp(file, sizeof file, ".npy");
    float *data;
    int n_dims;
    int64_t shape[8];
    raddino_status st = npy_read_float(path, &data, &n_dims, shape);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_int_eq(n_dims, 2);
    ck_assert_int_eq(shape[0], 2);
    ck_assert(data[0] == 1.0f && data[1] == -2.0f && data[2] == 0.5f);
    ck_assert(data[3] == ldexpf(1.0f, -24) && data[4] == 0.0f && isinf(data[5]));
    free(data);
    st = npy_read_f32(path, &data, &n_dims, shape);
    ck_assert_int_eq(st.code, RADDINO_ERR_UNSUPPORTED);

    const char d[] = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n";
    double dv[2] = {0.1, -3.0e10};
    uint8_t file2[10 + sizeof d - 1 + sizeof dv];
    memcpy(file2, "\x93NUMPY\x01\x00", 8);
    file2[8] = (uint8_t)(sizeof d - 1);
    file2[9] = 0;
    memcpy(file2 + 10, d, sizeof d - 1);
    memcpy(file2 + 10 + sizeof d - 1, dv, sizeof dv);
    st = npy_read_float(test_write_temp(file2, sizeof file2, ".npy"), &data, &n_dims, shape);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert(data[0] == 0.1f && data[1] == -3.0e10f);
    free(data);
    /* a truncated float64 file is refused */
    st = npy_read_float(test_write_temp(file2, sizeof file2 - 3, ".npy"), &data, &n_dims, shape);
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, round_trip_2d);
    tcase_add_test(tc, one_and_three_dims);
    tcase_add_test(tc, bad_files);
    tcase_add_test(tc, half_and_double);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
