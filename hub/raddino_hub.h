/* raddino_hub.h — finding and downloading model weights: the Hugging Face hub cache and the Hub.
 * Not encoding: a module of its own beside the encoder (hub/, with libcurl), in libraddino.so.
 * Every call returns a raddino_status (raddino_status.h).
 *
 * raddino shares the Hugging Face hub cache with the Python tools (huggingface_hub,
 * transformers), so a model downloaded by either is found by both:
 *
 *   CACHE/models--ORG--NAME/refs/REVISION           the commit hash REVISION pointed to
 *   CACHE/models--ORG--NAME/snapshots/COMMIT/FILE   relative symlink to ../../blobs/ETAG
 *   CACHE/models--ORG--NAME/blobs/ETAG              the file's bytes; ETAG is the sha256 of
 *                                                   large (LFS) files, the git blob sha1 of
 *                                                   small ones
 *
 * CACHE is $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
 *
 *     raddino_hub_model m;
 *     raddino_status st = raddino_hub_find(NULL, NULL, NULL, &m);   // microsoft/rad-dino, main
 *     if (!st.code) st = raddino_encoder_open(m.model_dir, &params, &enc);
 */
#ifndef RADDINO_HUB_H
#define RADDINO_HUB_H

#include "raddino_status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
/* Exported from libraddino.so, built with -fvisibility=hidden (see cmake/install.cmake). */
#pragma GCC visibility push(default)

#define RADDINO_DEFAULT_REPO "microsoft/rad-dino"
#define RADDINO_DEFAULT_REVISION "main"
#define RADDINO_DEFAULT_ENDPOINT "https://huggingface.co"
#ifndef RADDINO_PATH_MAX
#define RADDINO_PATH_MAX 4096
#endif

/* A model in the hub cache. */
typedef struct {
    char cache_dir[RADDINO_PATH_MAX];   /* the hub cache that holds it */
    char model_dir[RADDINO_PATH_MAX];   /* its snapshot folder: pass to raddino_encoder_open */
    char repo[128];                     /* ORG/NAME */
    char revision[256];                 /* as asked: branch, tag or commit */
    char commit[41];                    /* the commit the revision resolved to */
} raddino_hub_model;

/* The hub cache folder the environment selects (see above); the folder need not exist. */
raddino_status raddino_hub_cache_dir(char *out, size_t size);

/* Finds repo (NULL: RADDINO_DEFAULT_REPO) at revision (NULL: "main"; a branch or tag is looked
 * up in refs/, a commit hash names the snapshot directly) in cache_dir (NULL: the environment's
 * cache). The snapshot must hold config.json, preprocessor_config.json and model.safetensors or
 * backbone_compatible.safetensors. RADDINO_ERR_NOT_FOUND when the repo or revision is not in
 * the cache at all. Touches no network. */
raddino_status raddino_hub_find(const char *cache_dir, const char *repo, const char *revision,
                                raddino_hub_model *out);

typedef enum {
    RADDINO_FETCH_START,     /* a download begins; done > 0 when resuming a partial file */
    RADDINO_FETCH_PROGRESS,  /* bytes arrived: done of total */
    RADDINO_FETCH_RETRY,     /* the transfer broke (message says how); resuming at done */
    RADDINO_FETCH_DONE,      /* downloaded, verified and installed; sha256 is set */
    RADDINO_FETCH_CACHED,    /* already in the cache: nothing downloaded */
    RADDINO_FETCH_NOTE       /* something worth telling the user (message) */
} raddino_fetch_event;

typedef struct {
    raddino_fetch_event event;
    const char *file;       /* config.json, ... (NULL for some NOTEs) */
    uint64_t done, total;   /* bytes */
    const char *sha256;     /* DONE: hex sha256 of the installed file */
    const char *message;    /* RETRY, NOTE */
} raddino_fetch_progress;

typedef struct {
    const char *repo;       /* NULL: RADDINO_DEFAULT_REPO */
    const char *revision;   /* NULL: "main" */
    const char *cache_dir;  /* NULL: the environment's cache */
    const char *endpoint;   /* NULL: $HF_ENDPOINT, else RADDINO_DEFAULT_ENDPOINT */
    const char *token;      /* NULL: $HF_TOKEN, else the token file huggingface-cli login
                               writes ($HF_TOKEN_PATH, else $HF_HOME/token) */
    int offline;            /* 1: never touch the network; 0: allowed; -1: $HF_HUB_OFFLINE */
    /* Called from the downloading thread; may be NULL. */
    void (*progress)(void *user, const raddino_fetch_progress *p);
    void *user;
} raddino_fetch_params;

raddino_fetch_params raddino_fetch_default_params(void);

/* Downloads config.json, preprocessor_config.json and model.safetensors (or, when the repo has
 * none, backbone_compatible.safetensors) into the hub cache with libcurl, and fills *out as
 * raddino_hub_find would. Files already in the cache are not downloaded again. Sends the token
 * as a Bearer header to the endpoint's host only (never to the CDN it redirects to); resumes
 * partial downloads (FILE.incomplete) with Range requests; installs a file only after its size
 * and its checksum (the Hub's ETag: sha256 or git blob sha1) match, and removes it otherwise.
 * Offline: succeeds only when the model is already in the cache, without any request. */
raddino_status raddino_hub_fetch(const raddino_fetch_params *params, raddino_hub_model *out);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
