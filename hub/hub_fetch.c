/* hub_fetch.c — filling the Hugging Face hub cache with libcurl, in the layout huggingface_hub
 * uses so that both share one copy (finding a model in it is hub.c).
 *
 * Fetching one file:
 *   1. HEAD {endpoint}/{repo}/resolve/{revision}/{file}, not following the redirect the Hub
 *      answers for large (LFS) files: that first response carries X-Repo-Commit (the commit),
 *      X-Linked-Etag / ETag (sha256 of an LFS file, git blob sha1 of a small one) and
 *      X-Linked-Size / Content-Length.
 *   2. blobs/{etag} already there with that size: nothing to download.
 *   3. Otherwise GET into blobs/{etag}.incomplete (Range: bytes=N- when part of it is there),
 *      following redirects with the token sent to the endpoint's host only; a broken transfer
 *      that made progress is resumed at once.
 *   4. Size and checksum checked, then renamed to blobs/{etag}; snapshots/{commit}/{file} is a
 *      relative symlink to it; refs/{revision} holds the commit.
 * Later files are asked for at the commit the first one resolved to, so the three files always
 * come from one commit even if the branch moves meanwhile.
 */
#include "hub_internal.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define HUB_MAX_FILE_SIZE (64ull << 30)  /* larger announced sizes are refused */
#define HUB_MAX_ATTEMPTS 8               /* transfers of one file, while each makes progress */
#define HUB_TOKEN_MAX 512

static bool env_true(const char *name)
{
    const char *v = getenv(name);
    if (!v) return false;
    return !strcasecmp(v, "1") || !strcasecmp(v, "on") || !strcasecmp(v, "yes") ||
           !strcasecmp(v, "true");
}

/* ---- fetching: state ------------------------------------------------------------------------ */

/* What one HTTP response's headers said. */
typedef struct {
    long status;
    char commit[64];
    char etag[160];             /* ETag, normalised (no W/, no quotes) */
    char linked_etag[160];      /* X-Linked-Etag */
    char location[2048];
    char error_code[64];        /* X-Error-Code: RepoNotFound, EntryNotFound, GatedRepo... */
    char error_message[200];    /* X-Error-Message */
    uint64_t size, linked_size;
    bool has_size, has_linked_size;
} http_headers;

typedef struct {
    raddino_fetch_params p;     /* with every NULL filled in */
    char cache[RADDINO_PATH_MAX];
    char root[RADDINO_PATH_MAX];    /* CACHE/models--ORG--NAME */
    char locks[RADDINO_PATH_MAX];   /* CACHE/.locks/models--ORG--NAME */
    char endpoint[1024];
    char token[HUB_TOKEN_MAX];
    bool https;
    CURL *curl;
    char curl_error[CURL_ERROR_SIZE];
    http_headers h;
} fetch_ctx;

/* One file's metadata from the HEAD request. */
typedef struct {
    char commit[41];
    char etag[65];              /* 64 hex (sha256) or 40 hex (git blob sha1) */
    uint64_t size;
    char url[2048];             /* where to GET it: the redirect target, else the resolve URL */
} file_meta;

static void notify(const fetch_ctx *c, raddino_fetch_event event, const char *file, uint64_t done,
                   uint64_t total, const char *sha256, const char *message)
{
    if (!c->p.progress) return;
    raddino_fetch_progress p = {event, file, done, total, sha256, message};
    c->p.progress(c->p.user, &p);
}

/* ---- fetching: HTTP ------------------------------------------------------------------------- */

/* Copies a header value: printable ASCII only, trimmed, truncated to the buffer. */
static void header_value(char *dst, size_t size, const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t')) v++, n--;
    while (n && isspace((unsigned char)v[n - 1])) n--;
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < size; i++)
        dst[k++] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
    dst[k] = 0;
}

/* ETag as huggingface_hub reads it: without a weak W/ prefix and without quotes. */
static void normalise_etag(char *etag)
{
    char *p = etag;
    if (!strncmp(p, "W/", 2)) p += 2;
    size_t n = strlen(p);
    if (n >= 2 && p[0] == '"' && p[n - 1] == '"') p++, n -= 2;
    memmove(etag, p, n);
    etag[n] = 0;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!isdigit((unsigned char)*s)) return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

static size_t on_header(char *data, size_t one, size_t n, void *user)
{
    (void)one;
    http_headers *h = user;
    if (n >= 5 && !strncmp(data, "HTTP/", 5)) {
        /* A new response (after a redirect or a 100): forget the previous one's headers. */
        memset(h, 0, sizeof *h);
        const char *sp = memchr(data, ' ', n);
        if (sp) h->status = strtol(sp + 1, NULL, 10);
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (!colon) return n;
    size_t name_len = (size_t)(colon - data), vlen = n - name_len - 1;
    const char *v = colon + 1;
    char tmp[64];
#define IS(name) (name_len == sizeof(name) - 1 && !strncasecmp(data, name, name_len))
    if (IS("x-repo-commit")) header_value(h->commit, sizeof h->commit, v, vlen);
    else if (IS("etag")) header_value(h->etag, sizeof h->etag, v, vlen), normalise_etag(h->etag);
    else if (IS("x-linked-etag")) {
        header_value(h->linked_etag, sizeof h->linked_etag, v, vlen);
        normalise_etag(h->linked_etag);
    }
    else if (IS("location")) header_value(h->location, sizeof h->location, v, vlen);
    else if (IS("x-error-code")) header_value(h->error_code, sizeof h->error_code, v, vlen);
    else if (IS("x-error-message"))
        header_value(h->error_message, sizeof h->error_message, v, vlen);
    else if (IS("content-length")) {
        header_value(tmp, sizeof tmp, v, vlen);
        h->has_size = parse_u64(tmp, &h->size);
    } else if (IS("x-linked-size")) {
        header_value(tmp, sizeof tmp, v, vlen);
        h->has_linked_size = parse_u64(tmp, &h->linked_size);
    }
#undef IS
    return n;
}

/* {endpoint}/{repo}/resolve/{revision}/{file}, '/' in a revision escaped as the Hub wants. */
static bool resolve_url(const fetch_ctx *c, const char *revision, const char *file, char *out,
                        size_t size)
{
    char rev[sizeof ((raddino_hub_model *)0)->revision * 3];
    size_t k = 0;
    for (const char *p = revision; *p && k + 4 < sizeof rev; p++) {
        if (*p == '/') memcpy(rev + k, "%2F", 3), k += 3;
        else rev[k++] = *p;
    }
    rev[k] = 0;
    int n = snprintf(out, size, "%s/%s/resolve/%s/%s", c->endpoint, c->p.repo, rev, file);
    return n >= 0 && (size_t)n < size;
}

/* True when url is on the endpoint's scheme, host and port: the only place the token goes.
 * (The Hub hands large files to a CDN on another host, which must never see it.) */
static bool same_origin(const char *endpoint, const char *url)
{
    static const CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
    CURLU *a = curl_url(), *b = curl_url();
    bool same = a && b && curl_url_set(a, CURLUPART_URL, endpoint, 0) == CURLUE_OK &&
                curl_url_set(b, CURLUPART_URL, url, 0) == CURLUE_OK;
    for (int i = 0; same && i < 3; i++) {
        char *x = NULL, *y = NULL;
        same = curl_url_get(a, parts[i], &x, CURLU_DEFAULT_PORT) == CURLUE_OK &&
               curl_url_get(b, parts[i], &y, CURLU_DEFAULT_PORT) == CURLUE_OK &&
               !strcasecmp(x, y);
        curl_free(x);
        curl_free(y);
    }
    curl_url_cleanup(a);
    curl_url_cleanup(b);
    return same;
}

/* Sets up the handle for one request to url. */
static void request_setup(fetch_ctx *c, const char *url, struct curl_slist *headers)
{
    CURL *h = c->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* An https endpoint must not be redirected to plain http. */
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, c->https ? "https" : "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "raddino/0.1.0");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_error);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &c->h);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    /* A stalled transfer (under 1 byte/s for a minute) fails instead of hanging. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (c->token[0] && same_origin(c->endpoint, url)) {
        /* curl's own Bearer auth: sent to the host of the URL given here only, never to the
         * host a redirect leads to (CURLOPT_UNRESTRICTED_AUTH stays off). */
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, c->token);
    }
    c->curl_error[0] = 0;
    memset(&c->h, 0, sizeof c->h);
}

static bool curl_unreachable(CURLcode rc)
{
    return rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY ||
           rc == CURLE_COULDNT_CONNECT || rc == CURLE_SSL_CONNECT_ERROR ||
           rc == CURLE_PEER_FAILED_VERIFICATION;
}

static raddino_status curl_failure(const fetch_ctx *c, CURLcode rc, const char *url)
{
    const char *why = c->curl_error[0] ? c->curl_error : curl_easy_strerror(rc);
    if (curl_unreachable(rc))
        return status_error(RADDINO_ERR_NETWORK,
                            "%s: cannot reach the Hub (%s): check the network connection or "
                            "HF_ENDPOINT; HF_HUB_OFFLINE=1 uses the cache only",
                            c->endpoint, why);
    return status_error(RADDINO_ERR_NETWORK, "%s: %s", url, why);
}

/* A refusal in words: what the status and the Hub's X-Error-Code mean for the user. */
static raddino_status http_failure(const fetch_ctx *c, const char *revision, const char *file,
                                   const char *url)
{
    const http_headers *h = &c->h;
    char extra[240] = "";
    if (h->error_message[0]) snprintf(extra, sizeof extra, " (%s)", h->error_message);
    const char *repo = c->p.repo;
    if (h->status == 401 || h->status == 403) {
        if (!strcmp(h->error_code, "RepoNotFound"))
            return status_error(RADDINO_ERR_ACCESS,
                                "%s: repository not found at %s, or private and %s (HTTP %ld): "
                                "check the repository name%s",
                                repo, c->endpoint,
                                c->token[0] ? "the token has no access" : "needs a token",
                                h->status, c->token[0] ? "" : ", or set HF_TOKEN");
        if (!strcmp(h->error_code, "GatedRepo") || h->status == 403)
            return status_error(RADDINO_ERR_ACCESS,
                                "%s: access refused (HTTP %ld)%s: the repository is gated or "
                                "private; accept its conditions at %s/%s and set HF_TOKEN to an "
                                "access token with read permission",
                                repo, h->status, extra, c->endpoint, repo);
        return status_error(RADDINO_ERR_ACCESS,
                            "%s: %s (HTTP 401)%s: set HF_TOKEN to a Hugging Face access token "
                            "with read permission",
                            repo, c->token[0] ? "the token was refused" : "a token is needed",
                            extra);
    }
    if (h->status == 404) {
        if (!strcmp(h->error_code, "RevisionNotFound"))
            return status_error(RADDINO_ERR_NOT_FOUND,
                                "%s: revision '%s' not found (HTTP 404): check the revision", repo,
                                revision);
        if (!strcmp(h->error_code, "EntryNotFound"))
            return status_error(RADDINO_ERR_NOT_FOUND,
                                "%s: %s not found at revision '%s' (HTTP 404)", repo, file,
                                revision);
        if (!strcmp(h->error_code, "RepoNotFound"))
            return status_error(RADDINO_ERR_NOT_FOUND,
                                "%s: repository not found at %s (HTTP 404): check the repository name", repo,
                                c->endpoint);
        return status_error(RADDINO_ERR_NOT_FOUND,
                            "%s: not found (HTTP 404): check the repository name and revision", url);
    }
    if (h->status >= 500)
        return status_error(RADDINO_ERR_NETWORK, "%s: server error (HTTP %ld)%s: try again later",
                            url, h->status, extra);
    return status_error(RADDINO_ERR_NETWORK, "%s: unexpected answer HTTP %ld%s", url, h->status,
                        extra);
}

/* HEAD on the resolve URL: the file's commit, checksum, size and download location. Same-host
 * (relative) redirects, which the Hub uses for renamed repositories, are followed; the redirect
 * of a large file to its CDN is not: its headers are the metadata. */
static raddino_status head_file(fetch_ctx *c, const char *revision, const char *file,
                                file_meta *m)
{
    char url[2048];
    if (!resolve_url(c, revision, file, url, sizeof url))
        return status_error(RADDINO_ERR_ARGUMENT, "%s: URL too long", c->endpoint);
    struct curl_slist *headers = curl_slist_append(NULL, "Accept-Encoding: identity");
    if (!headers) return status_error(RADDINO_ERR_NOMEM, "%s: out of memory", file);
    raddino_status st = status_ok();
    int hops = 0;
    for (;; hops++) {
        request_setup(c, url, headers);
        curl_easy_setopt(c->curl, CURLOPT_NOBODY, 1L);
        CURLcode rc = curl_easy_perform(c->curl);
        if (rc != CURLE_OK) {
            st = curl_failure(c, rc, url);
            break;
        }
        long s = c->h.status;
        if (s >= 300 && s < 400 && c->h.location[0] == '/' && c->h.location[1] != '/' && hops < 5) {
            char *redirect = NULL;
            curl_easy_getinfo(c->curl, CURLINFO_REDIRECT_URL, &redirect);
            if (!redirect || strlen(redirect) >= sizeof url) {
                st = status_error(RADDINO_ERR_NETWORK, "%s: bad redirect", url);
                break;
            }
            snprintf(url, sizeof url, "%s", redirect);
            continue;
        }
        if (s >= 400 || s < 200 || (s >= 300 && !c->h.location[0])) {
            st = http_failure(c, revision, file, url);
            break;
        }
        break;
    }
    curl_slist_free_all(headers);
    if (st.code) return st;

    const http_headers *h = &c->h;
    if (!hub_is_commit(h->commit))
        return status_error(RADDINO_ERR_NETWORK,
                            "%s: the server sent no commit hash (X-Repo-Commit); is HF_ENDPOINT=%s "
                            "a Hugging Face Hub?",
                            url, c->endpoint);
    const char *etag = h->linked_etag[0] ? h->linked_etag : h->etag;
    if (!hub_is_hex(etag, 64) && !hub_is_hex(etag, 40))
        return status_error(RADDINO_ERR_NETWORK,
                            "%s: the server sent no checksum (an ETag of 40 or 64 hex digits); "
                            "refusing to install a file that cannot be verified",
                            url);
    bool has_size = h->has_linked_size || h->has_size;
    uint64_t size = h->has_linked_size ? h->linked_size : h->size;
    if (!has_size || size > HUB_MAX_FILE_SIZE)
        return status_error(RADDINO_ERR_NETWORK, "%s: the server sent no usable file size", url);
    memcpy(m->commit, h->commit, 41);
    memcpy(m->etag, etag, strlen(etag) + 1);   /* 40 or 64 hex digits: fits */
    m->size = size;
    if (h->status >= 300) {
        char *redirect = NULL;
        curl_easy_getinfo(c->curl, CURLINFO_REDIRECT_URL, &redirect);
        if (!redirect || strlen(redirect) >= sizeof m->url)
            return status_error(RADDINO_ERR_NETWORK, "%s: bad redirect", url);
        snprintf(m->url, sizeof m->url, "%s", redirect);
    } else if (hops == 0) {
        /* Ask for the bytes at the commit just learned, so a branch that moves between the
         * two requests cannot mix versions. */
        if (!resolve_url(c, m->commit, file, m->url, sizeof m->url))
            return status_error(RADDINO_ERR_ARGUMENT, "%s: URL too long", c->endpoint);
    } else {
        snprintf(m->url, sizeof m->url, "%s", url);
    }
    return status_ok();
}

/* ---- fetching: one blob --------------------------------------------------------------------- */

typedef struct {
    fetch_ctx *c;
    const char *file;
    int fd;
    uint64_t have, total;
    bool started;               /* the first body byte of this response was seen */
    bool restarted;             /* the server ignored the Range: the file was emptied */
    bool overflow;              /* more bytes than announced */
    int write_errno;
} transfer;

static size_t on_body(char *data, size_t one, size_t n, void *user)
{
    (void)one;
    transfer *t = user;
    long status = t->c->h.status;
    if (status != 200 && status != 206) return n;     /* an error page: not file content */
    if (!t->started) {
        t->started = true;
        if (status == 200 && t->have > 0) {
            /* Whole file despite the Range: start again from zero. */
            if (ftruncate(t->fd, 0) != 0) {
                t->write_errno = errno;
                return 0;
            }
            t->have = 0;
            t->restarted = true;
        }
    }
    if (n > t->total - t->have) {
        t->overflow = true;
        return 0;
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(t->fd, data + off, n - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            t->write_errno = errno;
            return 0;
        }
        off += (size_t)w;
    }
    t->have += n;
    notify(t->c, RADDINO_FETCH_PROGRESS, t->file, t->have, t->total, NULL, NULL);
    return n;
}

static bool transient(CURLcode rc)
{
    return rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
           rc == CURLE_GOT_NOTHING || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_HTTP2 ||
           rc == CURLE_HTTP2_STREAM;
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static raddino_status disk_full(const char *path, int err)
{
    unlink(path);
    return status_error(RADDINO_ERR_IO, "%s: disk full (%s): the partial file was removed; free "
                        "some space, or choose another cache folder", path, strerror(err));
}

/* Refuses to start a download that cannot fit. */
static raddino_status check_space(const char *dir, const char *file, uint64_t need)
{
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0) return status_ok();   /* unknown: let the writes tell */
    uint64_t free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    if (need > free_bytes)
        return status_error(RADDINO_ERR_IO,
                            "%s: disk full: %s needs %.1f MB more, %.1f MB are free; free some "
                            "space, or choose another cache folder",
                            dir, file, need / 1e6, free_bytes / 1e6);
    return status_ok();
}

/* One GET into t->fd, resuming at t->have. */
static CURLcode get_once(fetch_ctx *c, const char *url, transfer *t)
{
    request_setup(c, url, NULL);
    char range[48];
    if (t->have > 0) {
        snprintf(range, sizeof range, "%" PRIu64 "-", t->have);
        curl_easy_setopt(c->curl, CURLOPT_RANGE, range);
    }
    curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c->curl, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, t);
    t->started = false;
    return curl_easy_perform(c->curl);
}

/* Downloads m into `partial` until it holds m->size bytes. */
static raddino_status download(fetch_ctx *c, const char *file, const file_meta *m,
                               const char *partial)
{
    transfer t = {c, file, -1, file_size(partial), m->size, false, false, false, 0};
    if (t.have > m->size) {
        if (truncate(partial, 0) != 0)
            return status_error(RADDINO_ERR_IO, "%s: %s", partial, strerror(errno));
        t.have = 0;
    }
    raddino_status st = check_space(c->root, file, m->size - t.have);
    if (st.code) return st;
    t.fd = open(partial, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (t.fd < 0) return status_error(RADDINO_ERR_IO, "%s: %s", partial, strerror(errno));
    notify(c, RADDINO_FETCH_START, file, t.have, t.total, NULL, NULL);
    for (int attempt = 1; t.have < t.total || t.total == 0; attempt++) {
        uint64_t before = t.have;
        CURLcode rc = get_once(c, m->url, &t);
        if (t.write_errno) {
            int err = t.write_errno;
            close(t.fd);
            if (err == ENOSPC || err == EDQUOT) return disk_full(partial, err);
            return status_error(RADDINO_ERR_IO, "%s: %s", partial, strerror(err));
        }
        if (t.overflow) {
            st = status_error(RADDINO_ERR_NETWORK, "%s: the server sent more than the %" PRIu64
                              " bytes it announced", m->url, t.total);
            break;
        }
        long s = c->h.status;
        if (rc == CURLE_OK && s == 416 && t.have > 0) {
            /* Our partial file does not fit what the server has: start over once. */
            if (ftruncate(t.fd, 0) != 0) {
                st = status_error(RADDINO_ERR_IO, "%s: %s", partial, strerror(errno));
                break;
            }
            t.have = 0;
            continue;
        }
        if (rc == CURLE_OK && s != 200 && s != 206) {
            st = http_failure(c, m->commit, file, m->url);
            break;
        }
        if (rc == CURLE_OK && t.total == 0) break;
        if (rc == CURLE_OK && t.have == t.total) break;
        bool progress = t.have > before || t.restarted;
        t.restarted = false;
        if ((rc == CURLE_OK || transient(rc)) && progress && attempt < HUB_MAX_ATTEMPTS) {
            char why[CURL_ERROR_SIZE + 64];
            snprintf(why, sizeof why, "%s",
                     rc == CURLE_OK ? "the server closed the transfer early"
                     : c->curl_error[0] ? c->curl_error : curl_easy_strerror(rc));
            notify(c, RADDINO_FETCH_RETRY, file, t.have, t.total, NULL, why);
            continue;
        }
        st = rc == CURLE_OK
                 ? status_error(RADDINO_ERR_NETWORK, "%s: transfer ended at %" PRIu64 " of %"
                                PRIu64 " bytes", m->url, t.have, t.total)
                 : curl_failure(c, rc, m->url);
        break;
    }
    if (close(t.fd) != 0 && !st.code) {
        int err = errno;
        if (err == ENOSPC || err == EDQUOT) return disk_full(partial, err);
        st = status_error(RADDINO_ERR_IO, "%s: %s", partial, strerror(err));
    }
    return st;
}

/* sha256 of the file, and its git blob sha1 (sha1 of "blob SIZE\0" + bytes), both as hex. */
static raddino_status hash_file(const char *path, uint64_t size, char sha256[65], char sha1[41])
{
    FILE *f = fopen(path, "rb");
    if (!f) return status_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *a = EVP_MD_CTX_new(), *b = EVP_MD_CTX_new();
    bool ok = a && b && EVP_DigestInit_ex(a, EVP_sha256(), NULL) &&
              EVP_DigestInit_ex(b, EVP_sha1(), NULL);
    char prefix[48];
    int plen = snprintf(prefix, sizeof prefix, "blob %" PRIu64, size);
    ok = ok && EVP_DigestUpdate(b, prefix, (size_t)plen + 1);   /* NUL included */
    static const size_t chunk = 1 << 16;
    unsigned char *buf = malloc(chunk);
    ok = ok && buf;
    size_t n;
    while (ok && (n = fread(buf, 1, chunk, f)) > 0)
        ok = EVP_DigestUpdate(a, buf, n) && EVP_DigestUpdate(b, buf, n);
    unsigned char da[32], db[20];
    unsigned int la = 0, lb = 0;
    ok = ok && !ferror(f) && EVP_DigestFinal_ex(a, da, &la) && EVP_DigestFinal_ex(b, db, &lb) &&
         la == 32 && lb == 20;
    free(buf);
    EVP_MD_CTX_free(a);
    EVP_MD_CTX_free(b);
    fclose(f);
    if (!ok) return status_error(RADDINO_ERR_IO, "%s: cannot read it to check its checksum", path);
    for (int i = 0; i < 32; i++) snprintf(sha256 + 2 * i, 3, "%02x", da[i]);
    for (int i = 0; i < 20; i++) snprintf(sha1 + 2 * i, 3, "%02x", db[i]);
    return status_ok();
}

/* Holds CACHE/.locks/models--ORG--NAME/ETAG.lock, the lock huggingface_hub takes (flock). */
static raddino_status lock_blob(const fetch_ctx *c, const char *etag, const char *file, int *fd)
{
    char path[RADDINO_PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s.lock", c->locks, etag);
    if (n < 0 || (size_t)n >= sizeof path)
        return status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", c->locks);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) return status_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        close(*fd);
        *fd = -1;
        if (err == EWOULDBLOCK)
            return status_error(RADDINO_ERR_IO,
                                "%s: another program is downloading %s into this cache (lock %s); "
                                "try again when it is done",
                                c->root, file, path);
        return status_error(RADDINO_ERR_IO, "%s: %s", path, strerror(err));
    }
    return status_ok();
}

/* Makes sure blobs/ETAG holds the verified file, downloading it when it is not there. */
static raddino_status ensure_blob(fetch_ctx *c, const char *file, const file_meta *m)
{
    char blob[RADDINO_PATH_MAX], partial[RADDINO_PATH_MAX + 16];
    int n = snprintf(blob, sizeof blob, "%s/blobs/%s", c->root, m->etag);
    if (n < 0 || (size_t)n >= sizeof blob)
        return status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", c->root);
    snprintf(partial, sizeof partial, "%s.incomplete", blob);
    if (hub_is_file(blob) && file_size(blob) == m->size) {
        notify(c, RADDINO_FETCH_CACHED, file, m->size, m->size, NULL, m->etag);
        return status_ok();
    }
    int lock = -1;
    raddino_status st = lock_blob(c, m->etag, file, &lock);
    if (st.code) return st;
    st = download(c, file, m, partial);
    char sha256[65], sha1[41];
    if (!st.code) {
        if (file_size(partial) != m->size)
            st = status_error(RADDINO_ERR_NETWORK, "%s: downloaded %" PRIu64 " bytes, expected %"
                              PRIu64, m->url, file_size(partial), m->size);
        else
            st = hash_file(partial, m->size, sha256, sha1);
    }
    if (!st.code) {
        bool lfs = strlen(m->etag) == 64;
        const char *got = lfs ? sha256 : sha1;
        if (strcmp(got, m->etag) != 0) {
            unlink(partial);
            st = status_error(RADDINO_ERR_CHECKSUM,
                              "%s: checksum mismatch: the download from %s has %s %s, the Hub "
                              "says %s; the bad file was removed, not installed",
                              file, c->endpoint, lfs ? "sha256" : "git sha1", got, m->etag);
        }
    }
    if (!st.code && rename(partial, blob) != 0)
        st = status_error(RADDINO_ERR_IO, "%s: %s", blob, strerror(errno));
    close(lock);
    if (!st.code) notify(c, RADDINO_FETCH_DONE, file, m->size, m->size, sha256, NULL);
    return st;
}

/* snapshots/COMMIT/FILE -> ../../blobs/ETAG, replaced atomically when it points elsewhere. */
static raddino_status link_snapshot(const fetch_ctx *c, const file_meta *m, const char *file)
{
    char dir[RADDINO_PATH_MAX], link[RADDINO_PATH_MAX], tmp[RADDINO_PATH_MAX + 32],
        target[128], current[128];
    int n = snprintf(dir, sizeof dir, "%s/snapshots/%s", c->root, m->commit);
    if (n < 0 || (size_t)n >= sizeof dir || !hub_path_join(link, sizeof link, dir, file))
        return status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", c->root);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return status_error(RADDINO_ERR_IO, "%s: %s", dir, strerror(errno));
    snprintf(target, sizeof target, "../../blobs/%s", m->etag);
    ssize_t len = readlink(link, current, sizeof current - 1);
    if (len >= 0) {
        current[len] = 0;
        if (!strcmp(current, target)) return status_ok();
    }
    snprintf(tmp, sizeof tmp, "%s.raddino-%ld", link, (long)getpid());
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
        int err = errno;
        unlink(tmp);
        return status_error(RADDINO_ERR_IO, "%s: %s", link, strerror(err));
    }
    return status_ok();
}

/* refs/REVISION <- COMMIT (no newline, as huggingface_hub writes it). */
static raddino_status write_ref(const fetch_ctx *c, const char *revision, const char *commit)
{
    if (!strcmp(revision, commit)) return status_ok();
    char path[RADDINO_PATH_MAX], tmp[RADDINO_PATH_MAX + 32];
    int n = snprintf(path, sizeof path, "%s/refs/%s", c->root, revision);
    if (n < 0 || (size_t)n >= sizeof path)
        return status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", c->root);
    /* A revision such as refs/pr/1 needs its folders. */
    for (char *p = path + strlen(c->root) + 6; (p = strchr(p, '/')); p++) {
        *p = 0;
        int r = mkdir(path, 0755);
        *p = '/';
        if (r != 0 && errno != EEXIST)
            return status_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
    }
    snprintf(tmp, sizeof tmp, "%s.raddino-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fputs(commit, f) >= 0;
    if (f && fclose(f) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return status_error(RADDINO_ERR_IO, "%s: %s", path, strerror(err));
    }
    return status_ok();
}

/* ---- fetching: the whole model ------------------------------------------------------------- */

static raddino_status make_dirs(const char *path)
{
    char buf[RADDINO_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != 0) continue;
        char saved = *p;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return status_error(RADDINO_ERR_IO, "%s: %s", buf, strerror(errno));
        if (!saved) break;
        *p = saved;
    }
    if (!hub_is_dir(path)) return status_error(RADDINO_ERR_IO, "%s: not a folder", path);
    return status_ok();
}

/* The token: the parameter, else $HF_TOKEN, else the file `huggingface-cli login` wrote. */
static raddino_status load_token(fetch_ctx *c)
{
    const char *t = c->p.token ? c->p.token : hub_env_nonempty("HF_TOKEN");
    char file_token[HUB_TOKEN_MAX] = "";
    if (!t) {
        char path[RADDINO_PATH_MAX], home[RADDINO_PATH_MAX];
        const char *v = hub_env_nonempty("HF_TOKEN_PATH");
        raddino_status st = v ? hub_expand_home(v, path, sizeof path) : hub_hf_home(home, sizeof home);
        if (st.code) return status_ok();    /* no home, no token file: anonymous */
        if (!v && !hub_path_join(path, sizeof path, home, "token")) return status_ok();
        FILE *f = fopen(path, "rb");
        if (f) {
            size_t n = fread(file_token, 1, sizeof file_token - 1, f);
            fclose(f);
            file_token[n] = 0;
            while (n && isspace((unsigned char)file_token[n - 1])) file_token[--n] = 0;
            t = file_token;
        }
    }
    if (!t || !*t) return status_ok();
    size_t n = strlen(t);
    bool ok = n < sizeof c->token;
    for (size_t i = 0; ok && i < n; i++) ok = t[i] > 0x20 && t[i] < 0x7f;
    if (!ok)
        return status_error(RADDINO_ERR_ARGUMENT,
                            "HF_TOKEN: not a token (printable characters without spaces, at most "
                            "%d)", HUB_TOKEN_MAX - 1);
    memcpy(c->token, t, n + 1);
    return status_ok();
}

static raddino_status fetch_setup(fetch_ctx *c, const raddino_fetch_params *params)
{
    c->p = *params;
    if (!c->p.repo) c->p.repo = RADDINO_DEFAULT_REPO;
    if (!c->p.revision) c->p.revision = RADDINO_DEFAULT_REVISION;
    if (c->p.offline < 0) c->p.offline = env_true("HF_HUB_OFFLINE");
    raddino_status st = hub_check_repo(c->p.repo);
    if (!st.code) st = hub_check_revision(c->p.revision);
    if (st.code) return st;
    st = c->p.cache_dir ? hub_expand_home(c->p.cache_dir, c->cache, sizeof c->cache)
                        : raddino_hub_cache_dir(c->cache, sizeof c->cache);
    if (st.code) return st;
    const char *slash = strchr(c->p.repo, '/');
    int n = snprintf(c->locks, sizeof c->locks, "%s/.locks/models--%.*s--%s", c->cache,
                     (int)(slash - c->p.repo), c->p.repo, slash + 1);
    if (!hub_repo_folder(c->root, sizeof c->root, c->cache, c->p.repo) || n < 0 ||
        (size_t)n >= sizeof c->locks)
        return status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", c->cache);
    const char *e = c->p.endpoint ? c->p.endpoint : hub_env_nonempty("HF_ENDPOINT");
    if (!e) e = RADDINO_DEFAULT_ENDPOINT;
    size_t len = strlen(e);
    while (len && e[len - 1] == '/') len--;
    c->https = !strncmp(e, "https://", 8);
    if ((!c->https && strncmp(e, "http://", 7)) || len >= sizeof c->endpoint)
        return status_error(RADDINO_ERR_ARGUMENT, "HF_ENDPOINT=%.200s: expected an http:// or "
                            "https:// address", e);
    memcpy(c->endpoint, e, len);
    c->endpoint[len] = 0;
    return load_token(c);
}

/* The cache folders, made once the Hub has answered, so that a mistyped repository leaves no
 * empty models--ORG--NAME behind. */
static raddino_status make_cache_dirs(const fetch_ctx *c)
{
    char sub[RADDINO_PATH_MAX];
    const char *dirs[] = {"blobs", "snapshots", "refs"};
    raddino_status st = make_dirs(c->locks);
    for (int i = 0; i < 3 && !st.code; i++)
        st = hub_path_join(sub, sizeof sub, c->root, dirs[i])
                 ? make_dirs(sub)
                 : status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", c->root);
    return st;
}

/* Fetches one file at `revision` (the asked one for the first file, the commit afterwards). */
static raddino_status fetch_file(fetch_ctx *c, const char *revision, const char *file,
                                 file_meta *m)
{
    raddino_status st = head_file(c, revision, file, m);
    if (!st.code) st = make_cache_dirs(c);
    if (!st.code) st = ensure_blob(c, file, m);
    if (!st.code) st = link_snapshot(c, m, file);
    return st;
}

static raddino_status fetch_all(fetch_ctx *c, raddino_hub_model *out)
{
    file_meta first, m;
    raddino_status st = fetch_file(c, c->p.revision, "config.json", &first);
    if (!st.code) st = fetch_file(c, first.commit, "preprocessor_config.json", &m);
    if (!st.code) {
        st = fetch_file(c, first.commit, hub_weights_files[0], &m);
        if (st.code == RADDINO_ERR_NOT_FOUND) {
            char note[RADDINO_MESSAGE_MAX + 64];
            snprintf(note, sizeof note, "%s; trying %s", st.message, hub_weights_files[1]);
            notify(c, RADDINO_FETCH_NOTE, hub_weights_files[0], 0, 0, NULL, note);
            st = fetch_file(c, first.commit, hub_weights_files[1], &m);
        }
    }
    if (!st.code && strcmp(m.commit, first.commit) != 0)
        st = status_error(RADDINO_ERR_NETWORK, "%s: the server answered for commit %s, then %s",
                          c->p.repo, first.commit, m.commit);
    if (!st.code) st = write_ref(c, c->p.revision, first.commit);
    if (!st.code) st = hub_find_in(c->cache, c->p.repo, c->p.revision, out);
    return st;
}

raddino_fetch_params raddino_fetch_default_params(void)
{
    raddino_fetch_params p;
    memset(&p, 0, sizeof p);
    p.offline = -1;
    return p;
}

raddino_status raddino_hub_fetch(const raddino_fetch_params *params, raddino_hub_model *out)
{
    if (!params || !out)
        return status_error(RADDINO_ERR_ARGUMENT, "raddino_hub_fetch: NULL argument");
    memset(out, 0, sizeof *out);
    fetch_ctx *c = calloc(1, sizeof *c);
    if (!c) return status_error(RADDINO_ERR_NOMEM, "raddino_hub_fetch: out of memory");
    raddino_status st = fetch_setup(c, params);
    if (!st.code && c->p.offline) {
        /* Offline: the cache or nothing; not a single request. */
        st = hub_find_in(c->cache, c->p.repo, c->p.revision, out);
        if (!st.code) {
            notify(c, RADDINO_FETCH_NOTE, NULL, 0, 0, NULL,
                   "HF_HUB_OFFLINE is set: not contacting the Hub; using the cached copy");
        } else {
            char why[RADDINO_MESSAGE_MAX];
            snprintf(why, sizeof why, "%s", st.message);
            st = status_error(RADDINO_ERR_NETWORK,
                              "HF_HUB_OFFLINE is set, so nothing is downloaded, and the cache "
                              "cannot serve %s: %s",
                              c->p.repo, why);
        }
        free(c);
        return st;
    }
    if (!st.code && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        st = status_error(RADDINO_ERR_NETWORK, "libcurl could not be initialised");
    else if (!st.code) {
        c->curl = curl_easy_init();
        if (!c->curl) st = status_error(RADDINO_ERR_NOMEM, "libcurl: out of memory");
        else st = fetch_all(c, out);
        curl_easy_cleanup(c->curl);
        curl_global_cleanup();
    }
    free(c);
    return st;
}
