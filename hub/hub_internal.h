/* hub_internal.h — private to hub/: helpers hub.c shares with hub_fetch.c. */
#ifndef RADDINO_HUB_INTERNAL_H
#define RADDINO_HUB_INTERNAL_H

#include "raddino_hub.h"

#include <stdbool.h>
#include <stddef.h>

/* The module's short names for the status constructors. */
#define status_ok raddino_status_ok
#define status_error raddino_status_error

extern const char *const hub_weights_files[2];  /* model.safetensors, then the backbone file */
bool hub_is_hex(const char *s, size_t n);       /* exactly n lowercase hex digits */
bool hub_is_commit(const char *s);              /* 40 lowercase hex digits */
const char *hub_env_nonempty(const char *name); /* getenv, NULL when empty */
bool hub_path_join(char *out, size_t size, const char *a, const char *b);
raddino_status hub_expand_home(const char *value, char *out, size_t size);  /* "~/" -> $HOME */
raddino_status hub_hf_home(char *out, size_t size);     /* $HF_HOME, else XDG/~ .cache */
raddino_status hub_check_repo(const char *repo);        /* ORG/NAME, nothing path-like */
raddino_status hub_check_revision(const char *rev);     /* no "..", no leading '/' */
bool hub_repo_folder(char *out, size_t size, const char *cache, const char *repo);
bool hub_is_dir(const char *path);
bool hub_is_file(const char *path);
/* raddino_hub_find once the names are checked and the cache folder is known. */
raddino_status hub_find_in(const char *cache, const char *repo, const char *revision,
                           raddino_hub_model *out);

#endif
