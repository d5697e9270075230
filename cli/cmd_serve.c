/* cmd_serve.c — raddino serve: a small web page and a JSON API over a collection, with
 * libmicrohttpd (one thread per connection). Options, the listening address and its token,
 * routing, request bodies and a clean stop on SIGINT/SIGTERM; the answers are in serve_api.c.
 *
 * Safety: it listens on loopback unless told otherwise, and any other address needs --token,
 * then checked on every API request (constant-time). Requests name images by id only: no path
 * from a URL or body ever reaches the file system. Bodies are capped (--max-upload) before
 * they are buffered, decoded images by --max-pixels. */
#include "serve.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char serve_usage[] =
    "usage: raddino serve [OPTIONS]\n"
    "\n"
    "Serves a web page (search by upload or stored id, clusters, stats) and a JSON API:\n"
    "  POST /api/search[?k=K]           body: image bytes (PNG, JPEG, DICOM...), or JSON\n"
    "                                   {\"id\": N, \"k\": K, \"exclude_self\": true} with\n"
    "                                   Content-Type: application/json; k default 10\n"
    "  GET  /api/images/ID              the stored row: path, size, format, DICOM UIDs\n"
    "  GET  /api/images/ID/thumbnail    PNG, longest side ?size=N (default 256, max 1024)\n"
    "  GET  /api/clusters               the latest `raddino cluster` run, if any\n"
    "  GET  /api/stats                  counts, model, index\n"
    "Errors are JSON {\"error\": \"...\"}. Prints 'listening on http://HOST:PORT' when ready;\n"
    "SIGINT or SIGTERM stops it. It serves the collection as it was at start.\n"
    "\n"
    "options:\n"
    "  --host ADDR        IPv4 or IPv6 address to listen on (default 127.0.0.1); any\n"
    "                     address but loopback requires --token\n"
    "  --port N           TCP port (default 8080; 0: any free port)\n"
    "  --token T          require 'Authorization: Bearer T' on every API request (the page\n"
    "                     at / asks for it); default $RADDINO_SERVE_TOKEN\n"
    "  --max-upload N     largest request body: bytes, or with K, M, G (default 64M)\n"
    CLI_COLLECTION_HELP
    CLI_MODEL_HELP
    "  -h, --help         this help\n";

extern const char serve_page_html[];

typedef struct {
    cli_collection_options coll;
    cli_model_options model;
    const char *host;
    unsigned port;
    const char *token;
    uint64_t max_upload;
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
    enum { OPT_HOST = 0x400, OPT_PORT, OPT_TOKEN, OPT_MAX_UPLOAD };
    static const struct option long_options[] = {
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"max-upload", required_argument, NULL, OPT_MAX_UPLOAD},
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
        case OPT_MAX_UPLOAD:
            if (!parse_size(optarg, &o->max_upload)) {
                cli_error("--max-upload: expected a size (bytes, or with K, M, G), got '%s'",
                          optarg);
                return EXIT_USAGE;
            }
            break;
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
        return true;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        out->ipv6 = 1;
        out->loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
        return true;
    }
    return false;
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

typedef enum { ROUTE_NONE, ROUTE_PAGE, ROUTE_STATS, ROUTE_CLUSTERS, ROUTE_IMAGE,
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

/* One request's state across the handler's calls: its route and body so far. */
typedef struct {
    route route;
    char *body;
    size_t size, cap;
    int too_large;
} request;

static enum MHD_Result send_reply(struct MHD_Connection *conn, serve_reply *r, const char *allow)
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
    MHD_add_response_header(resp, "Content-Type", r->content_type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (allow) MHD_add_response_header(resp, "Allow", allow);
    if (r->status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status,
                                  const char *message, const char *allow)
{
    serve_reply r;
    serve_error(&r, status, message);
    return send_reply(conn, &r, allow);
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

static enum MHD_Result answer(serve_state *s, struct MHD_Connection *conn, request *q)
{
    serve_reply r = {500, "application/json", NULL, 0};
    switch (q->route.kind) {
    case ROUTE_PAGE:
        r.status = 200;
        r.content_type = "text/html; charset=utf-8";
        r.size = strlen(serve_page_html);
        r.body = malloc(r.size);
        if (r.body) memcpy(r.body, serve_page_html, r.size);
        else serve_error(&r, 500, "out of memory");
        break;
    case ROUTE_STATS: serve_stats(s, &r); break;
    case ROUTE_CLUSTERS: serve_clusters(s, &r); break;
    case ROUTE_IMAGE: serve_image_info(s, q->route.id, &r); break;
    case ROUTE_THUMBNAIL:
        serve_thumbnail(s, q->route.id,
                        query_int(conn, "size", SERVE_THUMB_DEFAULT, 16, SERVE_THUMB_MAX), &r);
        break;
    case ROUTE_SEARCH: {
        const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        int is_json = type && !strncasecmp(type, "application/json", 16);
        serve_search(s, q->body, q->size, is_json, query_int(conn, "k", 10, 1, SERVE_MAX_K), &r);
        break;
    }
    default: serve_error(&r, 404, "not found"); break;
    }
    return send_reply(conn, &r, NULL);
}

/* The first call: route, method, token and declared size are checked before any body is read.
 * Returns 1 when the request was answered (refused) already. */
static int refuse_early(serve_state *s, struct MHD_Connection *conn, request *q,
                        const char *method, enum MHD_Result *ret)
{
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int is_post = !strcmp(method, "POST");
    if (q->route.kind == ROUTE_NONE) {
        *ret = send_error(conn, 404, "not found", NULL);
        return 1;
    }
    if (q->route.kind == ROUTE_SEARCH ? !is_post : !is_get) {
        const char *allow = q->route.kind == ROUTE_SEARCH ? "POST" : "GET, HEAD";
        *ret = send_error(conn, 405, "method not allowed", allow);
        return 1;
    }
    /* The page is static (no data in it) and asks for the token; everything else needs it. */
    if (q->route.kind != ROUTE_PAGE && !authorised(s, conn)) {
        *ret = send_error(conn, 401, "missing or wrong token (Authorization: Bearer)", NULL);
        return 1;
    }
    const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (length && strtoull(length, NULL, 10) > s->max_upload) {
        *ret = send_error(conn, 413, "body larger than --max-upload", NULL);
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
    serve_state *s = cls;
    request *q = *con_cls;
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q) return MHD_NO;
        *con_cls = q;
        q->route = find_route(url);
        enum MHD_Result ret;
        if (refuse_early(s, conn, q, method, &ret)) return ret;
        return MHD_YES;     /* the body, if any, comes in the next calls */
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (q->too_large || n > s->max_upload - q->size) {
            q->too_large = 1;   /* chunked bodies have no length to check up front */
            return MHD_YES;
        }
        if (q->size + n > q->cap) {
            size_t cap = q->cap ? q->cap : 65536;
            while (cap < q->size + n) cap *= 2;
            if (cap > s->max_upload) cap = s->max_upload;
            char *grown = realloc(q->body, cap);
            if (!grown) return MHD_NO;
            q->body = grown;
            q->cap = cap;
        }
        memcpy(q->body + q->size, upload_data, n);
        q->size += n;
        return MHD_YES;
    }
    if (q->too_large) return send_error(conn, 413, "body larger than --max-upload", NULL);
    return answer(s, conn, q);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)conn;
    (void)code;
    request *q = *con_cls;
    if (q) free(q->body);
    free(q);
    *con_cls = NULL;
}

/* ---- the command -------------------------------------------------------------------------- */

static struct MHD_Daemon *start_daemon(serve_state *s, const listen_address *a)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | (a->ipv6 ? MHD_USE_IPv6 : 0);
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&a->addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                            MHD_OPTION_END);
}

/* SIGINT and SIGTERM are blocked in every thread from the start of cmd_serve (threads inherit
 * the mask: OpenMP's, OpenBLAS's, the daemon's), so none can land in a thread where it would
 * kill the process mid-request. One thread takes them with sigwait: while the collection and
 * model are still opening (an index build can take minutes) it ends the process the default
 * way, as any other command; once the server is up it wakes run_server for a clean stop. */
typedef struct {
    sigset_t set;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int serving;    /* 1 once the daemon listens */
    int signal;     /* the signal received while serving, 0 until then */
} stop_watch;

static void *watch_signals(void *arg)
{
    stop_watch *w = arg;
    int sig = 0;
    while (sigwait(&w->set, &sig) != 0) {}
    pthread_mutex_lock(&w->lock);
    if (!w->serving) {
        pthread_mutex_unlock(&w->lock);
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        signal(sig, SIG_DFL);
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
        raise(sig);     /* default action: the process ends as if never blocked */
        return NULL;
    }
    w->signal = sig;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Listens until the watcher reports SIGINT or SIGTERM. */
static int run_server(serve_state *s, const serve_options *o, const listen_address *a,
                      stop_watch *w)
{
    struct MHD_Daemon *d = start_daemon(s, a);
    if (!d) {
        cli_error("serve: cannot listen on %s port %u", o->host, o->port);
        return EXIT_INPUT_FAILED;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info ? info->port : o->port;
    pthread_mutex_lock(&w->lock);
    w->serving = 1;     /* before the ready line: a signal after it always stops cleanly */
    printf(a->ipv6 ? "listening on http://[%s]:%u\n" : "listening on http://%s:%u\n", o->host,
           port);
    fflush(stdout);
    while (!w->signal) pthread_cond_wait(&w->cond, &w->lock);
    int sig = w->signal;
    pthread_mutex_unlock(&w->lock);
    MHD_stop_daemon(d);     /* waits for the connection threads */
    fprintf(stderr, "raddino: serve: stopped (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return EXIT_OK;
}

/* Opens the collection and the model, then serves until stopped. */
static int serve(serve_options *o, stop_watch *w)
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
    s.encoder = cli_open_collection_model(s.collection, &o->model, &exit_code);
    if (s.encoder) {
        raddino_collection_info info;
        raddino_collection_get_info(s.collection, &info);
        s.dim = info.dim;
        s.load = cli_load_options(&o->model);
        s.max_upload = (size_t)o->max_upload;
        s.token = o->token;
        pthread_mutex_init(&s.collection_lock, NULL);
        pthread_mutex_init(&s.encoder_lock, NULL);
        exit_code = run_server(&s, o, &addr, w);
        pthread_mutex_destroy(&s.collection_lock);
        pthread_mutex_destroy(&s.encoder_lock);
    }
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
    o.token = getenv("RADDINO_SERVE_TOKEN");
    if (o.token && !*o.token) o.token = NULL;
    int exit_code = parse_serve_options(argc, argv, &o);
    if (exit_code >= 0) return exit_code;
    stop_watch w;
    memset(&w, 0, sizeof w);
    sigemptyset(&w.set);
    sigaddset(&w.set, SIGINT);
    sigaddset(&w.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &w.set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    pthread_t watcher;
    if (pthread_create(&watcher, NULL, watch_signals, &w) != 0) {
        cli_error("serve: cannot start a thread");
        return EXIT_INPUT_FAILED;
    }
    exit_code = serve(&o, &w);
    pthread_mutex_lock(&w.lock);
    int signalled = w.signal != 0;
    pthread_mutex_unlock(&w.lock);
    if (!signalled) pthread_cancel(watcher);    /* still in sigwait (a cancellation point) */
    pthread_join(watcher, NULL);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return exit_code;
}
