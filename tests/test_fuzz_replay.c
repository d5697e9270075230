/* test_fuzz_replay.c — every file of the fuzz regression corpus (tests/fuzz/corpus/<parser>/)
 * through the same entry points the libFuzzer harnesses use (tests/fuzz/fuzz_*.c), without a
 * fuzzing engine. Each must come back with a clean status or a one-line error naming the input;
 * in the sanitizer build ASan and UBSan catch what a crash would not show. */
#include "fuzz.h"
#include "test_util.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*fuzz_fn)(const uint8_t *, size_t);

/* Runs fn on every regular file in corpus/<parser>; returns how many there were. */
static int replay(const char *parser, fuzz_fn fn)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", RADDINO_FUZZ_CORPUS, parser);
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    ck_assert_msg(n >= 0, "%s: cannot list the corpus", dir);
    int files = 0;
    for (int i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (names[i]->d_name[0] != '.') {
            size_t size;
            uint8_t *bytes = test_read_file(path, &size);
            /* An exact-size copy: the NUL test_read_file adds must not hide an overread. */
            uint8_t *exact = malloc(size ? size : 1);
            ck_assert_ptr_nonnull(exact);
            memcpy(exact, bytes, size);
            free(bytes);
            ck_assert_msg(fn(exact, size) == 0, "%s: a harness check failed", path);
            free(exact);
            files++;
        }
        free(names[i]);
    }
    free(names);
    return files;
}

START_TEST(safetensors_corpus) { ck_assert_int_ge(replay("safetensors", fuzz_safetensors), 5); }
END_TEST

START_TEST(config_corpus) { ck_assert_int_ge(replay("config", fuzz_config), 5); }
END_TEST

START_TEST(image_corpus) { ck_assert_int_ge(replay("image", fuzz_image), 5); }
END_TEST

START_TEST(image_formats_corpus)
{
    ck_assert_int_ge(replay("image_formats", fuzz_image_formats), 100);
}
END_TEST

START_TEST(npy_corpus) { ck_assert_int_ge(replay("npy", fuzz_npy), 5); }
END_TEST

START_TEST(dicom_corpus) { ck_assert_int_ge(replay("dicom", fuzz_dicom), 5); }
END_TEST

/* The harness checks themselves can fail: a message without the input's name is caught. */
START_TEST(error_check_catches_bad_messages)
{
    raddino_status good = {RADDINO_ERR_FORMAT, FUZZ_NAME ": bad header"};
    raddino_status unnamed = {RADDINO_ERR_FORMAT, "bad header"};
    raddino_status two_lines = {RADDINO_ERR_FORMAT, FUZZ_NAME ": bad\nheader"};
    raddino_status empty_reason = {RADDINO_ERR_FORMAT, FUZZ_NAME ": "};
    ck_assert_int_eq(fuzz_check_error(&good), 0);
    ck_assert_int_eq(fuzz_check_error(&unnamed), -1);
    ck_assert_int_eq(fuzz_check_error(&two_lines), -1);
    ck_assert_int_eq(fuzz_check_error(&empty_reason), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fuzz_replay");
    TCase *tc = tcase_create("corpus");
    tcase_add_test(tc, safetensors_corpus);
    tcase_add_test(tc, config_corpus);
    tcase_add_test(tc, image_corpus);
    tcase_add_test(tc, image_formats_corpus);
    tcase_add_test(tc, npy_corpus);
    tcase_add_test(tc, dicom_corpus);
    tcase_add_test(tc, error_check_catches_bad_messages);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
