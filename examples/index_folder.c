/* index_folder.c — index a folder of X-rays and search it, through libraddino's headers alone:
 *
 *     cc -o index_folder index_folder.c $(pkg-config --cflags --libs raddino)
 *     ./index_folder MODEL_DIR FOLDER DB QUERY [K]
 *
 * Opens the model, brings the collection DB up to date with FOLDER (raddino_ingest: new and
 * changed files embedded, renamed ones reused, files that are gone removed; what `raddino index
 * --db DB --model MODEL_DIR FOLDER` does), then embeds the image QUERY and prints its K nearest
 * stored images (default 5): rank, cosine, id, path, as `raddino search --db DB --model MODEL_DIR
 * -k K QUERY` prints them. Files that could not be indexed are named on stderr.
 */
#include <raddino/raddino.h>

#include <stdio.h>
#include <stdlib.h>

static void on_event(void *user, const raddino_ingest_event *e)
{
    (void)user;
    if (e->kind == RADDINO_INGEST_FILE_FAILED)
        fprintf(stderr, "index_folder: %s: %s\n", e->path, e->reason);
    else if (e->kind == RADDINO_INGEST_PATH_ERROR || e->kind == RADDINO_INGEST_PATH_GONE)
        fprintf(stderr, "index_folder: %s%s%s\n", e->path ? e->path : "", e->path ? ": " : "",
                e->reason);
}

/* Step 1: the collection in step with the folder. */
static raddino_status index_folder(raddino_encoder *enc, const char *folder, const char *db)
{
    raddino_store_params sp = raddino_store_default_params();     /* a writer */
    raddino_store *store;
    raddino_status st = raddino_store_open(db, &sp, &store);
    if (st.code) return st;
    raddino_ingest_params ip = raddino_ingest_default_params();
    ip.on_event = on_event;
    ip.command = "examples/index_folder";
    raddino_ingest_result r;
    st = raddino_ingest(store, enc, &folder, 1, &ip, &r);
    raddino_store_close(store);
    if (!st.code)
        printf("indexed %zu files: %lld added, %lld updated, %lld reused, %lld unchanged, "
               "%lld failed, %lld removed\n", r.files, (long long)r.counts.added,
               (long long)r.counts.updated, (long long)r.counts.reused,
               (long long)r.counts.unchanged, (long long)r.counts.failed,
               (long long)r.counts.removed);
    return st;
}

/* Step 2: the nearest stored images to a query file. */
static raddino_status search(raddino_encoder *enc, const char *db, const char *query, int k)
{
    raddino_collection_params cp = raddino_collection_default_params();
    raddino_collection *c;
    raddino_status st = raddino_collection_open(db, &cp, &c);
    if (st.code) return st;
    raddino_model_info info;
    raddino_encoder_info(enc, &info);
    float *q = malloc((size_t)info.hidden * sizeof *q);
    raddino_collection_row *hits = NULL;    /* id, score, path, sha256, DICOM UIDs */
    if (!q) st = raddino_status_error(RADDINO_ERR_NOMEM, "out of memory");
    /* Vectors of two models do not compare: the collection checks the encoder's identity. */
    if (!st.code) st = raddino_collection_check_encoder(c, enc);
    if (!st.code) st = raddino_embed_file(enc, query, q, NULL);
    if (!st.code) st = raddino_collection_search_rows(c, q, 1, k, -2.0f, NULL, NULL, &hits);
    if (!st.code) printf("# %s\n", query);
    for (int i = 0; !st.code && i < k && hits[i].id >= 0; i++)
        printf("%4d  %.6f  %8lld  %s\n", i + 1, hits[i].score, (long long)hits[i].id,
               hits[i].path);
    raddino_collection_rows_free(hits, hits ? (size_t)k : 0);
    free(q);
    raddino_collection_close(c);
    return st;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: %s MODEL_DIR FOLDER DB QUERY [K]\n", argv[0]);
        return 2;
    }
    int k = argc > 5 ? atoi(argv[5]) : 5;
    if (k < 1) {
        fprintf(stderr, "index_folder: K must be at least 1\n");
        return 2;
    }
    raddino_encoder_params ep = raddino_encoder_default_params();
    raddino_encoder *enc;
    raddino_status st = raddino_encoder_open(argv[1], &ep, &enc);
    if (!st.code) st = index_folder(enc, argv[2], argv[3]);
    if (!st.code) st = search(enc, argv[3], argv[4], k);
    if (st.code) fprintf(stderr, "index_folder: %s\n", st.message);
    raddino_encoder_close(enc);
    return st.code ? 1 : 0;
}
