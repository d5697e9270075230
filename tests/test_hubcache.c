/* test_hubcache.c — finding a model in the Hugging Face cache without the network: which
 * environment variable wins, and hand-made caches laid out as huggingface_hub writes them,
 * including damaged ones. (Downloads are tested end to end by tests/test_hub.sh.) */
#include "raddino_encoder.h"
#include "raddino_hub.h"
#include "test_util.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMMIT "89abcdef0123456789abcdef0123456789abcdef"

static void clear_env(void)
{
    const char *vars[] = {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) unsetenv(vars[i]);
}

static const char *cache_dir(void)
{
    static char out[RADDINO_PATH_MAX];
    raddino_status st = raddino_hub_cache_dir(out, sizeof out);
    ck_assert_msg(!st.code, "%s", st.message);
    return out;
}

START_TEST(cache_dir_precedence)
{
    clear_env();
    setenv("HOME", "/home/u", 1);
    ck_assert_str_eq(cache_dir(), "/home/u/.cache/huggingface/hub");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    ck_assert_str_eq(cache_dir(), "/xdg/huggingface/hub");
    setenv("HF_HOME", "~/hf", 1);                  /* expanded as Python's expanduser does */
    ck_assert_str_eq(cache_dir(), "/home/u/hf/hub");
    setenv("HUGGINGFACE_HUB_CACHE", "/legacy", 1);
    ck_assert_str_eq(cache_dir(), "/legacy");
    setenv("HF_HUB_CACHE", "/hub", 1);
    ck_assert_str_eq(cache_dir(), "/hub");
    setenv("HF_HUB_CACHE", "", 1);                 /* empty counts as unset */
    ck_assert_str_eq(cache_dir(), "/legacy");
    clear_env();
}
END_TEST

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* CACHE/models--microsoft--rad-dino with blobs, a snapshot of symlinks and refs/main. */
static const char *make_cache(const char *ref_text, bool weights)
{
    const char *cache = test_temp_dir();
    char root[1024], path[1200], target[1200];
    snprintf(root, sizeof root, "%s/models--microsoft--rad-dino", cache);
    const char *dirs[] = {"", "/blobs", "/snapshots", "/snapshots/" COMMIT, "/refs"};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s%s", root, dirs[i]);
        ck_assert_int_eq(mkdir(path, 0755), 0);
    }
    const char *files[] = {"config.json", "preprocessor_config.json", "model.safetensors"};
    for (int i = 0; i < (weights ? 3 : 2); i++) {
        snprintf(path, sizeof path, "%s/blobs/blob%d", root, i);
        size_t size;
        void *bytes = test_read_file(test_path("models/tiny/%s", files[i]), &size);
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(bytes, 1, size, f), size);
        fclose(f);
        free(bytes);
        snprintf(target, sizeof target, "../../blobs/blob%d", i);
        snprintf(path, sizeof path, "%s/snapshots/%s/%s", root, COMMIT, files[i]);
        ck_assert_int_eq(symlink(target, path), 0);
    }
    snprintf(path, sizeof path, "%s/refs/main", root);
    write_text(path, ref_text);
    return cache;
}

START_TEST(find_python_layout)
{
    /* huggingface_hub writes the ref without a newline; a newline is accepted too. */
    const char *refs[] = {COMMIT, COMMIT "\n"};
    for (int i = 0; i < 2; i++) {
        const char *cache = make_cache(refs[i], true);
        raddino_hub_model m;
        raddino_status st = raddino_hub_find(cache, NULL, NULL, &m);
        ck_assert_msg(!st.code, "%s", st.message);
        ck_assert_str_eq(m.commit, COMMIT);
        ck_assert_str_eq(m.repo, "microsoft/rad-dino");
        ck_assert_str_eq(m.revision, "main");
        const char *snapshot = "/models--microsoft--rad-dino/snapshots/" COMMIT;
        ck_assert_ptr_nonnull(strstr(m.model_dir, snapshot));
        /* The folder opens as a model. */
        raddino_encoder_params params = raddino_encoder_default_params();
        params.n_threads = 1;
        raddino_encoder *enc;
        st = raddino_encoder_open(m.model_dir, &params, &enc);
        ck_assert_msg(!st.code, "%s", st.message);
        raddino_encoder_close(enc);
        /* A commit hash names the snapshot without any ref. */
        st = raddino_hub_find(cache, "microsoft/rad-dino", COMMIT, &m);
        ck_assert_msg(!st.code, "%s", st.message);
        ck_assert_str_eq(m.revision, COMMIT);
    }
}
END_TEST

START_TEST(find_refuses)
{
    raddino_hub_model m;
    const char *empty = test_temp_dir();
    raddino_status st = raddino_hub_find(empty, NULL, NULL, &m);
    ck_assert_int_eq(st.code, RADDINO_ERR_NOT_FOUND);
    ck_assert_msg(strstr(st.message, "not in the Hugging Face cache"), "%s", st.message);
    ck_assert_msg(!strstr(st.message, "model fetch"), "library message names a command: %s",
                  st.message);

    const char *cache = make_cache(COMMIT, true);
    st = raddino_hub_find(cache, NULL, "v2", &m);
    ck_assert_int_eq(st.code, RADDINO_ERR_NOT_FOUND);
    st = raddino_hub_find(cache, "microsoft/other", NULL, &m);
    ck_assert_int_eq(st.code, RADDINO_ERR_NOT_FOUND);
    /* Names that could leave the cache folder are refused before any path is built. */
    const char *bad_repos[] = {"rad-dino", "a/b/c", "../x", "a/..", "/x", "a/", "a--b/c", "a/b c"};
    for (size_t i = 0; i < sizeof bad_repos / sizeof *bad_repos; i++) {
        st = raddino_hub_find(cache, bad_repos[i], NULL, &m);
        ck_assert_msg(st.code == RADDINO_ERR_ARGUMENT, "%s accepted", bad_repos[i]);
    }
    const char *bad_revs[] = {"", "../main", "/etc/passwd", "a//b", "a/", "-x", "a b"};
    for (size_t i = 0; i < sizeof bad_revs / sizeof *bad_revs; i++) {
        st = raddino_hub_find(cache, NULL, bad_revs[i], &m);
        ck_assert_msg(st.code == RADDINO_ERR_ARGUMENT, "'%s' accepted", bad_revs[i]);
    }
    /* A ref that is not a commit hash. */
    cache = make_cache("../../../../etc", true);
    st = raddino_hub_find(cache, NULL, NULL, &m);
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    /* A ref to a commit with no snapshot. */
    cache = make_cache("0000000000000000000000000000000000000000", true);
    st = raddino_hub_find(cache, NULL, NULL, &m);
    ck_assert_int_eq(st.code, RADDINO_ERR_NOT_FOUND);
    /* A snapshot without weights, and one whose blob is gone. */
    cache = make_cache(COMMIT, false);
    st = raddino_hub_find(cache, NULL, NULL, &m);
    ck_assert_int_eq(st.code, RADDINO_ERR_IO);
    ck_assert_msg(strstr(st.message, "incomplete snapshot"), "%s", st.message);
    cache = make_cache(COMMIT, true);
    char blob[1200];
    snprintf(blob, sizeof blob, "%s/models--microsoft--rad-dino/blobs/blob0", cache);
    ck_assert_int_eq(unlink(blob), 0);
    st = raddino_hub_find(cache, NULL, NULL, &m);
    ck_assert_int_eq(st.code, RADDINO_ERR_IO);
    ck_assert_msg(strstr(st.message, "config.json"), "%s", st.message);
}
END_TEST

START_TEST(fetch_offline_touches_nothing)
{
    /* Offline with an endpoint nobody listens on: served from the cache, or refused. */
    raddino_fetch_params p = raddino_fetch_default_params();
    p.offline = 1;
    p.endpoint = "http://127.0.0.1:1";
    p.cache_dir = make_cache(COMMIT, true);
    raddino_hub_model m;
    raddino_status st = raddino_hub_fetch(&p, &m);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_str_eq(m.commit, COMMIT);
    p.cache_dir = test_temp_dir();
    st = raddino_hub_fetch(&p, &m);
    ck_assert_int_eq(st.code, RADDINO_ERR_NETWORK);
    ck_assert_msg(strstr(st.message, "HF_HUB_OFFLINE"), "%s", st.message);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hubcache");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, cache_dir_precedence);
    tcase_add_test(tc, find_python_layout);
    tcase_add_test(tc, find_refuses);
    tcase_add_test(tc, fetch_offline_touches_nothing);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
