/* test_csv.c — the label-file CSV reader: quoting (commas, doubled quotes and line breaks
 * inside quotes), LF/CRLF/CR line ends, a byte order mark, blank lines, empty fields, and the
 * errors (unterminated quote, text after a closing quote, NUL byte) naming the line. */
#include "csv.h"
#include "test_util.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

/* Parses text and checks it reads as the records in want ("|" between fields, NULL ends). */
static void expect_records(const char *text, size_t size, const char *const *want)
{
    csv_reader r;
    raddino_status st = csv_open_memory(&r, text, size, "t.csv");
    ck_assert_msg(!st.code, "%s", st.message);
    size_t i = 0;
    int got;
    while ((got = csv_next(&r, &st)) > 0) {
        ck_assert_msg(want[i] != NULL, "extra record %zu", i);
        char joined[512] = "";
        for (size_t f = 0; f < r.n_fields; f++) {
            if (f) strcat(joined, "|");
            strcat(joined, r.fields[f]);
        }
        ck_assert_str_eq(joined, want[i]);
        i++;
    }
    ck_assert_msg(got == 0, "%s", st.message);
    ck_assert_ptr_null(want[i]);
    csv_close(&r);
}

static void expect_error(const char *text, size_t size, const char *message)
{
    csv_reader r;
    raddino_status st = csv_open_memory(&r, text, size, "t.csv");
    int got = 1;
    while (!st.code && (got = csv_next(&r, &st)) > 0) continue;
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    ck_assert_msg(strstr(st.message, message), "'%s' lacks '%s'", st.message, message);
    ck_assert_msg(!strncmp(st.message, "t.csv: ", 7), "%s", st.message);
    csv_close(&r);
}

#define RECORDS(text, ...)                                                               \
    do {                                                                                 \
        static const char *const want[] = {__VA_ARGS__, NULL};                           \
        expect_records(text, sizeof text - 1, want);                                     \
    } while (0)

START_TEST(plain_and_line_ends)
{
    RECORDS("a,b\n1,2\n", "a|b", "1|2");
    RECORDS("a,b\r\n1,2\r\n", "a|b", "1|2");
    RECORDS("a,b\r1,2", "a|b", "1|2");             /* old Mac line ends, no final one */
    RECORDS("a,b\n\n\r\n1,2\n\n", "a|b", "1|2");   /* blank lines skipped */
    RECORDS("\xef\xbb\xbf" "a,b\n", "a|b");        /* the BOM is not part of the first name */
    RECORDS("a,,c,\n,\n", "a||c|", "|");           /* empty fields, trailing comma */
}
END_TEST

START_TEST(quoted_fields)
{
    RECORDS("\"a,b\",c\n", "a,b|c");
    RECORDS("\"say \"\"hi\"\"\",x\n", "say \"hi\"|x");
    RECORDS("\"two\nlines\",x\r\nnext,y\n", "two\nlines|x", "next|y");
    RECORDS("\"crlf\r\ninside\",x\r\n", "crlf\r\ninside|x");
    RECORDS("\"\",\"\"\n", "|");
    RECORDS("\"end\"", "end");
    RECORDS("a\"b,c\n", "a\"b|c");                 /* a quote inside an unquoted field */
}
END_TEST

START_TEST(errors_name_the_line)
{
    expect_error("a,b\n1,\"open\n2,3\n", 16, "line 2: unterminated quoted field");
    expect_error("a,b\r\n\"x\"y,2\r\n", 13, "line 2: text after a closing quote");
    expect_error("a,b\n1,\"two\nlines\"z\n", 19, "line 3: text after a closing quote");
    expect_error("a,b\n1\0,2\n", 9, "NUL byte");
}
END_TEST

START_TEST(empty_and_missing)
{
    csv_reader r;
    raddino_status st = csv_open_memory(&r, "", 0, "t.csv");
    ck_assert(!st.code);
    ck_assert_int_eq(csv_next(&r, &st), 0);
    csv_close(&r);
    st = csv_open(&r, "/nonexistent/labels.csv");
    ck_assert_int_eq(st.code, RADDINO_ERR_IO);
    ck_assert_ptr_nonnull(strstr(st.message, "/nonexistent/labels.csv: "));
    csv_close(&r);
    const char *dir = test_temp_dir();
    char path[4096];
    snprintf(path, sizeof path, "%s/l.csv", dir);
    FILE *f = fopen(path, "wb");
    fputs("path,label\r\n\"/x/a,b.png\",A\r\n", f);
    fclose(f);
    st = csv_open(&r, path);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_int_eq(csv_next(&r, &st), 1);
    ck_assert_int_eq(csv_next(&r, &st), 1);
    ck_assert_uint_eq(r.line, 2);
    ck_assert_str_eq(r.fields[0], "/x/a,b.png");
    ck_assert_str_eq(r.fields[1], "A");
    ck_assert_int_eq(csv_next(&r, &st), 0);
    csv_close(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("csv");
    TCase *t = tcase_create("csv");
    tcase_add_test(t, plain_and_line_ends);
    tcase_add_test(t, quoted_fields);
    tcase_add_test(t, errors_name_the_line);
    tcase_add_test(t, empty_and_missing);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
