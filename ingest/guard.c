/* ingest_guard.c — one file that crashes a decoder must not stop every later `raddino index`.
 *
 * Debian's GDCM keeps its assert()s, and some damaged compressed DICOM pixel data reaches one:
 * the process aborts. Resuming would decode the same file again and die again, run after run.
 * So while a decoder thread decodes, its slot in DB-decoding (a small file beside the
 * database) holds the file's path, and the slot is emptied when the decode returns. A run that
 * ends in any way short of dying leaves every slot empty and removes the file. At the start of
 * the next run, a path still in a slot was being decoded when a run died: it is decoded again,
 * alone, in a child process (`raddino __decode-check`, a fresh process of the program, or a
 * fork of the caller when it names no such program: raddino_ingest_params); if
 * that one dies too (or runs past a minute), the file is recorded as failed, like any file that
 * cannot be decoded, and skipped until it changes. Files that were merely in flight when a run
 * was killed decode fine in the child and are indexed as usual.
 *
 * A slot is a 4-byte length and up to INGEST_GUARD_PATH_MAX bytes of path, written with one
 * pwrite: no fsync, because the page cache outlives a process that dies (a power cut loses the
 * slots, and with them only this protection for that one run).
 *
 * Testing hook: RADDINO_TEST_CRASH_DECODING=TEXT makes the decode of any path containing TEXT
 * abort(), in the indexer's threads and in the check child alike. */
#include "ingest_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define INGEST_GUARD_PATH_MAX 4096
#define SLOT_BYTES (4 + INGEST_GUARD_PATH_MAX)
#define CHECK_SECONDS 60    /* a check child still decoding after this is taken as hung */

static void journal_path(const char *db, char *out, size_t cap)
{
    snprintf(out, cap, "%s-decoding", db);
}

void ingest_guard_test_hook(const char *path)
{
    const char *text = getenv("RADDINO_TEST_CRASH_DECODING");
    if (text && *text && strstr(path, text)) abort();
}

size_t ingest_guard_suspects(const char *db, char ***out)
{
    *out = NULL;
    char name[4200];
    journal_path(db, name, sizeof name);
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t n = 0;
    uint8_t slot[SLOT_BYTES];
    for (off_t at = 0; pread(fd, slot, SLOT_BYTES, at) == SLOT_BYTES; at += SLOT_BYTES) {
        uint32_t len = (uint32_t)slot[0] | (uint32_t)slot[1] << 8 | (uint32_t)slot[2] << 16 |
                       (uint32_t)slot[3] << 24;
        if (len == 0 || len > INGEST_GUARD_PATH_MAX) continue;
        char **grown = realloc(*out, (n + 1) * sizeof *grown);
        char *path = grown ? malloc(len + 1) : NULL;
        if (grown) *out = grown;
        if (!path) break;
        memcpy(path, slot + 4, len);
        path[len] = '\0';
        (*out)[n++] = path;
    }
    close(fd);
    return n;
}

void ingest_guard_free_suspects(char **paths, size_t n)
{
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

/* What the child does: decode, nothing else. */
static void decode_alone(const char *path, const raddino_load_options *load)
{
    alarm(CHECK_SECONDS);       /* SIGALRM ends a decode that hangs */
    ingest_guard_test_hook(path);
    raddino_image image;
    if (!raddino_image_load_ex(path, load, &image).code) raddino_image_free(&image);
}

int ingest_guard_check(const char *program, const char *path, const raddino_load_options *load)
{
    pid_t pid;
    if (program) {
        char max_pixels[32], window[16], center[40], width[40];
        snprintf(max_pixels, sizeof max_pixels, "%llu", (unsigned long long)load->max_pixels);
        snprintf(window, sizeof window, "%d", load->window);
        snprintf(center, sizeof center, "%.17g", load->window_center);
        snprintf(width, sizeof width, "%.17g", load->window_width);
        char *argv[] = {"raddino", "__decode-check", max_pixels, window, center, width,
                        (char *)path, NULL};
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
        int rc = posix_spawn(&pid, program, &actions, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) return 0;      /* cannot tell: let the run try the file */
    } else {
        /* No program to run: a fork decodes it. No decoder thread runs yet (the check comes
         * before the pipeline starts), and the decoders fork for GDCM's codecs the same way. */
        fflush(NULL);
        pid = fork();
        if (pid < 0) return 0;
        if (pid == 0) {
            int null = open("/dev/null", O_WRONLY);
            if (null >= 0) dup2(null, STDOUT_FILENO), dup2(null, STDERR_FILENO);
            decode_alone(path, load);
            _exit(0);
        }
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return 0;
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

int raddino_ingest_decode_check(int argc, char **argv)
{
    if (argc != 6) return 2;
    raddino_load_options load;
    memset(&load, 0, sizeof load);
    load.max_pixels = strtoull(argv[1], NULL, 10);
    load.window = (int)strtol(argv[2], NULL, 10);
    load.window_center = strtod(argv[3], NULL);
    load.window_width = strtod(argv[4], NULL);
    decode_alone(argv[5], &load);
    return 0;
}

bool ingest_guard_open(ingest_guard *g, const char *db, int slots)
{
    char name[4200];
    journal_path(db, name, sizeof name);
    g->slots = slots;
    g->fd = open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    /* Every slot exists from the start, so a reader finds them all whatever was written. */
    if (g->fd >= 0 && ftruncate(g->fd, (off_t)slots * SLOT_BYTES) != 0) {
        close(g->fd);
        g->fd = -1;
    }
    return g->fd >= 0;
}

static void write_slot(const ingest_guard *g, int slot, const char *path, uint32_t len)
{
    uint8_t buf[SLOT_BYTES];
    buf[0] = (uint8_t)len, buf[1] = (uint8_t)(len >> 8);
    buf[2] = (uint8_t)(len >> 16), buf[3] = (uint8_t)(len >> 24);
    if (len) memcpy(buf + 4, path, len);
    /* Failing to write only loses the protection; the decode goes on. */
    ssize_t wrote = pwrite(g->fd, buf, 4 + (size_t)len, (off_t)slot * SLOT_BYTES);
    (void)wrote;
}

void ingest_guard_enter(const ingest_guard *g, int slot, const char *path)
{
    if (!g || g->fd < 0 || slot < 0 || slot >= g->slots) return;
    size_t len = strlen(path);
    write_slot(g, slot, path, len <= INGEST_GUARD_PATH_MAX ? (uint32_t)len : 0);
}

void ingest_guard_leave(const ingest_guard *g, int slot)
{
    if (!g || g->fd < 0 || slot < 0 || slot >= g->slots) return;
    write_slot(g, slot, NULL, 0);
}

void ingest_guard_close(ingest_guard *g, const char *db)
{
    if (g->fd < 0) return;
    close(g->fd);
    g->fd = -1;
    char name[4200];
    journal_path(db, name, sizeof name);
    unlink(name);
}
