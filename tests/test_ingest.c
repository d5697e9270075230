/* test_ingest.c — raddino_ingest (ingest/raddino_ingest.h) as a library call: a folder indexed,
 * the vectors those of raddino_embed_file, a second run reading nothing, renames reusing
 * vectors, files that are gone removed, a PATH that is gone removing nothing, failures and
 * notes through the callback, the cancel flag, the crash check by fork, and the one table of
 * magic numbers (raddino_image_sniff). The command's own behaviour is tests/test_index.sh's. */
#include "raddino_collection.h"
#include "raddino_encoder.h"
#include "raddino_ingest.h"
#include "raddino_store.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TINY RADDINO_TEST_DATA "/models/tiny"

typedef struct {
    int failed, path_errors, path_gone, roots_kept, dropped, progress;
    char last_failed[512], last_reason[512];
    int cancel_after;   /* > 0: cancel once this many progress calls were seen */
} recorder;

static void on_event(void *user, const raddino_ingest_event *e)
{
    recorder *r = user;
    switch (e->kind) {
    case RADDINO_INGEST_FILE_FAILED:
        r->failed++;
        snprintf(r->last_failed, sizeof r->last_failed, "%s", e->path);
        snprintf(r->last_reason, sizeof r->last_reason, "%s", e->reason);
        break;
    case RADDINO_INGEST_PATH_ERROR: r->path_errors++; break;
    case RADDINO_INGEST_PATH_GONE: r->path_gone++; break;
    case RADDINO_INGEST_ROOT_KEPT: r->roots_kept++; break;
    case RADDINO_INGEST_DROPPED: r->dropped++; break;
    default: break;
    }
}

static void on_progress(void *user, const raddino_ingest_progress *p)
{
    recorder *r = user;
    ck_assert_uint_le(p->done, p->files);
    ck_assert_uint_le(p->read, p->to_read);
    r->progress++;
}

static int cancel(void *user)
{
    recorder *r = user;
    return r->cancel_after > 0 && r->progress >= r->cancel_after;
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    void *data = test_read_file(from, &n);
    FILE *f = fopen(to, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    free(data);
}

static const char *images[] = {"images/xray_nih_00000075_000.png", "images/gray8_300x400.png",
                               "images/rgb8_640x480.jpg", "dicom/dx_image.dcm"};
#define N_IMAGES (sizeof images / sizeof *images)

/* A folder with the four images, a text file and a TIFF header. */
static const char *make_folder(void)
{
    const char *dir = test_temp_dir();
    static char folder[4096];
    snprintf(folder, sizeof folder, "%s", dir);
    char path[4200];
    for (size_t i = 0; i < N_IMAGES; i++) {
        snprintf(path, sizeof path, "%s/%zu_%s", folder, i, strrchr(images[i], '/') + 1);
        copy_file(test_path("%s", images[i]), path);
    }
    snprintf(path, sizeof path, "%s/notes.txt", folder);
    FILE *f = fopen(path, "w");
    fputs("not an image\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/scan.tif", folder);
    f = fopen(path, "wb");
    fwrite("II*\0\x08\0\0\0", 1, 8, f);
    fclose(f);
    return folder;
}

static raddino_encoder *open_tiny(void)
{
    raddino_encoder_params p = raddino_encoder_default_params();
    p.n_threads = 2;
    raddino_encoder *enc;
    raddino_status st = raddino_encoder_open(TINY, &p, &enc);
    ck_assert_msg(!st.code, "%s", st.message);
    return enc;
}

static raddino_store *open_writer(const char *db)
{
    raddino_store_params p = raddino_store_default_params();
    raddino_store *s;
    raddino_status st = raddino_store_open(db, &p, &s);
    ck_assert_msg(!st.code, "%s", st.message);
    return s;
}

static raddino_status ingest(const char *db, raddino_encoder *enc, const char *path,
                             recorder *rec, raddino_ingest_result *r)
{
    raddino_store *s = open_writer(db);
    raddino_ingest_params p = raddino_ingest_default_params();
    p.on_event = on_event;
    p.on_progress = on_progress;
    p.cancel = cancel;
    p.user = rec;
    p.batch = 2;
    p.command = "test_ingest";
    const char *paths[] = {path};
    raddino_status st = raddino_ingest(s, enc, paths, 1, &p, r);
    raddino_store_close(s);
    return st;
}

START_TEST(folder_indexed_updated_and_pruned)
{
    const char *folder = make_folder();
    char db[4200], path[4200], moved[4200];
    snprintf(db, sizeof db, "%s/c.db", test_temp_dir());
    raddino_encoder *enc = open_tiny();
    recorder rec = {0};
    raddino_ingest_result r;
    raddino_status st = ingest(db, enc, folder, &rec, &r);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_int_eq(r.counts.added, (int64_t)N_IMAGES);
    ck_assert_int_eq(r.counts.failed, 1);           /* the TIFF: recognised, not decodable */
    ck_assert_int_eq(r.ignored, 1);                 /* notes.txt */
    ck_assert_uint_eq(r.files, N_IMAGES + 2);
    ck_assert_int_eq(rec.failed, 1);
    ck_assert_ptr_nonnull(strstr(rec.last_failed, "scan.tif"));
    ck_assert_str_eq(rec.last_reason, "TIFF images are not supported (convert them to PNG)");
    ck_assert_int_eq(rec.progress, (int)N_IMAGES + 2);
    ck_assert_int_eq(r.cancelled, 0);

    /* The stored vectors are raddino_embed_file's. */
    raddino_model_info info;
    raddino_encoder_info(enc, &info);
    float *want = malloc((size_t)info.hidden * sizeof *want);
    float *got = malloc((size_t)info.hidden * sizeof *got);
    raddino_store_params rp = raddino_store_default_params();
    rp.read_only = 1;
    raddino_store *s;
    ck_assert_int_eq(raddino_store_open(db, &rp, &s).code, 0);
    for (size_t i = 0; i < N_IMAGES; i++) {
        snprintf(path, sizeof path, "%s/%zu_%s", folder, i, strrchr(images[i], '/') + 1);
        ck_assert_int_eq(raddino_embed_file(enc, path, want, NULL).code, 0);
        raddino_store_image row;
        int found;
        ck_assert_int_eq(raddino_store_find_path(s, path, &row, &found).code, 0);
        ck_assert_int_eq(found, 1);
        ck_assert_int_eq(raddino_store_find_id(s, row.id, got, &row, &found).code, 0);
        ck_assert_int_eq(row.has_vector, 1);
        for (int k = 0; k < info.hidden; k++) ck_assert_float_eq_tol(got[k], want[k], 1e-6);
    }
    raddino_store_close(s);
    free(want);
    free(got);

    /* Again: nothing read. */
    memset(&rec, 0, sizeof rec);
    ck_assert_int_eq(ingest(db, enc, folder, &rec, &r).code, 0);
    ck_assert_int_eq(r.counts.unchanged, (int64_t)N_IMAGES + 1);
    ck_assert_int_eq(r.counts.added + r.counts.updated + r.counts.reused + r.counts.failed, 0);

    /* A rename reuses its vector; the old path is removed. */
    snprintf(path, sizeof path, "%s/1_gray8_300x400.png", folder);
    snprintf(moved, sizeof moved, "%s/moved.png", folder);
    ck_assert_int_eq(rename(path, moved), 0);
    memset(&rec, 0, sizeof rec);
    ck_assert_int_eq(ingest(db, enc, folder, &rec, &r).code, 0);
    ck_assert_int_eq(r.counts.reused, 1);
    ck_assert_int_eq(r.counts.removed, 1);

    /* A folder that is gone removes nothing, and says so. */
    char gone[4300];
    snprintf(gone, sizeof gone, "%s/not-there", folder);
    memset(&rec, 0, sizeof rec);
    ck_assert_int_eq(ingest(db, enc, gone, &rec, &r).code, 0);
    ck_assert_int_eq(r.nothing_walked, 1);
    ck_assert_int_eq(r.path_errors, 1);
    ck_assert_int_eq(rec.path_gone, 1);
    ck_assert_int_eq(r.counts.removed, 0);
    raddino_encoder_close(enc);

    /* Another model is refused, said without naming any option (the command adds its own). */
    raddino_encoder_params ep = raddino_encoder_default_params();
    ep.n_threads = 1;
    ck_assert_int_eq(raddino_encoder_open(RADDINO_TEST_DATA "/models/tiny224", &ep, &enc).code, 0);
    memset(&rec, 0, sizeof rec);
    st = ingest(db, enc, folder, &rec, &r);
    ck_assert_int_eq(st.code, RADDINO_ERR_MODEL);
    ck_assert_int_eq(r.model_refused, 1);
    ck_assert_ptr_nonnull(strstr(st.message, "another model"));
    ck_assert_ptr_null(strstr(st.message, "--"));
    raddino_encoder_close(enc);
}
END_TEST

START_TEST(cancel_stops_after_a_file_and_resumes)
{
    const char *folder = make_folder();
    char db[4200];
    snprintf(db, sizeof db, "%s/c.db", test_temp_dir());
    raddino_encoder *enc = open_tiny();
    recorder rec = {0};
    rec.cancel_after = 2;
    raddino_ingest_result r;
    ck_assert_int_eq(ingest(db, enc, folder, &rec, &r).code, 0);
    ck_assert_int_eq(r.cancelled, 1);
    ck_assert_int_eq(rec.progress, 2);
    int64_t first = r.counts.added + r.counts.failed + r.ignored;
    ck_assert_int_eq(first, 2);
    /* The next run does the rest. */
    memset(&rec, 0, sizeof rec);
    ck_assert_int_eq(ingest(db, enc, folder, &rec, &r).code, 0);
    ck_assert_int_eq(r.cancelled, 0);
    ck_assert_int_eq(r.counts.unchanged + r.counts.added + r.counts.failed + r.ignored,
                     (int64_t)N_IMAGES + 2);
    ck_assert_int_eq(r.counts.unchanged + r.counts.added, (int64_t)N_IMAGES);
    raddino_encoder_close(enc);
}
END_TEST

/* A path left in DB-decoding is decoded again in a forked child (no decode_check_program);
 * when that one dies too, the file is recorded as failed and later runs leave it alone. */
START_TEST(crash_check_by_fork)
{
    const char *folder = make_folder();
    char db[4200], journal[4300], path[4300];
    snprintf(db, sizeof db, "%s/c.db", test_temp_dir());
    snprintf(journal, sizeof journal, "%s-decoding", db);
    snprintf(path, sizeof path, "%s/2_rgb8_640x480.jpg", folder);
    /* One slot of 4 + 4096 bytes: a little-endian length and the path (guard.c). */
    static uint8_t slot[4 + 4096];
    uint32_t len = (uint32_t)strlen(path);
    slot[0] = (uint8_t)len, slot[1] = (uint8_t)(len >> 8);
    slot[2] = (uint8_t)(len >> 16), slot[3] = (uint8_t)(len >> 24);
    memcpy(slot + 4, path, len);
    FILE *f = fopen(journal, "wb");
    ck_assert_uint_eq(fwrite(slot, 1, sizeof slot, f), sizeof slot);
    fclose(f);
    setenv("RADDINO_TEST_CRASH_DECODING", "2_rgb8", 1);
    raddino_encoder *enc = open_tiny();
    recorder rec = {0};
    raddino_ingest_result r;
    raddino_status st = ingest(db, enc, folder, &rec, &r);
    unsetenv("RADDINO_TEST_CRASH_DECODING");
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_int_eq(r.counts.failed, 2);           /* the crashing JPEG and the TIFF */
    ck_assert_int_eq(r.counts.added, (int64_t)N_IMAGES - 1);
    ck_assert_int_eq(access(journal, F_OK), -1);    /* removed at the end of the run */
    raddino_store *s = open_writer(db);
    raddino_store_image row;
    int found;
    ck_assert_int_eq(raddino_store_find_path(s, path, &row, &found).code, 0);
    ck_assert_int_eq(found, 1);
    ck_assert_int_eq(row.status, RADDINO_IMAGE_FAILED);
    ck_assert_ptr_nonnull(strstr(row.reason, "killed an earlier run"));
    raddino_store_close(s);
    raddino_encoder_close(enc);
}
END_TEST

/* The collection returns rows: what a search or a read shows about each image, the store's. */
START_TEST(collection_returns_rows)
{
    const char *folder = make_folder();
    char db[4200];
    snprintf(db, sizeof db, "%s/c.db", test_temp_dir());
    raddino_encoder *enc = open_tiny();
    recorder rec = {0};
    raddino_ingest_result r;
    ck_assert_int_eq(ingest(db, enc, folder, &rec, &r).code, 0);
    raddino_encoder_close(enc);
    raddino_collection_params p = raddino_collection_default_params();
    p.no_save = 1;
    raddino_collection *c;
    ck_assert_int_eq(raddino_collection_open(db, &p, &c).code, 0);
    float *v;
    raddino_collection_row *rows;
    size_t n;
    ck_assert_int_eq(raddino_collection_read_rows(c, &v, &rows, &n).code, 0);
    ck_assert_uint_eq(n, N_IMAGES);
    int dicom = 0;
    raddino_store *s = raddino_collection_store(c);
    for (size_t i = 0; i < n; i++) {
        raddino_store_image img;
        int found;
        ck_assert_int_eq(raddino_store_find_id(s, rows[i].id, NULL, &img, &found).code, 0);
        ck_assert_int_eq(found, 1);
        ck_assert_str_eq(rows[i].path, img.path);
        ck_assert_str_eq(rows[i].sha256, img.sha256);
        raddino_dicom_info d;
        ck_assert_int_eq(raddino_store_get_dicom(s, rows[i].id, &d, &found).code, 0);
        ck_assert_int_eq(rows[i].has_dicom, found);
        if (found) {
            dicom++;
            ck_assert_str_eq(rows[i].sop_instance_uid, d.sop_instance_uid);
            ck_assert_str_eq(rows[i].series_instance_uid, d.series_instance_uid);
            ck_assert_str_eq(rows[i].patient_key, d.patient_key);
            ck_assert_uint_gt(strlen(rows[i].sop_instance_uid), 0);
        }
    }
    ck_assert_int_eq(dicom, 1);
    /* Search by the DICOM image's own vector: itself first, then the rest; one slot empty. */
    size_t at = 0;
    while (!rows[at].has_dicom) at++;
    raddino_collection_info info;
    raddino_collection_get_info(c, &info);
    int k = (int)N_IMAGES + 1;
    raddino_collection_row *hits;
    ck_assert_int_eq(raddino_collection_search_rows(c, v + at * (size_t)info.dim, 1, k, -2.0f,
                                                    NULL, NULL, &hits).code, 0);
    ck_assert_int_eq(hits[0].id, rows[at].id);
    ck_assert_float_eq_tol(hits[0].score, 1.0f, 1e-5);
    ck_assert_str_eq(hits[0].path, rows[at].path);
    ck_assert_int_eq(hits[0].has_dicom, 1);
    ck_assert_str_eq(hits[0].study_instance_uid, rows[at].study_instance_uid);
    for (int i = 1; i < k - 1; i++) ck_assert_int_ge(hits[i].id, 1);
    ck_assert_int_eq(hits[k - 1].id, -1);
    ck_assert_ptr_null(hits[k - 1].path);
    /* Excluding itself: the same rows as the plain search, one place on. */
    int64_t self = rows[at].id;
    raddino_collection_row *others;
    ck_assert_int_eq(raddino_collection_search_rows(c, v + at * (size_t)info.dim, 1, k, -2.0f,
                                                    &self, NULL, &others).code, 0);
    for (int i = 0; i < k - 1; i++) ck_assert_int_eq(others[i].id, hits[i + 1].id);
    raddino_collection_rows_free(others, (size_t)k);
    raddino_collection_rows_free(hits, (size_t)k);
    raddino_collection_rows_free(rows, n);
    free(v);
    raddino_collection_close(c);
}
END_TEST

START_TEST(sniff_is_the_one_table)
{
    raddino_sniff s;
    uint8_t dicom[132] = {0};
    memcpy(dicom + 128, "DICM", 4);
    ck_assert_int_eq(raddino_image_sniff(dicom, sizeof dicom, "x.png", &s), 1);
    ck_assert_str_eq(s.format, "dicom");
    ck_assert_int_eq(s.decodable, 1);
    ck_assert_int_eq(raddino_image_sniff("\x89PNG\r\n\x1a\n", 8, NULL, &s), 1);
    ck_assert_str_eq(s.format, "png");
    ck_assert_int_eq(raddino_image_sniff("\xff\xd8\xff", 3, NULL, &s), 1);
    ck_assert_str_eq(s.format, "jpeg");
    ck_assert_int_eq(raddino_image_sniff("P5\n", 3, NULL, &s), 1);
    ck_assert_str_eq(s.format, "pnm");
    ck_assert_int_eq(raddino_image_sniff("xyz", 3, "a.TGA", &s), 1);
    ck_assert_str_eq(s.format, "tga");
    ck_assert_int_eq(raddino_image_sniff("GIF89a", 6, NULL, &s), 1);
    ck_assert_str_eq(s.format, "gif");
    ck_assert_int_eq(s.decodable, 0);
    ck_assert_ptr_nonnull(s.why);
    /* "BM" without a known DIB header size is not a BMP. */
    uint8_t bm[18] = {'B', 'M'};
    ck_assert_int_eq(raddino_image_sniff(bm, sizeof bm, NULL, &s), 0);
    bm[14] = 40;
    ck_assert_int_eq(raddino_image_sniff(bm, sizeof bm, NULL, &s), 1);
    ck_assert_str_eq(s.format, "bmp");
    ck_assert_int_eq(raddino_image_sniff("hello", 5, "a.txt", &s), 0);
    ck_assert_ptr_null(s.format);
    ck_assert_int_eq(raddino_image_sniff(NULL, 0, NULL, &s), 0);
}
END_TEST

/* The encoding workers (params.workers > 0, one file per thread, the default) and the decoder
 * threads feeding the encoder (< 0) store the same rows under the same ids, and every vector is
 * raddino_embed_file's bit for bit (a worker encodes on one thread, the encoder on two: the same
 * sums in the same order). Bad files among good ones fail one by one, one event each, and the
 * run goes on. Both a model with a fixed input size (pixels preprocessed by the worker's
 * decoder) and one whose size follows the image (the worker embeds the decoded image). */
static const char *pipeline_files[] = {
    "images/xray_nih_00000075_000.png", "images/gray8_300x400.png", "images/rgb8_640x480.jpg",
    "images/gray8prog_500x600.jpg",     "images/xray_nih_00001369_000_rgba.png",
    "dicom/dx_image.dcm",               "dicom/RG2_hip_q_J2KR.dcm",
    "dicom/RG2_hip_q_JLSL.dcm",         "dicom/RG1_chest_q_JPEGLossless_P14_SV6.dcm",
    "dicom/RG1_chest_q_RLE.dcm",        "dicom/RG3_J2KI.dcm"};
#define N_PIPELINE (sizeof pipeline_files / sizeof *pipeline_files)

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* The good files as NN_name, and between them three bad ones: a DICOM cut after its header's
 * start, a PNG signature followed by garbage, a JPEG that ends after its SOI marker. */
static const char *make_pipeline_folder(void)
{
    static char folder[4096];
    snprintf(folder, sizeof folder, "%s/pipeline", test_temp_dir());
    ck_assert_int_eq(mkdir(folder, 0755), 0);
    char path[4300];
    for (size_t i = 0; i < N_PIPELINE; i++) {
        snprintf(path, sizeof path, "%s/%02zu_%s", folder, 2 * i,
                 strrchr(pipeline_files[i], '/') + 1);
        copy_file(test_path("%s", pipeline_files[i]), path);
    }
    size_t n;
    uint8_t *dicom = test_read_file(test_path("dicom/RG2_hip_q_J2KR.dcm"), &n);
    snprintf(path, sizeof path, "%s/03_bad_cut.dcm", folder);
    write_bytes(path, dicom, 400);
    free(dicom);
    snprintf(path, sizeof path, "%s/09_bad_garbage.png", folder);
    static const char garbage[] = "\x89PNG\r\n\x1a\nthis is not a PNG stream at all";
    write_bytes(path, garbage, sizeof garbage - 1);
    snprintf(path, sizeof path, "%s/15_bad_soi.jpg", folder);
    static const char soi[] = "\xff\xd8\xff";
    write_bytes(path, soi, sizeof soi - 1);
    return folder;
}
#define N_PIPELINE_BAD 3

START_TEST(workers_store_what_embedding_one_by_one_does)
{
    const char *folder = make_pipeline_folder();
    static const char *models[] = {TINY, RADDINO_TEST_DATA "/models/tiny224"};
    static const int modes[] = {3, 1, -1};
    for (size_t m = 0; m < 2; m++) {
        raddino_encoder_params ep = raddino_encoder_default_params();
        ep.n_threads = 2;
        raddino_encoder *enc;
        raddino_status st = raddino_encoder_open(models[m], &ep, &enc);
        ck_assert_msg(!st.code, "%s", st.message);
        raddino_model_info info;
        raddino_encoder_info(enc, &info);
        char db[3][4300];
        for (size_t k = 0; k < 3; k++) {
            snprintf(db[k], sizeof db[k], "%s/w%zu_%d.db", test_temp_dir(), m, modes[k]);
            raddino_store *s = open_writer(db[k]);
            raddino_ingest_params p = raddino_ingest_default_params();
            recorder rec = {0};
            p.on_event = on_event;
            p.user = &rec;
            p.workers = modes[k];
            p.batch = 4;
            raddino_ingest_result r;
            const char *paths[] = {folder};
            st = raddino_ingest(s, enc, paths, 1, &p, &r);
            raddino_store_close(s);
            ck_assert_msg(!st.code, "%s", st.message);
            ck_assert_int_eq(r.counts.added, (int64_t)N_PIPELINE);
            ck_assert_int_eq(r.counts.failed, N_PIPELINE_BAD);
            ck_assert_int_eq(rec.failed, N_PIPELINE_BAD);
            ck_assert_ptr_nonnull(strstr(rec.last_failed, "15_bad_soi.jpg"));
            ck_assert_ptr_null(strstr(rec.last_reason, rec.last_failed));  /* not named twice */
        }
        float *want = malloc((size_t)info.hidden * sizeof *want);
        float *got = malloc((size_t)info.hidden * sizeof *got);
        for (size_t i = 0; i < N_PIPELINE; i++) {
            char path[4300];
            snprintf(path, sizeof path, "%s/%02zu_%s", folder, 2 * i,
                     strrchr(pipeline_files[i], '/') + 1);
            st = raddino_embed_file(enc, path, want, NULL);
            ck_assert_msg(!st.code, "%s", st.message);
            int64_t id = -1;
            for (size_t k = 0; k < 3; k++) {
                raddino_store_params rp = raddino_store_default_params();
                rp.read_only = 1;
                raddino_store *s;
                ck_assert_int_eq(raddino_store_open(db[k], &rp, &s).code, 0);
                raddino_store_image row;
                int found;
                ck_assert_int_eq(raddino_store_find_path(s, path, &row, &found).code, 0);
                ck_assert_int_eq(found, 1);
                if (k == 0) id = row.id;
                ck_assert_int_eq(row.id, id);       /* the same ids, in every mode */
                ck_assert_int_eq(raddino_store_find_id(s, row.id, got, &row, &found).code, 0);
                ck_assert_int_eq(row.has_vector, 1);
                ck_assert_msg(!memcmp(got, want, (size_t)info.hidden * sizeof *got),
                              "%s, workers %d: not the vector of raddino_embed_file", path,
                              modes[k]);
                raddino_store_close(s);
            }
        }
        free(want);
        free(got);
        raddino_encoder_close(enc);
    }
}
END_TEST

/* A worker is the encoder, bit for bit, on either entry point, in a thread of its own. */
START_TEST(worker_is_the_encoder)
{
    raddino_encoder *enc = open_tiny();
    raddino_model_info info;
    raddino_encoder_info(enc, &info);
    raddino_image img;
    raddino_status st =
        raddino_image_load(test_path("images/xray_nih_00000075_000.png"), 0, &img);
    ck_assert_msg(!st.code, "%s", st.message);
    float *want = malloc((size_t)info.hidden * sizeof *want);
    float *got = malloc((size_t)info.hidden * sizeof *got);
    ck_assert_int_eq(raddino_embed_image(enc, &img, want, NULL).code, 0);
    raddino_encoder_worker *w;
    ck_assert_int_eq(raddino_encoder_worker_create(enc, &w).code, 0);
    int threads = omp_get_max_threads();
    ck_assert_int_eq(raddino_encoder_worker_embed_image(w, &img, got, NULL).code, 0);
    ck_assert(!memcmp(got, want, (size_t)info.hidden * sizeof *got));
    if (info.input_height > 0) {
        float *pixels = malloc((size_t)3 * info.input_height * info.input_width * sizeof *pixels);
        ck_assert_int_eq(raddino_preprocess(enc, &img, NULL, pixels).code, 0);
        memset(got, 0, (size_t)info.hidden * sizeof *got);
        ck_assert_int_eq(raddino_encoder_worker_encode(w, pixels, got, NULL).code, 0);
        ck_assert(!memcmp(got, want, (size_t)info.hidden * sizeof *got));
        free(pixels);
    } else {
        /* No fixed input size: the pixels entry point says which one to use. */
        float one = 0;
        st = raddino_encoder_worker_encode(w, &one, got, NULL);
        ck_assert_int_eq(st.code, RADDINO_ERR_ARGUMENT);
    }
    /* The calling thread's OpenMP thread count is left as it was. */
    ck_assert_int_eq(omp_get_max_threads(), threads);
    raddino_encoder_worker_free(w);
    raddino_encoder_worker_free(NULL);
    raddino_image_free(&img);
    free(want);
    free(got);
    raddino_encoder_close(enc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ingest");
    TCase *t = tcase_create("ingest");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, folder_indexed_updated_and_pruned);
    tcase_add_test(t, cancel_stops_after_a_file_and_resumes);
    tcase_add_test(t, crash_check_by_fork);
    tcase_add_test(t, collection_returns_rows);
    tcase_add_test(t, sniff_is_the_one_table);
    tcase_add_test(t, workers_store_what_embedding_one_by_one_does);
    tcase_add_test(t, worker_is_the_encoder);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
