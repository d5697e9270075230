/* fuzz.h — the fuzz harnesses' entry points, shared by the libFuzzer build (tests/fuzz/, one
 * executable per parser, RADDINO_FUZZ=ON) and the corpus replay suite (tests/test_fuzz_replay.c,
 * the normal build, no fuzzing engine).
 *
 * Each entry point feeds one input to a parser of outside bytes and checks what a caller relies
 * on: a rejection is a status whose message is one line starting with the input's name, and an
 * acceptance gives results that are in bounds (every byte of them is read, so that ASan sees a
 * short buffer). Returns 0, or -1 when such a check fails (the libFuzzer wrapper then aborts,
 * which the fuzzer reports as a crash). */
#ifndef RADDINO_FUZZ_H
#define RADDINO_FUZZ_H

#include "raddino_encoder.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int fuzz_safetensors(const uint8_t *data, size_t size);
int fuzz_config(const uint8_t *data, size_t size);
int fuzz_image(const uint8_t *data, size_t size);
int fuzz_image_formats(const uint8_t *data, size_t size);
int fuzz_npy(const uint8_t *data, size_t size);
int fuzz_dicom(const uint8_t *data, size_t size);

/* The name every harness gives its input; error messages must start with it. */
#define FUZZ_NAME "fuzz-input"

/* A rejection: one line, naming the input. */
static inline int fuzz_check_error(const raddino_status *st)
{
    size_t n = sizeof FUZZ_NAME - 1;
    const char *m = st->message;
    for (size_t i = 0; m[i]; i++)
        if (m[i] == '\n' || m[i] == '\r') goto bad;
    for (size_t i = 0; i < n; i++)
        if (m[i] != FUZZ_NAME[i]) goto bad;
    if (m[n] != ':' || m[n + 1] != ' ' || !m[n + 2]) goto bad;
    return 0;
bad:
    fprintf(stderr, "fuzz: bad error message (code %d): \"%s\"\n", st->code, m);
    return -1;
}

/* A check on an accepted input. */
#define FUZZ_REQUIRE(cond)                                                                        \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "fuzz: %s:%d: %s\n", __FILE__, __LINE__, #cond);                      \
            return -1;                                                                            \
        }                                                                                         \
    } while (0)

/* libFuzzer's entry point, only in the fuzzing build. */
#ifdef RADDINO_FUZZ_ENGINE
#define FUZZ_ENTRY(fn)                                                                            \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                                 \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                                  \
    {                                                                                             \
        if (fn(data, size) != 0) abort();                                                         \
        return 0;                                                                                 \
    }
#else
#define FUZZ_ENTRY(fn)
#endif

#endif
