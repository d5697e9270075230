/* walk.c — which files an ingest run looks at: the recursive walk (hidden entries, symlink
 * loops, exclusions). Images are told from other files later, by content
 * (raddino_image_sniff, in pipeline.c). */
#include "ingest_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- exclusions ---------------------------------------------------------------------------- */

bool ingest_excluded(const char *const *globs, int n, const char *path)
{
    for (int i = 0; i < n; i++) {
        if (strchr(globs[i], '/')) {
            if (fnmatch(globs[i], path, 0) == 0) return true;
            continue;
        }
        /* Any component: "*.dcm" or "tmp" anywhere in the path. */
        const char *p = path;
        char part[NAME_MAX + 1];
        while (*p) {
            while (*p == '/') p++;
            const char *end = strchr(p, '/');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            if (len > 0 && len <= NAME_MAX) {
                memcpy(part, p, len);
                part[len] = 0;
                if (fnmatch(globs[i], part, 0) == 0) return true;
            }
            p += len;
        }
    }
    return false;
}

/* ---- the walk ------------------------------------------------------------------------------ */

static bool grow(void **items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return true;
    size_t bigger = *cap ? *cap * 2 : 64;
    void *p = realloc(*items, bigger * size);
    if (!p) return false;
    *items = p;
    *cap = bigger;
    return true;
}

static bool push_string(char ***list, size_t *n, size_t *cap, const char *s)
{
    if (!grow((void **)list, cap, *n, sizeof **list)) return false;
    char *copy = strdup(s);
    if (!copy) return false;
    (*list)[(*n)++] = copy;
    return true;
}

int64_t ingest_mtime_ns(const struct stat *sb)
{
    return (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
}

static bool add_file(ingest_walk *w, const char *path, const struct stat *sb)
{
    if (!grow((void **)&w->files, &w->cap_files, w->n_files, sizeof *w->files)) return false;
    char *copy = strdup(path);
    if (!copy) return false;
    ingest_file *f = &w->files[w->n_files++];
    f->path = copy;
    f->size = (int64_t)sb->st_size;
    f->mtime_ns = ingest_mtime_ns(sb);
    return true;
}

/* True the first time a folder is seen. A linear scan would make a tree of many folders
 * quadratic, so the ids live in an open-addressing table (capacity a power of two). */
static bool first_visit(ingest_walk *w, const struct stat *sb, bool *oom)
{
    *oom = false;
    if (w->n_dirs * 2 >= w->cap_dirs) {
        size_t cap = w->cap_dirs ? w->cap_dirs * 2 : 256;
        ingest_dir_id *table = calloc(cap, sizeof *table);
        if (!table) {
            *oom = true;
            return false;
        }
        for (size_t i = 0; i < w->cap_dirs; i++) {
            ingest_dir_id d = w->dirs[i];
            if (!d.ino && !d.dev) continue;
            size_t h = ((size_t)d.ino * 0x9E3779B97F4A7C15ull ^ (size_t)d.dev) & (cap - 1);
            while (table[h].ino || table[h].dev) h = (h + 1) & (cap - 1);
            table[h] = d;
        }
        free(w->dirs);
        w->dirs = table;
        w->cap_dirs = cap;
    }
    size_t mask = w->cap_dirs - 1;
    size_t h = ((size_t)sb->st_ino * 0x9E3779B97F4A7C15ull ^ (size_t)sb->st_dev) & mask;
    while (w->dirs[h].ino || w->dirs[h].dev) {
        if (w->dirs[h].ino == sb->st_ino && w->dirs[h].dev == sb->st_dev) return false;
        h = (h + 1) & mask;
    }
    w->dirs[h].dev = sb->st_dev;
    w->dirs[h].ino = sb->st_ino;
    w->n_dirs++;
    return true;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in a folder, sorted (a stable order makes runs reproducible), hidden ones left out. */
static bool list_folder(const char *path, char ***names, size_t *n, int *error)
{
    *names = NULL;
    *n = 0;
    *error = 0;
    DIR *d = opendir(path);
    if (!d) {
        *error = errno;
        return true;
    }
    size_t cap = 0;
    struct dirent *e;
    bool ok = true;
    errno = 0;
    while (ok && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;      /* ".", "..", and hidden files and folders */
        ok = push_string(names, n, &cap, e->d_name);
    }
    if (ok && errno) *error = errno;
    closedir(d);
    if (ok && *n) qsort(*names, *n, sizeof **names, compare_names);   /* NULL when empty */
    return ok;
}

static bool walk_folder(ingest_walk *w, const char *path);

/* One entry of a folder: files are added, folders walked once, anything else skipped. */
static bool walk_entry(ingest_walk *w, const char *path)
{
    if (ingest_excluded(w->excludes, w->n_excludes, path)) return true;
    struct stat sb;
    if (stat(path, &sb) != 0) return true;      /* broken symbolic link, or gone meanwhile */
    if (S_ISREG(sb.st_mode)) return add_file(w, path, &sb);
    if (!S_ISDIR(sb.st_mode)) return true;
    bool oom;
    if (!first_visit(w, &sb, &oom)) return !oom;
    return walk_folder(w, path);
}

static bool walk_folder(ingest_walk *w, const char *path)
{
    char **names;
    size_t n;
    int error;
    if (!list_folder(path, &names, &n, &error)) return false;
    bool ok = true;
    if (error) {
        ingest_event(w->params, RADDINO_INGEST_FOLDER_UNLISTED, path, strerror(error), 0);
        ok = push_string(&w->unlisted, &w->n_unlisted, &w->cap_unlisted, path);
    }
    char child[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(child, sizeof child, "%s%s%s", path,
                           path[strlen(path) - 1] == '/' ? "" : "/", names[i]);
        if (ok && len > 0 && (size_t)len < sizeof child) ok = walk_entry(w, child);
        free(names[i]);
    }
    free(names);
    return ok;
}

bool ingest_walk_add(ingest_walk *w, const char *arg)
{
    char path[PATH_MAX];
    raddino_status st = raddino_store_normalise_path(arg, path, sizeof path);
    if (st.code) {
        ingest_event(w->params, RADDINO_INGEST_PATH_ERROR, NULL, st.message, 0);
        w->errors++;
        return true;
    }
    if (!push_string(&w->roots, &w->n_roots, &w->cap_roots, path)) return false;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT && w->missing_root_is_empty) return true;   /* prune it all */
        /* A PATH that is gone is more often an unmounted disk or a typo than a deletion:
         * it leaves the walk's scope, so none of its rows is removed. */
        int err = errno;
        ingest_event(w->params,
                     err == ENOENT && w->prune_note ? RADDINO_INGEST_PATH_GONE
                                                    : RADDINO_INGEST_PATH_ERROR,
                     arg, strerror(err), 0);
        w->errors++;
        w->n_roots--;
        free(w->roots[w->n_roots]);
        return true;
    }
    if (S_ISREG(sb.st_mode)) return add_file(w, path, &sb);
    if (!S_ISDIR(sb.st_mode)) {
        ingest_event(w->params, RADDINO_INGEST_PATH_ERROR, arg, "not a file or a folder", 0);
        w->errors++;
        return true;
    }
    bool oom;
    if (!first_visit(w, &sb, &oom)) return !oom;
    return walk_folder(w, path);
}

void ingest_walk_free(ingest_walk *w)
{
    for (size_t i = 0; i < w->n_files; i++) free(w->files[i].path);
    for (size_t i = 0; i < w->n_roots; i++) free(w->roots[i]);
    for (size_t i = 0; i < w->n_unlisted; i++) free(w->unlisted[i]);
    free(w->files);
    free(w->roots);
    free(w->unlisted);
    free(w->root_has_files);
    free(w->dirs);
    memset(w, 0, sizeof *w);
}
