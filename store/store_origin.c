/* store_origin.c — where the collection's model was found (raddino_store_set_model_origin).
 * One meta row per field, the value a BLOB: meta.value has INTEGER affinity, which would turn
 * a text such as a revision "01" into the number 1; a BLOB is kept byte for byte. */
#include "store_internal.h"

#include <string.h>

typedef struct {
    const char *key;
    size_t offset, size;
} origin_field;

#define FIELD(name) {"model_origin." #name, offsetof(raddino_store_model_origin, name), \
                     sizeof(((raddino_store_model_origin *)0)->name)}
static const origin_field fields[] = {FIELD(folder),  FIELD(weights),   FIELD(repository),
                                      FIELD(revision), FIELD(commit),   FIELD(cache_dir),
                                      FIELD(weights_sha256)};
#undef FIELD
#define N_FIELDS (sizeof fields / sizeof fields[0])

raddino_status raddino_store_set_model_origin(raddino_store *s,
                                              const raddino_store_model_origin *origin)
{
    if (!s || !origin) return store_error(s, RADDINO_ERR_ARGUMENT, "model origin: NULL");
    if (s->read_only)
        return store_error(s, RADDINO_ERR_ARGUMENT, "model origin: the store is read-only");
    /* A savepoint is a transaction of its own outside a batch, and nests inside one. */
    if (sqlite3_exec(s->db, "SAVEPOINT model_origin", NULL, NULL, NULL) != SQLITE_OK)
        return store_sql_error(s, "recording the model's origin");
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
                                -1, &q, NULL);
    for (size_t i = 0; i < N_FIELDS && rc == SQLITE_OK; i++) {
        const char *value = (const char *)origin + fields[i].offset;
        size_t len = strnlen(value, fields[i].size);
        sqlite3_bind_text(q, 1, fields[i].key, -1, SQLITE_STATIC);
        sqlite3_bind_blob(q, 2, value, (int)len, SQLITE_STATIC);
        rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(q);
    }
    raddino_status st = rc == SQLITE_OK ? store_ok()
                                        : store_sql_error(s, "recording the model's origin");
    sqlite3_finalize(q);
    if (st.code) sqlite3_exec(s->db, "ROLLBACK TO model_origin", NULL, NULL, NULL);
    if (sqlite3_exec(s->db, "RELEASE model_origin", NULL, NULL, NULL) != SQLITE_OK && !st.code)
        st = store_sql_error(s, "recording the model's origin");
    return st;
}

raddino_status raddino_store_get_model_origin(raddino_store *s,
                                              raddino_store_model_origin *out, int *found)
{
    if (!s || !out || !found) return store_error(s, RADDINO_ERR_ARGUMENT, "model origin: NULL");
    memset(out, 0, sizeof *out);
    *found = 0;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?1", -1, &q, NULL) !=
        SQLITE_OK)
        return store_sql_error(s, "reading the model's origin");
    raddino_status st = store_ok();
    for (size_t i = 0; i < N_FIELDS; i++) {
        sqlite3_bind_text(q, 1, fields[i].key, -1, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            /* Hostile or damaged rows: only BLOBs that fit, without NUL bytes. */
            const void *value = sqlite3_column_blob(q, 0);
            int len = sqlite3_column_bytes(q, 0);
            if (sqlite3_column_type(q, 0) != SQLITE_BLOB || len < 0 ||
                (size_t)len >= fields[i].size || (len && memchr(value, 0, (size_t)len))) {
                st = store_error(s, RADDINO_ERR_FORMAT, "meta %s: not a valid value",
                                 fields[i].key);
            } else {
                if (len) memcpy((char *)out + fields[i].offset, value, (size_t)len);
                *found = 1;
            }
        } else if (rc != SQLITE_DONE) {
            st = store_sql_error(s, "reading the model's origin");
        }
        sqlite3_reset(q);
        if (st.code) break;
    }
    sqlite3_finalize(q);
    if (st.code || !out->folder[0]) {
        memset(out, 0, sizeof *out);
        *found = 0;
    }
    return st;
}
