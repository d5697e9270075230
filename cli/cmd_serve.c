/* cmd_serve.c — raddino serve: a small web page and a JSON API over a collection, with
 * libmicrohttpd (one thread per connection). Options, the listening address and its token,
 * routing, request bodies, connection limits and a clean stop on SIGTERM/SIGINT; the answers
 * are in serve_api.c.
 *
 * Safety: it listens on loopback unless told otherwise, and any other address needs --token,
 * then checked on every API request (constant-time) before any body is read. Requests name
 * images by id only: no path from a URL or body ever reaches the file system. Only the Host
 * names the server listens as are answered (a DNS-rebinding page cannot read the API), and
 * none that a browser says come from another site's page (Origin). Bodies
 * are judged before they are buffered: GET has none, JSON is capped at SERVE_MAX_JSON,
 * uploads at --max-upload (from Content-Length, or as bytes arrive). Connections still waiting
 * for their request are few (the oldest is dropped past SERVE_MAX_WAITING) and must deliver it
 * within --timeout seconds in all, however slowly the bytes trickle in.
 *
 * Stopping: a handler for SIGTERM (and SIGINT) writes to a pipe that the main thread polls. It
 * works whatever thread the kernel picks to take the signal: threads that exist before main()
 * (a pthread OpenBLAS starts its workers in a constructor) cannot have the signal blocked in
 * time, so blocking signals and sigwait-ing for them is not enough. */
#define _GNU_SOURCE     /* POLLRDHUP, pipe2 */
#include "serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char serve_usage[] =
    "usage: raddino serve [OPTIONS]\n"
    "\n"
    "Serves a web page (search by upload or stored id, clusters, stats) and a JSON API:\n"
    "  POST /api/search[?k=K&exclude_self=1]  body: image bytes (PNG, JPEG, DICOM...), a\n"
    "                                   multipart/form-data form with the image in a file\n"
    "                                   field (curl -F image=@x.png; fields k, exclude_self),\n"
    "                                   or JSON {\"id\": N, \"k\": K, \"exclude_self\": true}\n"
    "                                   with Content-Type: application/json; k default 10,\n"
    "                                   1 to 1000; exclude_self leaves out the query (for an\n"
    "                                   upload: stored files with the same bytes)\n"
    "  GET  /api/images/ID              the stored row: path, size, format, DICOM fields\n"
    "  GET  /api/images/ID/thumbnail    PNG, longest side ?size=N (default 256, max 1024),\n"
    "                                   with an ETag (the file's sha256)\n"
    "  GET  /api/clusters               the latest `raddino cluster` run, if any\n"
    "  GET  /api/stats                  counts, model, index, uploads\n"
    "Errors are JSON {\"error\": \"...\"}. Prints 'listening on http://HOST:PORT' when ready.\n"
    "SIGTERM stops it (requests in progress finish first); so does SIGINT, unless it was\n"
    "ignored when serve started (a background job of a non-interactive shell), as shells\n"
    "intend. Searches use the index as it was at start; image rows are read as they are now.\n"
    "Without the model (not found, or not the collection's), it still serves the page, rows,\n"
    "thumbnails and searches by id; uploads are refused.\n"
    "\n"
    "options:\n"
    "  --host ADDR        IPv4 or IPv6 address to listen on (default 127.0.0.1); any\n"
    "                     address but loopback requires --token\n"
    "  --port N           TCP port (default 8080; 0: any free port)\n"
    "  --token T          require 'Authorization: Bearer T' on every API request (the page\n"
    "                     at / asks for it); default $RADDINO_SERVE_TOKEN\n"
    "  --allow-host NAMES more Host names to answer to, comma-separated (a DNS name the\n"
    "                     server is reached by); loopback names and --host always are\n"
    "  --max-upload N     largest upload: bytes, or with K, M, G (default 64M)\n"
    "  --upload-max-pixels N  refuse uploaded images with more pixels (default 32000000,\n"
    "                     or --max-pixels when lower; --max-pixels is for stored files)\n"
    "  --upload-max-scans N   refuse progressive JPEG uploads with more scans (default 64)\n"
    "  --timeout S        seconds a connection has to deliver a whole request (default 60)\n"
    "  --search-batch N   searches that arrive together are answered together, at most N\n"
    "                     in one pass over the index (default 64; 0: one at a time)\n"
    CLI_COLLECTION_HELP
    CLI_MODEL_HELP
    "  -h, --help         this help\n";

extern const char serve_page_html[];
extern const char serve_favicon_svg[];

/* Connections: at most this many in all (one thread each), and per client address when not on
 * loopback (on loopback every client has the same address). */
#define SERVE_MAX_CONNECTIONS 128u
#define SERVE_MAX_PER_IP 32u
/* Connections still waiting for (the rest of) their request: past this, the oldest is closed,
 * so that slow or idle connections can never fill the server. */
#define SERVE_MAX_WAITING 32
/* libmicrohttpd's messages (a client that went away...): at most one line per this many
 * seconds, with the count of those left out. */
#define SERVE_LOG_INTERVAL 10.0

typedef struct {
    cli_collection_options coll;
    cli_model_options model;
    const char *host;
    unsigned port;
    const char *token;
    const char *allow_hosts;
    uint64_t max_upload;
    uint64_t upload_pixels;
    uint64_t upload_scans;
    uint64_t timeout;
    uint64_t search_batch;
} serve_options;

static bool parse_size(const char *arg, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(arg, &end, 10);
    uint64_t unit = 1;
    if (end == arg || arg[0] == '-') return false;
    if (*end == 'K' || *end == 'k') unit = 1ull << 10, end++;
    else if (*end == 'M' || *end == 'm') unit = 1ull << 20, end++;
    else if (*end == 'G' || *end == 'g') unit = 1ull << 30, end++;
    if (*end || v == 0 || v > (1ull << 40) / unit) return false;
    *out = v * unit;
    return true;
}

static int parse_serve_options(int argc, char **argv, serve_options *o)
{
    enum { OPT_HOST = 0x400, OPT_PORT, OPT_TOKEN, OPT_MAX_UPLOAD, OPT_UPLOAD_PIXELS,
           OPT_UPLOAD_SCANS, OPT_TIMEOUT, OPT_ALLOW_HOST, OPT_SEARCH_BATCH };
    static const struct option long_options[] = {
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"allow-host", required_argument, NULL, OPT_ALLOW_HOST},
        {"max-upload", required_argument, NULL, OPT_MAX_UPLOAD},
        {"upload-max-pixels", required_argument, NULL, OPT_UPLOAD_PIXELS},
        {"upload-max-scans", required_argument, NULL, OPT_UPLOAD_SCANS},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"search-batch", required_argument, NULL, OPT_SEARCH_BATCH},
        {"help", no_argument, NULL, 'h'},
        CLI_COLLECTION_LONG_OPTIONS,
        CLI_MODEL_LONG_OPTIONS,
        {NULL, 0, NULL, 0}};
    int opt, exit_code = -1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (cli_model_option(&o->model, opt, optarg, &exit_code) ||
            cli_collection_option(&o->coll, opt, optarg, &exit_code)) {
            if (exit_code >= 0) return exit_code;
            continue;
        }
        switch (opt) {
        case OPT_HOST: o->host = optarg; break;
        case OPT_PORT: {
            char *end;
            unsigned long port = strtoul(optarg, &end, 10);
            if (end == optarg || *end || optarg[0] == '-' || port > 65535) {
                cli_error("--port: expected a number from 0 (any free port) to 65535, got '%s'",
                          optarg);
                return EXIT_USAGE;
            }
            o->port = (unsigned)port;
            break;
        }
        case OPT_TOKEN: o->token = optarg; break;
        case OPT_ALLOW_HOST: o->allow_hosts = optarg; break;
        case OPT_MAX_UPLOAD:
            if (!parse_size(optarg, &o->max_upload)) {
                cli_error("--max-upload: expected a size (bytes, or with K, M, G), got '%s'",
                          optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_UPLOAD_PIXELS:
            if (!cli_parse_u64("--upload-max-pixels", optarg, UINT64_MAX, &o->upload_pixels) ||
                !o->upload_pixels) {
                cli_error("--upload-max-pixels: expected a positive number");
                return EXIT_USAGE;
            }
            break;
        case OPT_UPLOAD_SCANS:
            if (!cli_parse_u64("--upload-max-scans", optarg, 100000, &o->upload_scans) ||
                !o->upload_scans) {
                cli_error("--upload-max-scans: expected a number from 1 to 100000");
                return EXIT_USAGE;
            }
            break;
        case OPT_TIMEOUT:
            if (!cli_parse_u64("--timeout", optarg, 86400, &o->timeout) || !o->timeout) {
                cli_error("--timeout: expected seconds from 1 to 86400");
                return EXIT_USAGE;
            }
            break;
        case OPT_SEARCH_BATCH: {
            char *end;
            unsigned long n = strtoul(optarg, &end, 10);
            if (end == optarg || *end || optarg[0] == '-' || n > 1024) {
                cli_error("--search-batch: expected a number from 0 (one at a time) to 1024, "
                          "got '%s'", optarg);
                return EXIT_USAGE;
            }
            o->search_batch = n;
            break;
        }
        case 'h': fputs(serve_usage, stdout); return EXIT_OK;
        default:
            cli_error("serve: unknown or incomplete option '%s' (see raddino serve --help)",
                      argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("serve: unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    if (o->token && !*o->token) {
        cli_error("--token: empty");
        return EXIT_USAGE;
    }
    return -1;
}

/* ---- the listening address ---------------------------------------------------------------- */

typedef struct {
    struct sockaddr_storage addr;
    int ipv6;
    int loopback;
    int wildcard;   /* 0.0.0.0 or :: */
} listen_address;

static bool parse_host(const char *host, unsigned port, listen_address *out)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->addr;
    if (!strcmp(host, "localhost")) host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        out->loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
        out->wildcard = v4->sin_addr.s_addr == htonl(INADDR_ANY);
        return true;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        out->ipv6 = 1;
        out->loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
        out->wildcard = IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr);
        return true;
    }
    return false;
}

/* ---- the server's own state --------------------------------------------------------------- */

/* A connection, from accept to close; listed (oldest first) while it waits for a request. */
typedef struct tracked {
    struct tracked *prev, *next;
    int fd;
    int listed;
    double since;
} tracked;

#define SERVE_MAX_HOSTS 16

typedef struct {
    serve_state *s;
    unsigned timeout;
    /* Host header values answered: NAME and NAME:PORT for each; any when listening on a
     * wildcard address (a token is required there). */
    char hosts[SERVE_MAX_HOSTS][280];
    int n_hosts, any_host;
    char page_csp[400];
    pthread_mutex_t conn_lock;
    tracked *head, *tail;
    int n_waiting;
    int busy;               /* requests received whole and not yet answered to the end */
    long long evicted, timed_out;
    pthread_mutex_t log_lock;
    double log_last;
    long long log_left_out;
} server;

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void unlist(server *sv, tracked *t)
{
    if (!t->listed) return;
    if (t->prev) t->prev->next = t->next;
    else sv->head = t->next;
    if (t->next) t->next->prev = t->prev;
    else sv->tail = t->prev;
    t->prev = t->next = NULL;
    t->listed = 0;
    sv->n_waiting--;
}

/* Lists t as waiting for a request from now; drops the oldest waiting ones past the cap. The
 * socket is shut down, not closed: libmicrohttpd sees the end of the stream and closes it (and
 * reports CLOSED, which unlists it) itself. Called with conn_lock held. */
static void list_waiting(server *sv, tracked *t)
{
    unlist(sv, t);
    t->since = now_seconds();
    t->prev = sv->tail;
    if (sv->tail) sv->tail->next = t;
    else sv->head = t;
    sv->tail = t;
    t->listed = 1;
    sv->n_waiting++;
    while (sv->n_waiting > SERVE_MAX_WAITING) {
        tracked *old = sv->head;
        unlist(sv, old);
        if (old->fd >= 0) shutdown(old->fd, SHUT_RDWR);
        sv->evicted++;
    }
}

/* Connections that have waited longer than --timeout for their request, however many bytes
 * they sent meanwhile, are shut down (libmicrohttpd's own timeout restarts at every byte). */
static void drop_late(server *sv)
{
    double limit = now_seconds() - sv->timeout;
    pthread_mutex_lock(&sv->conn_lock);
    while (sv->head && sv->head->since < limit) {
        tracked *old = sv->head;
        unlist(sv, old);
        if (old->fd >= 0) shutdown(old->fd, SHUT_RDWR);
        sv->timed_out++;
    }
    pthread_mutex_unlock(&sv->conn_lock);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    server *sv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        tracked *t = calloc(1, sizeof *t);
        *socket_context = t;
        if (!t) return;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        t->fd = ci ? ci->connect_fd : -1;
        pthread_mutex_lock(&sv->conn_lock);
        list_waiting(sv, t);
        pthread_mutex_unlock(&sv->conn_lock);
        return;
    }
    tracked *t = *socket_context;
    if (!t) return;
    pthread_mutex_lock(&sv->conn_lock);
    unlist(sv, t);
    pthread_mutex_unlock(&sv->conn_lock);
    free(t);
    *socket_context = NULL;
}

static tracked *connection_tracked(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* libmicrohttpd's messages, rate-limited: a client that aborts its connections must not be
 * able to fill the log. */
static void on_log(void *cls, const char *fmt, va_list ap)
{
    server *sv = cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    double t = now_seconds();
    pthread_mutex_lock(&sv->log_lock);
    if (sv->log_last && t - sv->log_last < SERVE_LOG_INTERVAL) {
        sv->log_left_out++;
    } else {
        if (sv->log_left_out)
            fprintf(stderr, "raddino: serve: %s (and %lld more messages left out)\n", line,
                    sv->log_left_out);
        else
            fprintf(stderr, "raddino: serve: %s\n", line);
        sv->log_left_out = 0;
        sv->log_last = t;
    }
    pthread_mutex_unlock(&sv->log_lock);
}

static void add_host(server *sv, const char *name, size_t n, unsigned port)
{
    if (sv->n_hosts + 2 > SERVE_MAX_HOSTS || n == 0 || n > 250) return;
    snprintf(sv->hosts[sv->n_hosts++], sizeof sv->hosts[0], "%.*s", (int)n, name);
    snprintf(sv->hosts[sv->n_hosts++], sizeof sv->hosts[0], "%.*s:%u", (int)n, name, port);
}

static void allowed_hosts(server *sv, const serve_options *o, const listen_address *a,
                          unsigned port)
{
    sv->any_host = a->wildcard;
    add_host(sv, "localhost", 9, port);
    add_host(sv, "127.0.0.1", 9, port);
    add_host(sv, "[::1]", 5, port);
    char bracketed[300];
    if (a->ipv6) snprintf(bracketed, sizeof bracketed, "[%s]", o->host);
    else snprintf(bracketed, sizeof bracketed, "%s", o->host);
    add_host(sv, bracketed, strlen(bracketed), port);
    for (const char *p = o->allow_hosts; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        add_host(sv, p, n, port);
        p = comma ? comma + 1 : p + n;
    }
}

static int host_allowed(const server *sv, struct MHD_Connection *conn)
{
    if (sv->any_host) return 1;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (!h) return 1;   /* HTTP/1.0 without Host: not a browser */
    for (int i = 0; i < sv->n_hosts; i++)
        if (!strcasecmp(h, sv->hosts[i])) return 1;
    return 0;
}

/* The page's Content-Security-Policy: its one inline script and style by their sha256, so no
 * other script can run in it; no framing. */
static void page_policy(server *sv)
{
    const char *parts[2][2] = {{"<script>", "</script>"}, {"<style>", "</style>"}};
    char hashes[2][64] = {"", ""};
    for (int i = 0; i < 2; i++) {
        const char *a = strstr(serve_page_html, parts[i][0]);
        const char *b = a ? strstr(a, parts[i][1]) : NULL;
        if (!b) continue;
        a += strlen(parts[i][0]);
        unsigned char digest[32];
        unsigned len = 0;
        if (!EVP_Digest(a, (size_t)(b - a), digest, &len, EVP_sha256(), NULL)) continue;
        EVP_EncodeBlock((unsigned char *)hashes[i], digest, 32);
    }
    snprintf(sv->page_csp, sizeof sv->page_csp,
             "default-src 'none'; script-src 'sha256-%s'; style-src 'sha256-%s'; "
             "img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
             "frame-ancestors 'none'",
             hashes[0], hashes[1]);
}

/* ---- requests ----------------------------------------------------------------------------- */

/* Compares in time independent of where the strings differ (length still shows). */
static int same_secret(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = na != nb;
    for (size_t i = 0; i < na; i++) diff |= (unsigned char)a[i] ^ (unsigned char)b[i % (nb + 1)];
    return diff == 0;
}

static int authorised(const serve_state *s, struct MHD_Connection *conn)
{
    if (!s->token) return 1;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    while (*h == ' ') h++;
    return same_secret(h, s->token);
}

typedef enum { ROUTE_NONE, ROUTE_PAGE, ROUTE_FAVICON, ROUTE_STATS, ROUTE_CLUSTERS, ROUTE_IMAGE,
               ROUTE_THUMBNAIL, ROUTE_SEARCH } route_kind;

typedef struct {
    route_kind kind;
    int64_t id;
} route;

/* Digits only (no sign, no dots), 1..18 of them: an image id, never a path. */
static bool parse_id(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 18) return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return v > 0;
}

static route find_route(const char *url)
{
    route r = {ROUTE_NONE, 0};
    static const char images[] = "/api/images/";
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) r.kind = ROUTE_PAGE;
    else if (!strcmp(url, "/favicon.ico") || !strcmp(url, "/favicon.svg")) r.kind = ROUTE_FAVICON;
    else if (!strcmp(url, "/api/stats")) r.kind = ROUTE_STATS;
    else if (!strcmp(url, "/api/clusters")) r.kind = ROUTE_CLUSTERS;
    else if (!strcmp(url, "/api/search")) r.kind = ROUTE_SEARCH;
    else if (!strncmp(url, images, sizeof images - 1)) {
        const char *id = url + sizeof images - 1;
        const char *slash = strchr(id, '/');
        size_t n = slash ? (size_t)(slash - id) : strlen(id);
        if (!parse_id(id, n, &r.id)) return r;
        if (!slash) r.kind = ROUTE_IMAGE;
        else if (!strcmp(slash, "/thumbnail")) r.kind = ROUTE_THUMBNAIL;
    }
    return r;
}

typedef enum { BODY_NONE, BODY_JSON, BODY_RAW, BODY_FORM } body_kind;

/* One request's state across the handler's calls: its route and body so far. */
typedef struct {
    route route;
    body_kind kind;
    size_t limit;           /* the most body bytes accepted */
    char *body;
    size_t size, cap;
    int too_large;
    struct MHD_PostProcessor *form;
    int form_file;          /* 1 while the first file field is being read, 2 after it */
    char form_k[16], form_exclude[8];
    int has_form_k, has_form_exclude;
    int fd;                 /* the client's socket: polled for a disconnect */
    int busy;               /* counted in server.busy */
} request;

static int append_body(request *q, const char *data, size_t n)
{
    if (q->too_large || n > q->limit - q->size) {
        q->too_large = 1;
        return 1;       /* the rest is read and dropped; the answer is 413 */
    }
    if (q->size + n > q->cap) {
        size_t cap = q->cap ? q->cap : 65536;
        while (cap < q->size + n) cap *= 2;
        if (cap > q->limit) cap = q->limit;
        char *grown = realloc(q->body, cap);
        if (!grown) return 0;
        q->body = grown;
        q->cap = cap;
    }
    memcpy(q->body + q->size, data, n);
    q->size += n;
    return 1;
}

/* multipart/form-data (what browsers' forms and curl -F send), through libmicrohttpd's
 * incremental parser: the first file field is the image; k and exclude_self are fields. */
static enum MHD_Result on_form_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *filename, const char *content_type,
                                     const char *transfer_encoding, const char *data,
                                     uint64_t off, size_t size)
{
    (void)kind, (void)content_type, (void)transfer_encoding;
    request *q = cls;
    if (filename || (key && (!strcmp(key, "image") || !strcmp(key, "file")))) {
        if (q->form_file == 0 && off == 0) q->form_file = 1;
        else if (q->form_file == 1 && off == 0) q->form_file = 2;   /* a second file: ignored */
        if (q->form_file == 1 && size) return append_body(q, data, size) ? MHD_YES : MHD_NO;
        return MHD_YES;
    }
    char *dst = NULL;
    size_t cap = 0;
    if (key && !strcmp(key, "k")) dst = q->form_k, cap = sizeof q->form_k, q->has_form_k = 1;
    else if (key && !strcmp(key, "exclude_self"))
        dst = q->form_exclude, cap = sizeof q->form_exclude, q->has_form_exclude = 1;
    if (dst) {
        size_t have = strlen(dst);
        if (off != have || have + size >= cap) {
            snprintf(dst, cap, "?");    /* too long: refused as a bad value */
            return MHD_YES;
        }
        memcpy(dst + have, data, size);
        dst[have + size] = 0;
    }
    return MHD_YES;
}

static void add_common_headers(struct MHD_Response *resp, const char *csp)
{
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "Content-Security-Policy", csp);
}

static enum MHD_Result send_reply(server *sv, struct MHD_Connection *conn, serve_reply *r,
                                  const char *allow)
{
    struct MHD_Response *resp;
    if (r->body)
        resp = MHD_create_response_from_buffer(r->size, r->body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(r->body);
        return MHD_NO;
    }
    if (r->status != 304) MHD_add_response_header(resp, "Content-Type", r->content_type);
    int is_page = r->content_type && !strncmp(r->content_type, "text/html", 9);
    add_common_headers(resp, is_page ? sv->page_csp
                                     : "default-src 'none'; frame-ancestors 'none'");
    if (r->etag[0]) {
        /* The browser keeps it, but asks each time (the token may have changed hands). */
        MHD_add_response_header(resp, "ETag", r->etag);
        MHD_add_response_header(resp, "Cache-Control", "private, no-cache");
    } else {
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    }
    if (allow) MHD_add_response_header(resp, "Allow", allow);
    if (r->status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(server *sv, struct MHD_Connection *conn, unsigned status,
                                  const char *message, const char *allow)
{
    serve_reply r;
    memset(&r, 0, sizeof r);
    serve_error(&r, status, message);
    return send_reply(sv, conn, &r, allow);
}

static int query_int(struct MHD_Connection *conn, const char *key, int fallback, int lo, int hi)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
    if (!v) return fallback;
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end) return fallback;
    return n < lo ? lo : n > hi ? hi : (int)n;
}

/* k from the query string or a form field: an integer from 1 to SERVE_MAX_K (the same rule
 * as JSON's "k"); 0 when bad. */
static int parse_k(const char *v)
{
    char *end;
    if (!v || !*v) return 0;
    long n = strtol(v, &end, 10);
    if (*end || n < 1 || n > SERVE_MAX_K) return 0;
    return (int)n;
}

/* "1", "true", "on" (a checkbox) or "0", "false", "off"; -1 otherwise. */
static int parse_flag(const char *v)
{
    if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "on")) return 1;
    if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "off")) return 0;
    return -1;
}

/* Polled by an upload's decode: the client has closed its side or the connection broke. A
 * client that half-closes after sending its request counts as gone (HTTP clients do not). */
static int client_gone(void *user)
{
    const request *q = user;
    if (q->fd < 0) return 0;
    struct pollfd p = {q->fd, POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0) return 0;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static enum MHD_Result answer_search(server *sv, struct MHD_Connection *conn, request *q)
{
    serve_search_request sq;
    memset(&sq, 0, sizeof sq);
    sq.body = q->body;
    sq.size = q->size;
    sq.is_json = q->kind == BODY_JSON;
    sq.k = 10;
    const char *k = q->has_form_k ? q->form_k
                                  : MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "k");
    if (k && !(sq.k = parse_k(k)))
        return send_error(sv, conn, 400, "k must be an integer from 1 to 1000", NULL);
    const char *ex = q->has_form_exclude
                         ? q->form_exclude
                         : MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "exclude_self");
    if (ex && (sq.exclude_self = parse_flag(ex)) < 0)
        return send_error(sv, conn, 400, "exclude_self must be true or false", NULL);
    if (q->kind == BODY_FORM && q->form_file == 0)
        return send_error(sv, conn, 400, "the form has no file field with the image", NULL);
    sq.client_gone = client_gone;
    sq.client_gone_user = q;
    serve_reply r;
    memset(&r, 0, sizeof r);
    serve_search(sv->s, &sq, &r);
    return send_reply(sv, conn, &r, NULL);
}

static enum MHD_Result answer(server *sv, struct MHD_Connection *conn, request *q)
{
    serve_state *s = sv->s;
    serve_reply r;
    memset(&r, 0, sizeof r);
    r.status = 500;
    r.content_type = "application/json";
    switch (q->route.kind) {
    case ROUTE_PAGE:
    case ROUTE_FAVICON: {
        const char *text = q->route.kind == ROUTE_PAGE ? serve_page_html : serve_favicon_svg;
        r.status = 200;
        r.content_type = q->route.kind == ROUTE_PAGE ? "text/html; charset=utf-8"
                                                     : "image/svg+xml";
        r.size = strlen(text);
        r.body = malloc(r.size);
        if (r.body) memcpy(r.body, text, r.size);
        else serve_error(&r, 500, "out of memory");
        break;
    }
    case ROUTE_STATS: serve_stats(s, &r); break;
    case ROUTE_CLUSTERS: serve_clusters(s, &r); break;
    case ROUTE_IMAGE: serve_image_info(s, q->route.id, &r); break;
    case ROUTE_THUMBNAIL:
        serve_thumbnail(s, q->route.id,
                        query_int(conn, "size", SERVE_THUMB_DEFAULT, 16, SERVE_THUMB_MAX),
                        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match"), &r);
        break;
    case ROUTE_SEARCH: return answer_search(sv, conn, q);
    default: serve_error(&r, 404, "not found"); break;
    }
    return send_reply(sv, conn, &r, NULL);
}

/* The first call, with the headers only: Host, route, method, token and declared size are
 * judged before any body is read. Returns 1 when the request was answered (refused) already. */
static int refuse_early(server *sv, struct MHD_Connection *conn, request *q, const char *method,
                        enum MHD_Result *ret)
{
    serve_state *s = sv->s;
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int is_post = !strcmp(method, "POST");
    if (!host_allowed(sv, conn)) {
        *ret = send_error(sv, conn, 421, "unknown Host (the server answers only to the names it "
                          "listens as)", NULL);
        return 1;
    }
    /* Browsers name the page that sent a request in Origin, even for a form or no-cors POST
     * from another site to this loopback server (which no Host check can tell apart): only
     * requests from the server's own pages, or from no page, are answered. */
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (origin && (!host || strncasecmp(origin, "http://", 7) != 0 ||
                   strcasecmp(origin + 7, host) != 0)) {
        *ret = send_error(sv, conn, 403, "cross-origin request refused", NULL);
        return 1;
    }
    if (q->route.kind == ROUTE_NONE) {
        *ret = send_error(sv, conn, 404, "not found", NULL);
        return 1;
    }
    if (q->route.kind == ROUTE_SEARCH ? !is_post : !is_get) {
        const char *allow = q->route.kind == ROUTE_SEARCH ? "POST" : "GET, HEAD";
        *ret = send_error(sv, conn, 405, "method not allowed", allow);
        return 1;
    }
    /* The page and its icon are static (no data in them) and ask for the token; everything
     * else needs it. */
    if (q->route.kind != ROUTE_PAGE && q->route.kind != ROUTE_FAVICON && !authorised(s, conn)) {
        *ret = send_error(sv, conn, 401, "missing or wrong token (Authorization: Bearer)", NULL);
        return 1;
    }
    const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    const char *chunked =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
    unsigned long long declared = length ? strtoull(length, NULL, 10) : 0;
    if (is_get) {
        if (declared || chunked) {
            *ret = send_error(sv, conn, 400, "a GET request has no body", NULL);
            return 1;
        }
        q->kind = BODY_NONE;
        q->limit = 0;
        return 0;
    }
    const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (type && !strncasecmp(type, "application/json", 16)) {
        q->kind = BODY_JSON;
        q->limit = SERVE_MAX_JSON;
    } else if (type && !strncasecmp(type, "multipart/form-data", 19)) {
        q->kind = BODY_FORM;
        q->limit = s->max_upload;
        q->form = MHD_create_post_processor(conn, 16384, on_form_field, q);
        if (!q->form) {
            *ret = send_error(sv, conn, 400, "multipart/form-data without a boundary", NULL);
            return 1;
        }
    } else {
        q->kind = BODY_RAW;
        q->limit = s->max_upload;
    }
    /* A form's image is smaller than its body; the parser drops what is over. */
    if (declared > (q->kind == BODY_FORM ? q->limit + 65536 : q->limit)) {
        *ret = send_error(sv, conn, 413,
                          q->kind == BODY_JSON ? "JSON body larger than 32 KiB"
                                               : "body larger than --max-upload", NULL);
        return 1;
    }
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    server *sv = cls;
    request *q = *con_cls;
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q) return MHD_NO;
        *con_cls = q;
        q->route = find_route(url);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        q->fd = ci ? ci->connect_fd : -1;
        enum MHD_Result ret;
        if (refuse_early(sv, conn, q, method, &ret)) return ret;
        return MHD_YES;     /* the body, if any, comes in the next calls */
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (q->kind == BODY_NONE) {
            q->too_large = 1;
            return MHD_YES;
        }
        if (q->kind == BODY_FORM) {
            if (!q->too_large && MHD_post_process(q->form, upload_data, n) != MHD_YES &&
                !q->too_large)
                q->too_large = 2;   /* malformed form */
            return MHD_YES;
        }
        return append_body(q, upload_data, n) ? MHD_YES : MHD_NO;
    }
    /* The whole request is here: no longer a waiting connection. */
    tracked *t = connection_tracked(conn);
    pthread_mutex_lock(&sv->conn_lock);
    if (t) unlist(sv, t);
    if (!q->busy) sv->busy++;
    q->busy = 1;
    pthread_mutex_unlock(&sv->conn_lock);
    if (q->too_large == 2) return send_error(sv, conn, 400, "malformed multipart form", NULL);
    if (q->too_large)
        return send_error(sv, conn, 413,
                          q->kind == BODY_JSON   ? "JSON body larger than 32 KiB"
                          : q->kind == BODY_NONE ? "a GET request has no body"
                                                 : "body larger than --max-upload",
                          NULL);
    return answer(sv, conn, q);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    server *sv = cls;
    request *q = *con_cls;
    if (q) {
        if (q->form) MHD_destroy_post_processor(q->form);
        free(q->body);
        if (q->busy) {
            pthread_mutex_lock(&sv->conn_lock);
            sv->busy--;
            pthread_mutex_unlock(&sv->conn_lock);
        }
    }
    free(q);
    *con_cls = NULL;
    /* Kept alive: it waits for its next request from now. */
    tracked *t = code == MHD_REQUEST_TERMINATED_COMPLETED_OK ? connection_tracked(conn) : NULL;
    if (t) {
        pthread_mutex_lock(&sv->conn_lock);
        list_waiting(sv, t);
        pthread_mutex_unlock(&sv->conn_lock);
    }
}

/* ---- stopping ----------------------------------------------------------------------------- */

/* The write end of the stop pipe. A signal handler can reach no other state: this is the one
 * static variable, set before the handlers are installed and not changed while they are. */
static volatile int stop_pipe_fd = -1;

static void on_stop_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (stop_pipe_fd >= 0 && write(stop_pipe_fd, &b, 1) < 0) {}
    errno = saved;
}

typedef struct {
    int pipe[2];
    struct sigaction old_term, old_int;
    int int_ignored;    /* SIGINT was ignored at start: left so */
} stopper;

static int stopper_install(stopper *st)
{
    memset(st, 0, sizeof *st);
    if (pipe2(st->pipe, O_CLOEXEC | O_NONBLOCK) != 0) return 0;
    stop_pipe_fd = st->pipe[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, NULL, &st->old_int);
    /* A non-interactive shell starts background jobs with SIGINT ignored, so that a Ctrl-C
     * meant for the script does not reach them: keep it that way (SIGTERM still stops). */
    st->int_ignored = st->old_int.sa_handler == SIG_IGN;
    sigaction(SIGTERM, &sa, &st->old_term);
    if (!st->int_ignored) sigaction(SIGINT, &sa, NULL);
    return 1;
}

static void stopper_remove(stopper *st)
{
    sigaction(SIGTERM, &st->old_term, NULL);
    if (!st->int_ignored) sigaction(SIGINT, &st->old_int, NULL);
    stop_pipe_fd = -1;
    close(st->pipe[0]);
    close(st->pipe[1]);
}

/* ---- the command -------------------------------------------------------------------------- */

static struct MHD_Daemon *start_daemon(server *sv, const listen_address *a)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | MHD_USE_ITC | (a->ipv6 ? MHD_USE_IPv6 : 0);
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, sv, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)&a->addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, sv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, sv, MHD_OPTION_EXTERNAL_LOGGER, on_log, sv,
        MHD_OPTION_CONNECTION_LIMIT, SERVE_MAX_CONNECTIONS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, a->loopback ? 0u : SERVE_MAX_PER_IP,
        MHD_OPTION_CONNECTION_TIMEOUT, sv->timeout, MHD_OPTION_END);
}

/* Listens until SIGTERM (or SIGINT); meanwhile drops connections past their deadline. */
static int run_server(server *sv, const serve_options *o, const listen_address *a)
{
    stopper st;
    if (!stopper_install(&st)) {
        cli_error("serve: cannot create a pipe");
        return EXIT_INPUT_FAILED;
    }
    struct MHD_Daemon *d = start_daemon(sv, a);
    if (!d) {
        stopper_remove(&st);
        cli_error("serve: cannot listen on %s port %u", o->host, o->port);
        return EXIT_INPUT_FAILED;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info ? info->port : o->port;
    allowed_hosts(sv, o, a, port);
    if (st.int_ignored)
        fprintf(stderr, "raddino: serve: SIGINT is ignored (started so by the shell): stop it "
                        "with SIGTERM\n");
    printf(a->ipv6 ? "listening on http://[%s]:%u\n" : "listening on http://%s:%u\n", o->host,
           port);
    fflush(stdout);
    int sig = 0;
    while (!sig) {
        struct pollfd p = {st.pipe[0], POLLIN, 0};
        if (poll(&p, 1, 1000) > 0) {
            unsigned char b;
            if (read(st.pipe[0], &b, 1) == 1) sig = b;
        }
        drop_late(sv);
    }
    /* No new connections; the requests received whole are answered (for at most --timeout
     * seconds) before MHD_stop_daemon, which shuts every connection's socket at once. */
    MHD_socket listener = MHD_quiesce_daemon(d);
    double end = now_seconds() + sv->timeout;
    for (;;) {
        pthread_mutex_lock(&sv->conn_lock);
        int busy = sv->busy;
        pthread_mutex_unlock(&sv->conn_lock);
        if (!busy || now_seconds() > end) break;
        poll(NULL, 0, 20);
    }
    MHD_stop_daemon(d);
    if (listener != MHD_INVALID_SOCKET) close(listener);
    stopper_remove(&st);
    fprintf(stderr, "raddino: serve: stopped (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return EXIT_OK;
}

/* Opens the collection and the model, then serves until stopped. */
static int serve(serve_options *o)
{
    int exit_code = EXIT_INPUT_FAILED;
    listen_address addr;
    if (!parse_host(o->host, o->port, &addr)) {
        cli_error("--host: expected an IPv4 or IPv6 address, got '%s'", o->host);
        return EXIT_USAGE;
    }
    if (!addr.loopback && !o->token) {
        cli_error("serve: listening on %s (not loopback) requires --token", o->host);
        return EXIT_USAGE;
    }
    serve_state s;
    memset(&s, 0, sizeof s);
    o->coll.params.index.n_threads = o->model.threads;
    s.collection = cli_open_collection(&o->coll, &exit_code);
    if (!s.collection) return exit_code;
    /* No read transaction for the server's life: each request takes its own (see serve.h). */
    raddino_store_read_end(raddino_collection_store(s.collection));
    int model_exit = 0;
    s.encoder = cli_open_collection_model(s.collection, &o->model, &model_exit);
    if (!s.encoder) {
        snprintf(s.model_error, sizeof s.model_error,
                 "this server has no model (see its log): search by a stored image's id instead");
        fprintf(stderr, "raddino: serve: serving without the model: the page, image rows, "
                        "thumbnails and searches by id work; uploads are refused\n");
    }
    raddino_collection_info info;
    raddino_collection_get_info(s.collection, &info);
    s.dim = info.dim;
    s.load = cli_load_options(&o->model);
    s.upload = s.load;
    /* The lower of the two caps: --max-pixels alone lowers both. */
    s.upload.max_pixels = o->model.max_pixels && o->model.max_pixels < o->upload_pixels
                              ? o->model.max_pixels
                              : o->upload_pixels;
    s.upload.max_scans = (unsigned)o->upload_scans;
    s.max_upload = (size_t)o->max_upload;
    s.token = o->token;
    s.thumbs = serve_thumb_cache_new(SERVE_THUMB_CACHE_BYTES);
    pthread_mutex_init(&s.collection_lock, NULL);
    pthread_mutex_init(&s.encoder_lock, NULL);
    pthread_mutex_init(&s.decode_lock, NULL);
    pthread_cond_init(&s.decode_cond, NULL);
    if (o->search_batch > 0 && s.dim > 0) {
        raddino_search_queue_params qp = {(int)o->search_batch, serve_queue_lock,
                                          serve_queue_unlock, &s};
        raddino_status st = raddino_search_queue_new(s.collection, &qp, &s.queue);
        if (st.code) {
            cli_error("serve: %s", st.message);
            s.queue = NULL;
        }
    }
    server sv;
    memset(&sv, 0, sizeof sv);
    sv.s = &s;
    sv.timeout = (unsigned)o->timeout;
    pthread_mutex_init(&sv.conn_lock, NULL);
    pthread_mutex_init(&sv.log_lock, NULL);
    page_policy(&sv);
    exit_code = s.thumbs ? run_server(&sv, o, &addr) : EXIT_INPUT_FAILED;
    pthread_mutex_destroy(&sv.conn_lock);
    pthread_mutex_destroy(&sv.log_lock);
    pthread_mutex_destroy(&s.collection_lock);
    pthread_mutex_destroy(&s.encoder_lock);
    pthread_mutex_destroy(&s.decode_lock);
    pthread_cond_destroy(&s.decode_cond);
    raddino_search_queue_free(s.queue);
    serve_thumb_cache_free(s.thumbs);
    raddino_encoder_close(s.encoder);
    raddino_collection_close(s.collection);
    return exit_code;
}

int cmd_serve(int argc, char **argv)
{
    serve_options o;
    memset(&o, 0, sizeof o);
    o.coll.params = raddino_collection_default_params();
    o.host = "127.0.0.1";
    o.port = 8080;
    o.max_upload = SERVE_DEFAULT_MAX_UPLOAD;
    o.upload_pixels = SERVE_DEFAULT_UPLOAD_PIXELS;
    o.upload_scans = SERVE_DEFAULT_UPLOAD_SCANS;
    o.timeout = 60;
    o.search_batch = RADDINO_SEARCH_QUEUE_MAX_BATCH;
    o.token = getenv("RADDINO_SERVE_TOKEN");
    if (o.token && !*o.token) o.token = NULL;
    int exit_code = parse_serve_options(argc, argv, &o);
    if (exit_code >= 0) return exit_code;
    signal(SIGPIPE, SIG_IGN);
    return serve(&o);
}
