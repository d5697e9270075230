/* test_flat.c — raddino.h against libraddino.so itself (this suite links the shared library, not
 * the static ones): build information, and the flat entry points the Python binding calls,
 * each against the structured API it stands for, with their argument checks. Runs under the
 * sanitizers too (the Python tests of the same functions cannot load an ASan library). */
#include "raddino.h"
#include "test_util.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *model_dir(void) { return test_path("models/tiny"); }

START_TEST(build_info)
{
    raddino_build_info b;
    raddino_get_build_info(&b);
    ck_assert_ptr_nonnull(b.version);
    ck_assert_int_gt((int)strlen(b.git_commit), 0);
    ck_assert(!strcmp(b.kernel, "avx512-bf16") || !strcmp(b.kernel, "avx512") ||
              !strcmp(b.kernel, "openblas"));
    ck_assert(!strcmp(b.openblas_parallel, "openmp") || !strcmp(b.openblas_parallel, "pthread") ||
              !strcmp(b.openblas_parallel, "serial"));
    char json[4096];
    raddino_status st = raddino_build_info_json(json, sizeof json);
    ck_assert_msg(st.code == 0, "%s", st.message);
    cJSON *root = cJSON_Parse(json);
    ck_assert_ptr_nonnull(root);
    ck_assert_str_eq(cJSON_GetObjectItem(root, "version")->valuestring, b.version);
    ck_assert_str_eq(cJSON_GetObjectItem(root, "git_commit")->valuestring, b.git_commit);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "openblas"), "parallel")
                         ->valuestring, b.openblas_parallel);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "kernel"), "best")->valuestring,
                     b.kernel);
    cJSON_Delete(root);
    /* Too small a buffer: refused, left empty. */
    char small[16] = "x";
    st = raddino_build_info_json(small, sizeof small);
    ck_assert_int_eq(st.code, RADDINO_ERR_ARGUMENT);
    ck_assert_str_eq(small, "");
}
END_TEST

/* A PPM file holding the pixels (the library decodes PNM through stb_image). */
static const char *write_ppm(const uint8_t *rgb, int w, int h)
{
    char header[64];
    int n = snprintf(header, sizeof header, "P6\n%d %d\n255\n", w, h);
    size_t size = (size_t)n + (size_t)w * h * 3;
    char *buf = malloc(size);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, header, (size_t)n);
    memcpy(buf + n, rgb, (size_t)w * h * 3);
    const char *path = test_write_temp(buf, size, ".ppm");
    free(buf);
    return path;
}

START_TEST(encoder)
{
    raddino_encoder *enc = NULL;
    raddino_status st = raddino_encoder_open_simple(model_dir(), RADDINO_PRECISION_FP32, 2, &enc);
    ck_assert_msg(st.code == 0, "%s", st.message);
    int hidden = 0, tokens = 0, height = 0, width = 0;
    const char *kernel = NULL;
    st = raddino_encoder_shape(enc, &hidden, &tokens, &height, &width, &kernel);
    ck_assert_int_eq(st.code, 0);
    raddino_model_info info;
    raddino_encoder_info(enc, &info);
    ck_assert_int_eq(hidden, info.hidden);
    ck_assert_int_eq(tokens, info.tokens);
    ck_assert_int_eq(height, info.input_height);
    ck_assert_int_eq(width, info.input_width);
    ck_assert_str_eq(kernel, info.kernel);

    /* embed_rgb = embed_file of the same pixels, bit for bit; tokens too. */
    int w = 61, h = 47;
    uint8_t *rgb = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++) rgb[i] = (uint8_t)((i * 7919u) >> 3);
    const char *ppm = write_ppm(rgb, w, h);
    float *a = malloc((size_t)hidden * sizeof *a), *b = malloc((size_t)hidden * sizeof *b);
    float *ta = malloc((size_t)tokens * hidden * sizeof *ta);
    float *tb = malloc((size_t)tokens * hidden * sizeof *tb);
    st = raddino_embed_rgb(enc, rgb, w, h, a, ta);
    ck_assert_msg(st.code == 0, "%s", st.message);
    st = raddino_embed_file(enc, ppm, b, tb);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert(!memcmp(a, b, (size_t)hidden * sizeof *a));
    ck_assert(!memcmp(ta, tb, (size_t)tokens * hidden * sizeof *ta));
    ck_assert_int_eq(raddino_embed_rgb(enc, rgb, 0, h, a, NULL).code, RADDINO_ERR_ARGUMENT);
    ck_assert_int_eq(raddino_embed_rgb(enc, NULL, w, h, a, NULL).code, RADDINO_ERR_ARGUMENT);

    /* preprocess_file = image_load + preprocess. */
    size_t np = 3 * (size_t)height * width;
    float *pa = malloc(np * sizeof *pa), *pb = malloc(np * sizeof *pb);
    uint8_t *ca = malloc(np), *cb = malloc(np);
    st = raddino_preprocess_file(enc, ppm, ca, pa);
    ck_assert_msg(st.code == 0, "%s", st.message);
    raddino_image img;
    st = raddino_image_load(ppm, 0, &img);
    ck_assert_int_eq(st.code, 0);
    st = raddino_preprocess(enc, &img, cb, pb);
    ck_assert_int_eq(st.code, 0);
    raddino_image_free(&img);
    ck_assert(!memcmp(pa, pb, np * sizeof *pa));
    ck_assert(!memcmp(ca, cb, np));
    st = raddino_preprocess_file(enc, "/nonexistent/x.png", NULL, pa);
    ck_assert_int_ne(st.code, 0);
    ck_assert_ptr_nonnull(strstr(st.message, "/nonexistent/x.png"));

    free(rgb);
    free(a);
    free(b);
    free(ta);
    free(tb);
    free(pa);
    free(pb);
    free(ca);
    free(cb);
    raddino_encoder_close(enc);

    /* No folder: $RADDINO_MODEL. A folder that is not there: its message. */
    setenv("RADDINO_MODEL", model_dir(), 1);
    st = raddino_encoder_open_simple(NULL, RADDINO_PRECISION_FP32, 1, &enc);
    ck_assert_msg(st.code == 0, "%s", st.message);
    raddino_encoder_close(enc);
    unsetenv("RADDINO_MODEL");
    st = raddino_encoder_open_simple("/nonexistent/model", RADDINO_PRECISION_FP32, 1, &enc);
    ck_assert_int_ne(st.code, 0);
    ck_assert_ptr_null(enc);
    ck_assert_ptr_nonnull(strstr(st.message, "/nonexistent/model"));
    ck_assert_int_eq(raddino_encoder_open_simple(model_dir(), 0, 1, NULL).code,
                     RADDINO_ERR_ARGUMENT);
}
END_TEST

START_TEST(collection)
{
    /* A store of three images with vectors under a made-up model, written with the store API. */
    const char *dir = test_temp_dir();
    char db_path[1024], paths[3][1024];
    snprintf(db_path, sizeof db_path, "%s/c.db", dir);
    raddino_store_params sp = raddino_store_default_params();
    raddino_store *db;
    raddino_status st = raddino_store_open(db_path, &sp, &db);
    ck_assert_msg(st.code == 0, "%s", st.message);
    enum { DIM = 8 };
    raddino_store_model m = {"0000000000000000000000000000000000000000000000000000000000000000",
                             "{}", NULL, NULL, DIM};
    int64_t model_id, dropped;
    st = raddino_store_use_model(db, &m, 0, &model_id, &dropped);
    ck_assert_msg(st.code == 0, "%s", st.message);
    float v[3][DIM];
    int64_t ids[3];
    ck_assert_int_eq(raddino_store_begin(db).code, 0);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < DIM; j++) v[i][j] = (float)((i + 1) * (j % 3 == i ? 3 : 1)) + 0.25f * j;
        snprintf(paths[i], sizeof paths[i], "%s/img%d.png", dir, i);
        raddino_store_image img = {.path = paths[i], .size = 10 + i, .mtime_ns = 1, .width = 4,
                                   .height = 4, .format = "png", .status = RADDINO_IMAGE_OK};
        snprintf(img.sha256, sizeof img.sha256, "%064d", i + 1);
        st = raddino_store_put_image(db, &img, v[i], &ids[i]);
        ck_assert_msg(st.code == 0, "%s", st.message);
    }
    ck_assert_int_eq(raddino_store_commit(db).code, 0);
    raddino_store_close(db);

    raddino_collection *c;
    st = raddino_collection_open_simple(db_path, &c);
    ck_assert_msg(st.code == 0, "%s", st.message);
    int dim;
    int64_t n;
    ck_assert_int_eq(raddino_collection_shape(c, &dim, &n).code, 0);
    ck_assert_int_eq(dim, DIM);
    ck_assert_int_eq(n, 3);
    for (int i = 0; i < 3; i++) {
        char path[1024];
        int found;
        st = raddino_collection_path(c, ids[i], path, sizeof path, &found);
        ck_assert_int_eq(st.code, 0);
        ck_assert_int_eq(found, 1);
        ck_assert_str_eq(path, paths[i]);
        int64_t id;
        st = raddino_collection_find(c, paths[i], &id, &found);
        ck_assert_int_eq(st.code, 0);
        ck_assert_int_eq(found, 1);
        ck_assert_int_eq(id, ids[i]);
        float got[DIM];
        st = raddino_collection_get_vector(c, ids[i], got, &found);
        ck_assert_int_eq(st.code, 0);
        ck_assert_int_eq(found, 1);
        ck_assert(!memcmp(got, v[i], sizeof got));
    }
    char path[8];
    int found;
    st = raddino_collection_path(c, ids[0], path, sizeof path, &found);   /* does not fit */
    ck_assert_int_eq(st.code, RADDINO_ERR_ARGUMENT);
    st = raddino_collection_path(c, 999, path, sizeof path, &found);
    ck_assert_int_eq(st.code, 0);
    ck_assert_int_eq(found, 0);
    int64_t id;
    st = raddino_collection_find(c, "/nowhere.png", &id, &found);
    ck_assert_int_eq(st.code, 0);
    ck_assert_int_eq(found, 0);
    ck_assert_int_eq(id, -1);

    /* Statistics as JSON. */
    char json[8192];
    st = raddino_collection_stats_json(c, json, sizeof json);
    ck_assert_msg(st.code == 0, "%s", st.message);
    cJSON *root = cJSON_Parse(json);
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(cJSON_GetObjectItem(root, "images")->valueint, 3);
    ck_assert_int_eq(cJSON_GetObjectItem(root, "vectors")->valueint, 3);
    ck_assert_int_eq(cJSON_GetObjectItem(root, "dim")->valueint, DIM);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(root, "models")), 1);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(root, "last_run")));
    cJSON_Delete(root);
    ck_assert_int_eq(raddino_collection_stats_json(c, json, 10).code, RADDINO_ERR_ARGUMENT);

    /* An encoder of another model is refused. */
    raddino_encoder *enc;
    st = raddino_encoder_open_simple(model_dir(), RADDINO_PRECISION_FP32, 1, &enc);
    ck_assert_int_eq(st.code, 0);
    st = raddino_collection_check_encoder(c, enc);
    ck_assert_int_eq(st.code, RADDINO_ERR_MODEL);
    raddino_encoder_close(enc);

    /* k-means: the flat call gives raddino_kmeans's result. */
    float *all;
    int64_t *all_ids;
    size_t count;
    st = raddino_collection_read_all(c, &all, &all_ids, &count);
    ck_assert_int_eq(st.code, 0);
    ck_assert_int_eq(count, 3);
    float centroids[2 * DIM], distance[3];
    int32_t assignment[3];
    double objective;
    st = raddino_kmeans_simple(all, count, DIM, 2, 1234, 0, 0, 1, centroids, assignment, distance,
                               &objective);
    ck_assert_msg(st.code == 0, "%s", st.message);
    raddino_kmeans_params kp = raddino_kmeans_default_params();
    kp.k = 2;
    kp.seed = 1234;
    kp.n_threads = 1;
    raddino_kmeans_result r;
    st = raddino_kmeans(all, count, DIM, &kp, &r);
    ck_assert_int_eq(st.code, 0);
    ck_assert(!memcmp(centroids, r.centroids, sizeof centroids));
    ck_assert(!memcmp(assignment, r.assignment, sizeof assignment));
    ck_assert(!memcmp(distance, r.distance, sizeof distance));
    ck_assert(objective == r.objective);
    raddino_kmeans_result_free(&r);
    st = raddino_kmeans_simple(all, count, DIM, 5, 1234, 0, 0, 1, NULL, NULL, NULL, NULL);
    ck_assert_int_ne(st.code, 0);   /* more clusters than vectors */
    raddino_free(all);
    raddino_free(all_ids);
    raddino_collection_close(c);

    st = raddino_collection_open_simple("/nonexistent/c.db", &c);
    ck_assert_int_ne(st.code, 0);
    ck_assert_ptr_nonnull(strstr(st.message, "/nonexistent/c.db"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("flat");
    TCase *tc = tcase_create("flat");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, build_info);
    tcase_add_test(tc, encoder);
    tcase_add_test(tc, collection);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
