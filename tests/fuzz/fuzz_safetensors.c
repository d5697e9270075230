/* fuzz_safetensors.c — the safetensors reader (header length, JSON header, dtypes, shapes,
 * offsets, overlaps) and the weight mapping on top of it, for a micro model small enough that
 * inputs which pass every check stay a few KB (seeds: tests/fuzz/corpus/safetensors). */
#include "encoder_internal.h"
#include "fuzz.h"

#include <string.h>

/* hidden 4, 1 layer, 1 head, patch 2, image 4 (a 2x2 grid), MLP 8. */
static const char micro_config[] =
    "{\"model_type\": \"dinov2\", \"hidden_size\": 4, \"num_hidden_layers\": 1, "
    "\"num_attention_heads\": 1, \"mlp_ratio\": 2, \"patch_size\": 2, \"image_size\": 4, "
    "\"layer_norm_eps\": 1e-6}";

static unsigned dtype_bytes(safetensors_dtype d)
{
    switch (d) {
    case ST_F64: case ST_I64: return 8;
    case ST_F32: case ST_I32: return 4;
    case ST_F16: case ST_BF16: case ST_I16: return 2;
    default: return 1;
    }
}

/* Every tensor in bounds, sized by its shape, findable by name; every byte read once. */
static int check_tensors(const safetensors_file *f, const uint8_t *data, size_t size)
{
    unsigned sum = 0;
    (void)data;
    for (int i = 0; i < f->n_tensors; i++) {
        const safetensors_tensor *t = &f->tensors[i];
        FUZZ_REQUIRE(t->begin <= t->end && t->end <= f->data_size);
        FUZZ_REQUIRE(t->data == f->data_section + t->begin);
        FUZZ_REQUIRE(t->data >= data && t->data + (t->end - t->begin) <= data + size);
        FUZZ_REQUIRE(t->end - t->begin == t->n_elements * dtype_bytes(t->dtype));
        FUZZ_REQUIRE(t->n_dims >= 0 && t->n_dims <= SAFETENSORS_MAX_DIMS);
        FUZZ_REQUIRE(safetensors_find(f, t->name) == t);
        for (uint64_t b = 0; b < t->end - t->begin; b++) sum += t->data[b];
    }
    volatile unsigned sink = sum;   /* keeps the reads */
    (void)sink;
    return 0;
}

int fuzz_safetensors(const uint8_t *data, size_t size)
{
    safetensors_file f;
    raddino_status st = safetensors_open_memory(data, size, FUZZ_NAME, &f);
    if (st.code) return fuzz_check_error(&st);
    int rc = check_tensors(&f, data, size);
    vit_config cfg;
    st = config_parse_model(micro_config, sizeof micro_config - 1, "micro", &cfg);
    FUZZ_REQUIRE(!st.code);
    vit_weights w;
    st = weights_load(&f, &cfg, &w);
    if (st.code) {
        if (fuzz_check_error(&st)) rc = -1;
    } else {
        /* Touch every value the forward pass would read. */
        float acc = w.cls_token[0] + w.patch_b[3] + w.norm_w[3] + w.norm_b[3];
        size_t pos = (size_t)(1 + w.table_h * w.table_w) * 4;
        for (size_t i = 0; i < pos; i++) acc += w.pos_embed[i];
        for (size_t i = 0; i < 4 * 3 * 2 * 2; i++) acc += w.patch_w[i];
        const vit_layer_weights *L = &w.layers[0];
        for (int i = 0; i < 16; i++)
            acc += L->q_w[i] + L->k_w[i] + L->v_w[i] + L->proj_w[i];
        for (int i = 0; i < 32; i++) acc += L->fc1_w[i] + L->fc2_w[i];
        for (int i = 0; i < 8; i++) acc += L->fc1_b[i];
        for (int i = 0; i < 4; i++)
            acc += L->norm1_w[i] + L->norm1_b[i] + L->q_b[i] + L->k_b[i] + L->v_b[i] +
                   L->proj_b[i] + L->ls1[i] + L->norm2_w[i] + L->norm2_b[i] + L->fc2_b[i] +
                   L->ls2[i];
        volatile float sink = acc;  /* keeps the reads */
        (void)sink;
        weights_free(&w);
    }
    safetensors_close(&f);
    return rc;
}

FUZZ_ENTRY(fuzz_safetensors)
