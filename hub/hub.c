/* hub.c — finding a model in the Hugging Face hub cache (no network), and the names and paths
 * that hub_fetch.c shares. Layout: see raddino_hub.h.
 */
#include "hub_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const hub_weights_files[2] = {"model.safetensors",
                                          "backbone_compatible.safetensors"};

/* ---- small helpers -------------------------------------------------------------------------- */

bool hub_is_hex(const char *s, size_t n)
{
    if (strlen(s) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) return false;
    return true;
}

bool hub_is_commit(const char *s) { return hub_is_hex(s, 40); }

const char *hub_env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

bool hub_path_join(char *out, size_t size, const char *a, const char *b)
{
    int n = snprintf(out, size, "%s/%s", a, b);
    return n >= 0 && (size_t)n < size;
}

/* "~/x" -> "$HOME/x", as Python's expanduser does for these variables. */
raddino_status hub_expand_home(const char *value, char *out, size_t size)
{
    int n;
    if (value[0] == '~' && (value[1] == '/' || value[1] == 0)) {
        const char *home = hub_env_nonempty("HOME");
        if (!home) return status_error(RADDINO_ERR_ARGUMENT, "%s: HOME is not set", value);
        n = snprintf(out, size, "%s%s", home, value + 1);
    } else {
        n = snprintf(out, size, "%s", value);
    }
    if (n < 0 || (size_t)n >= size)
        return status_error(RADDINO_ERR_ARGUMENT, "%.64s...: path too long", value);
    return status_ok();
}

/* $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
raddino_status hub_hf_home(char *out, size_t size)
{
    const char *v = hub_env_nonempty("HF_HOME");
    if (v) return hub_expand_home(v, out, size);
    char base[RADDINO_PATH_MAX];
    v = hub_env_nonempty("XDG_CACHE_HOME");
    raddino_status st = hub_expand_home(v ? v : "~/.cache", base, sizeof base);
    if (st.code) return st;
    if (!hub_path_join(out, size, base, "huggingface"))
        return status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", base);
    return status_ok();
}

raddino_status raddino_hub_cache_dir(char *out, size_t size)
{
    if (!out || !size)
        return status_error(RADDINO_ERR_ARGUMENT, "raddino_hub_cache_dir: no buffer");
    const char *v = hub_env_nonempty("HF_HUB_CACHE");
    if (!v) v = hub_env_nonempty("HUGGINGFACE_HUB_CACHE");
    if (v) return hub_expand_home(v, out, size);
    char home[RADDINO_PATH_MAX];
    raddino_status st = hub_hf_home(home, sizeof home);
    if (st.code) return st;
    if (!hub_path_join(out, size, home, "hub"))
        return status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", home);
    return status_ok();
}

/* ORG/NAME: one slash, each part of letters, digits, '-', '_', '.', not starting with '.' or
 * '-', no "--" or ".." (names the Hub refuses too; they would break the cache folder name). */
raddino_status hub_check_repo(const char *repo)
{
    const char *slash = strchr(repo, '/');
    bool ok = slash && slash != repo && slash[1] && !strchr(slash + 1, '/') &&
              strlen(repo) < sizeof ((raddino_hub_model *)0)->repo && !strstr(repo, "--") &&
              !strstr(repo, "..");
    for (const char *p = repo; ok && *p; p++) {
        bool start = p == repo || p[-1] == '/';
        if (*p == '/') continue;
        if (!isalnum((unsigned char)*p) && !strchr("-_.", *p)) ok = false;
        if (start && (*p == '.' || *p == '-')) ok = false;
    }
    if (!ok)
        return status_error(RADDINO_ERR_ARGUMENT,
                            "%s: not a repository name: expected ORG/NAME, for example %s", repo,
                            RADDINO_DEFAULT_REPO);
    return status_ok();
}

/* Branch, tag or commit: it becomes a path under refs/, so nothing that could leave it. */
raddino_status hub_check_revision(const char *rev)
{
    size_t n = strlen(rev);
    bool ok = n > 0 && n < sizeof ((raddino_hub_model *)0)->revision && rev[0] != '/' &&
              rev[0] != '-' && rev[n - 1] != '/' && !strstr(rev, "..") && !strstr(rev, "//");
    for (const char *p = rev; ok && *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_./", *p)) ok = false;
    if (!ok)
        return status_error(RADDINO_ERR_ARGUMENT,
                            "%s: not a revision: expected a branch, tag or commit hash", rev);
    return status_ok();
}

/* CACHE/models--ORG--NAME */
bool hub_repo_folder(char *out, size_t size, const char *cache, const char *repo)
{
    const char *slash = strchr(repo, '/');
    int n = snprintf(out, size, "%s/models--%.*s--%s", cache, (int)(slash - repo), repo, slash + 1);
    return n >= 0 && (size_t)n < size;
}

bool hub_is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

bool hub_is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Reads refs/REVISION: a commit hash, maybe followed by a newline. */
static raddino_status read_ref(const char *path, char commit[41])
{
    FILE *f = fopen(path, "rb");
    if (!f) return status_error(RADDINO_ERR_NOT_FOUND, "%s: %s", path, strerror(errno));
    char buf[64];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n && isspace((unsigned char)buf[n - 1])) buf[--n] = 0;
    if (!hub_is_commit(buf))
        return status_error(RADDINO_ERR_FORMAT, "%s: not a commit hash", path);
    memcpy(commit, buf, 41);
    return status_ok();
}

/* ---- discovery ----------------------------------------------------------------------------- */

raddino_status hub_find_in(const char *cache, const char *repo, const char *revision,
                              raddino_hub_model *out)
{
    char root[RADDINO_PATH_MAX], path[RADDINO_PATH_MAX];
    if (!hub_repo_folder(root, sizeof root, cache, repo))
        return status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", cache);
    if (!hub_is_dir(root))
        return status_error(RADDINO_ERR_NOT_FOUND,
                            "%s is not in the Hugging Face cache %s (not downloaded yet)",
                            repo, cache);
    char commit[41];
    int n = snprintf(path, sizeof path, "%s/snapshots/%s", root, revision);
    if (hub_is_commit(revision) && n > 0 && (size_t)n < sizeof path && hub_is_dir(path)) {
        memcpy(commit, revision, 41);
    } else {
        n = snprintf(path, sizeof path, "%s/refs/%s", root, revision);
        if (n < 0 || (size_t)n >= sizeof path)
            return status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", root);
        if (!hub_is_file(path))
            return status_error(RADDINO_ERR_NOT_FOUND,
                                "%s: revision '%s' is not in the Hugging Face cache %s (no %s)",
                                repo, revision, cache, path);
        raddino_status st = read_ref(path, commit);
        if (st.code) return st;
    }
    n = snprintf(out->model_dir, sizeof out->model_dir, "%s/snapshots/%s", root, commit);
    if (n < 0 || (size_t)n >= sizeof out->model_dir)
        return status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", root);
    if (!hub_is_dir(out->model_dir))
        return status_error(RADDINO_ERR_NOT_FOUND,
                            "%s: revision '%s' points to commit %s, but %s is missing", repo,
                            revision, commit, out->model_dir);
    /* stat follows the symlinks: a pointer whose blob is gone counts as missing. */
    const char *needed[] = {"config.json", "preprocessor_config.json"};
    for (int i = 0; i < 2; i++) {
        if (!hub_path_join(path, sizeof path, out->model_dir, needed[i]) || !hub_is_file(path))
            return status_error(RADDINO_ERR_IO,
                                "%s: incomplete snapshot of %s at revision %s: no %s (download it "
                                "again)",
                                out->model_dir, repo, revision, needed[i]);
    }
    bool weights = false;
    for (int i = 0; i < 2 && !weights; i++)
        weights = hub_path_join(path, sizeof path, out->model_dir, hub_weights_files[i]) && hub_is_file(path);
    if (!weights)
        return status_error(RADDINO_ERR_IO,
                            "%s: incomplete snapshot of %s at revision %s: no model.safetensors or "
                            "backbone_compatible.safetensors (download it again)",
                            out->model_dir, repo, revision);
    snprintf(out->cache_dir, sizeof out->cache_dir, "%s", cache);
    snprintf(out->repo, sizeof out->repo, "%s", repo);
    snprintf(out->revision, sizeof out->revision, "%s", revision);
    memcpy(out->commit, commit, 41);
    return status_ok();
}

raddino_status raddino_hub_find(const char *cache_dir, const char *repo, const char *revision,
                                raddino_hub_model *out)
{
    if (!out) return status_error(RADDINO_ERR_ARGUMENT, "raddino_hub_find: out is NULL");
    memset(out, 0, sizeof *out);
    if (!repo) repo = RADDINO_DEFAULT_REPO;
    if (!revision) revision = RADDINO_DEFAULT_REVISION;
    raddino_status st = hub_check_repo(repo);
    if (!st.code) st = hub_check_revision(revision);
    if (st.code) return st;
    char cache[RADDINO_PATH_MAX];
    st = cache_dir ? hub_expand_home(cache_dir, cache, sizeof cache)
                   : raddino_hub_cache_dir(cache, sizeof cache);
    if (st.code) return st;
    return hub_find_in(cache, repo, revision, out);
}

