/* fuzz_npy.c — the .npy reader (cli/npy.c): preamble, header dict, shape, data length. */
#include "fuzz.h"
#include "npy.h"

int fuzz_npy(const uint8_t *data, size_t size)
{
    float *values;
    int n_dims = -1;
    int64_t shape[8];
    raddino_status st = npy_read_f32_memory(data, size, FUZZ_NAME, &values, &n_dims, shape);
    if (st.code) {
        FUZZ_REQUIRE(values == NULL);
        return fuzz_check_error(&st);
    }
    FUZZ_REQUIRE(values != NULL && n_dims >= 0 && n_dims <= 8);
    uint64_t count = 1;
    for (int i = 0; i < n_dims; i++) {
        FUZZ_REQUIRE(shape[i] >= 0);
        count *= (uint64_t)shape[i];
    }
    /* The values came from the file: there cannot be more of them than its bytes. */
    FUZZ_REQUIRE(count <= size / sizeof(float));
    const uint8_t *bytes = (const uint8_t *)values;
    unsigned sum = 0;
    for (uint64_t i = 0; i < count * sizeof(float); i++) sum += bytes[i];
    volatile unsigned sink = sum;   /* keeps the reads */
    (void)sink;
    free(values);
    return 0;
}

FUZZ_ENTRY(fuzz_npy)
