/* test_safetensors.c — the safetensors reader (golden files and hand-made malformed files) and
 * the weight mapping (both layouts, F16/BF16 conversion, unaligned F32, errors naming tensors). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder_internal.h"
#include "test_util.h"

/* ---- helpers ---- */

/* 8-byte little-endian length, then `header` (its own length unless len_override), then
 * data_bytes bytes of data (value i & 0xff). */
static const char *write_st_len(uint64_t len_field, const char *header, size_t data_bytes)
{
    size_t hl = strlen(header);
    size_t size = 8 + hl + data_bytes;
    unsigned char *buf = malloc(size);
    ck_assert_ptr_nonnull(buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(len_field >> (8 * i));
    memcpy(buf + 8, header, hl);
    for (size_t i = 0; i < data_bytes; i++) buf[8 + hl + i] = (unsigned char)i;
    const char *path = test_write_temp(buf, size, ".safetensors");
    free(buf);
    return path;
}

static const char *write_st(const char *header, size_t data_bytes)
{
    return write_st_len(strlen(header), header, data_bytes);
}

static void expect_open_error(const char *path, int code, const char *reason)
{
    safetensors_file f;
    raddino_status st = safetensors_open(path, &f);
    ck_assert_msg(st.code == code, "%s: code %d, want %d (%s)", path, st.code, code, st.message);
    ck_assert_msg(strstr(st.message, path) != NULL, "message does not name the file: %s",
                  st.message);
    ck_assert_msg(strstr(st.message, reason) != NULL, "message lacks \"%s\": %s", reason,
                  st.message);
    ck_assert_msg(strchr(st.message, '\n') == NULL, "message has a newline");
    ck_assert_ptr_null(f.map);
    ck_assert_ptr_null(f.tensors);
    safetensors_close(&f);  /* harmless after a failed open */
}

static void expect_header_error(const char *header, size_t data_bytes, int code,
                                const char *reason)
{
    expect_open_error(write_st(header, data_bytes), code, reason);
}

static void check_shape(const safetensors_tensor *t, int n, const int64_t *shape)
{
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->n_dims, n);
    uint64_t count = 1;
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(t->shape[i], shape[i]);
        count *= (uint64_t)shape[i];
    }
    ck_assert_uint_eq(t->n_elements, count);
    ck_assert_uint_eq(t->end - t->begin, count * 4);
}

/* ---- golden files ---- */

START_TEST(golden_tiny_hf)
{
    safetensors_file f;
    raddino_status st = safetensors_open(test_path("models/tiny/model.safetensors"), &f);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(f.n_tensors, 43);
    for (int i = 1; i < f.n_tensors; i++)
        ck_assert_int_lt(strcmp(f.tensors[i - 1].name, f.tensors[i].name), 0);
    const safetensors_tensor *pos = safetensors_find(&f, "embeddings.position_embeddings");
    check_shape(pos, 3, (int64_t[]){1, 1370, 64});
    ck_assert_int_eq(pos->dtype, ST_F32);
    ck_assert_ptr_eq(pos->data, f.data_section + pos->begin);
    check_shape(safetensors_find(&f, "embeddings.patch_embeddings.projection.weight"), 4,
                (int64_t[]){64, 3, 14, 14});
    check_shape(safetensors_find(&f, "encoder.layer.1.mlp.fc1.weight"), 2, (int64_t[]){256, 64});
    check_shape(safetensors_find(&f, "embeddings.mask_token"), 2, (int64_t[]){1, 64});
    ck_assert_ptr_null(safetensors_find(&f, "encoder.layer.2.norm1.weight"));
    ck_assert_ptr_null(safetensors_find(&f, "__metadata__"));
    ck_assert_ptr_null(safetensors_find(&f, ""));
    ck_assert_str_eq(safetensors_dtype_name(pos->dtype), "F32");
    safetensors_close(&f);
    ck_assert_ptr_null(f.map);
}
END_TEST

START_TEST(golden_tiny_backbone_and_vitb1)
{
    safetensors_file f;
    raddino_status st =
        safetensors_open(test_path("models/tiny/backbone_compatible.safetensors"), &f);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(f.n_tensors, 35);
    check_shape(safetensors_find(&f, "blocks.0.attn.qkv.weight"), 2, (int64_t[]){192, 64});
    check_shape(safetensors_find(&f, "blocks.1.attn.qkv.bias"), 1, (int64_t[]){192});
    check_shape(safetensors_find(&f, "pos_embed"), 3, (int64_t[]){1, 1370, 64});
    safetensors_close(&f);

    st = safetensors_open(test_path("models/vitb1/model.safetensors"), &f);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(f.n_tensors, 25);
    check_shape(safetensors_find(&f, "embeddings.patch_embeddings.projection.weight"), 4,
                (int64_t[]){768, 3, 14, 14});
    check_shape(safetensors_find(&f, "encoder.layer.0.mlp.fc2.weight"), 2,
                (int64_t[]){768, 3072});
    safetensors_close(&f);
}
END_TEST

START_TEST(valid_edge_cases)
{
    /* scalar, empty tensor sharing an offset, metadata, space padding, unused trailing data */
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                    "\"e\":{\"dtype\":\"I64\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]}}      ";
    safetensors_file f;
    raddino_status st = safetensors_open(write_st(h, 16), &f);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(f.n_tensors, 3);
    ck_assert_uint_eq(f.data_size, 16);
    ck_assert_str_eq(f.tensors[0].name, "b");
    const safetensors_tensor *s = safetensors_find(&f, "s");
    ck_assert_int_eq(s->n_dims, 0);
    ck_assert_uint_eq(s->n_elements, 1);
    ck_assert_int_eq(s->data[1], 1);
    ck_assert_uint_eq(safetensors_find(&f, "e")->n_elements, 0);
    ck_assert_int_eq(safetensors_find(&f, "b")->dtype, ST_BF16);
    safetensors_close(&f);
}
END_TEST

/* ---- malformed files ---- */

START_TEST(bad_file_level)
{
    expect_open_error(test_write_temp("", 0, ".safetensors"), RADDINO_ERR_FORMAT, "truncated");
    expect_open_error(test_write_temp("\x10\0\0\0\0", 5, ".safetensors"), RADDINO_ERR_FORMAT,
                      "truncated");
    expect_open_error(write_st_len(100, "{}", 0), RADDINO_ERR_FORMAT, "header length 100");
    expect_open_error(write_st_len((uint64_t)SAFETENSORS_MAX_HEADER + 1, "{}", 0),
                      RADDINO_ERR_TOO_LARGE, "limit");
    expect_open_error(write_st_len(UINT64_MAX, "{}", 0), RADDINO_ERR_TOO_LARGE, "limit");

    const char *missing = test_path("models/tiny/no-such.safetensors");
    safetensors_file f;
    raddino_status st = safetensors_open(missing, &f);
    ck_assert_int_eq(st.code, RADDINO_ERR_IO);
    ck_assert_ptr_nonnull(strstr(st.message, missing));
    ck_assert_ptr_nonnull(strstr(st.message, "No such file"));
    expect_open_error(test_temp_dir(), RADDINO_ERR_IO, "not a regular file");
}
END_TEST

START_TEST(bad_json)
{
    expect_header_error("{\"a\": ", 0, RADDINO_ERR_FORMAT, "not valid JSON");
    expect_header_error("not json", 0, RADDINO_ERR_FORMAT, "not valid JSON");
    expect_header_error("", 0, RADDINO_ERR_FORMAT, "not valid JSON");
    expect_header_error("{} {}", 0, RADDINO_ERR_FORMAT, "after the JSON");
    expect_header_error("[1,2]", 0, RADDINO_ERR_FORMAT, "not a JSON object");
    expect_header_error("{\"t\": 3}", 0, RADDINO_ERR_FORMAT, "tensor t: entry is not an object");
    expect_header_error("{\"__metadata__\": {\"k\": 1}}", 0, RADDINO_ERR_FORMAT, "__metadata__");
    expect_header_error("{\"__metadata__\": []}", 0, RADDINO_ERR_FORMAT, "__metadata__");
}
END_TEST

START_TEST(bad_dtype)
{
    expect_header_error("{\"w.x\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}",
                        1, RADDINO_ERR_FORMAT, "tensor w.x: unknown dtype \"F8_E4M3\"");
    expect_header_error("{\"w.x\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, RADDINO_ERR_FORMAT,
                        "tensor w.x: dtype missing");
    expect_header_error("{\"w.x\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                        RADDINO_ERR_FORMAT, "tensor w.x: dtype missing or not a string");
}
END_TEST

START_TEST(bad_shape)
{
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,12]}}", 12,
                        RADDINO_ERR_FORMAT, "tensor w: shape is not an array");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,12]}}", 12,
                        RADDINO_ERR_FORMAT, "tensor w: shape is not an array");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                        RADDINO_ERR_FORMAT, "tensor w: shape[0] is not a non-negative integer");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,1.5],\"data_offsets\":[0,12]}}",
                        12, RADDINO_ERR_FORMAT, "shape[1] is not a non-negative integer");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
                        RADDINO_ERR_FORMAT, "shape[0]");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8,
                        RADDINO_ERR_FORMAT, "shape[0]");
    expect_header_error(
        "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
        RADDINO_ERR_FORMAT, "9 dimensions");
    /* 2^52 cubed overflows 64 bits */
    expect_header_error("{\"w\":{\"dtype\":\"U8\",\"shape\":[4503599627370496,4503599627370496,"
                        "4503599627370496],\"data_offsets\":[0,1]}}",
                        1, RADDINO_ERR_FORMAT, "overflows");
    /* elements fit, bytes do not */
    expect_header_error("{\"w\":{\"dtype\":\"F64\",\"shape\":[4503599627370496,4096],"
                        "\"data_offsets\":[0,1]}}",
                        1, RADDINO_ERR_FORMAT, "overflows");
}
END_TEST

START_TEST(bad_offsets)
{
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}", 4,
                        RADDINO_ERR_FORMAT, "tensor w: data_offsets end 400 is past the data");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8,
                        RADDINO_ERR_FORMAT, "tensor w: size mismatch");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 8,
                        RADDINO_ERR_FORMAT, "tensor w: data_offsets begin 4 > end 0");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 8,
                        RADDINO_ERR_FORMAT, "tensor w: data_offsets is not [begin, end]");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.5,4.5]}}", 8,
                        RADDINO_ERR_FORMAT, "tensor w: data_offsets");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 8, RADDINO_ERR_FORMAT,
                        "tensor w: data_offsets");
}
END_TEST

START_TEST(bad_overlap_and_duplicates)
{
    expect_header_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                        12, RADDINO_ERR_FORMAT, "tensors a and b overlap");
    /* a small tensor inside a large one, listed first */
    expect_header_error("{\"z\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9,10]},"
                        "\"big\":{\"dtype\":\"U8\",\"shape\":[12],\"data_offsets\":[0,12]},"
                        "\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[12,14]}}",
                        14, RADDINO_ERR_FORMAT, "tensors big and z overlap");
    expect_header_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                        8, RADDINO_ERR_FORMAT, "tensor a appears twice");
    char header[1024], name[300];
    memset(name, 'n', 256);
    name[256] = 0;
    snprintf(header, sizeof header,
             "{\"%s\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", name);
    expect_header_error(header, 1, RADDINO_ERR_FORMAT, "name longer than 255");
    name[255] = 0;  /* 255 bytes is the longest allowed */
    snprintf(header, sizeof header,
             "{\"%s\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", name);
    safetensors_file f;
    raddino_status st = safetensors_open(write_st(header, 1), &f);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_ptr_nonnull(safetensors_find(&f, name));
    safetensors_close(&f);
}
END_TEST

/* ---- synthetic weight files: the golden tensors, re-encoded ---- */

typedef struct {
    char name[SAFETENSORS_MAX_NAME];
    const char *dtype;
    int n_dims;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    unsigned char *bytes;
    size_t size;
} mem_tensor;

typedef struct {
    mem_tensor t[64];
    int n;
} mem_file;

static void mem_load(mem_file *m, const char *path)
{
    safetensors_file f;
    raddino_status st = safetensors_open(path, &f);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_le(f.n_tensors, 64);
    m->n = f.n_tensors;
    for (int i = 0; i < f.n_tensors; i++) {
        const safetensors_tensor *s = &f.tensors[i];
        mem_tensor *t = &m->t[i];
        memcpy(t->name, s->name, sizeof t->name);
        t->dtype = safetensors_dtype_name(s->dtype);
        t->n_dims = s->n_dims;
        memcpy(t->shape, s->shape, sizeof t->shape);
        t->size = s->end - s->begin;
        t->bytes = malloc(t->size ? t->size : 1);
        memcpy(t->bytes, s->data, t->size);
    }
    safetensors_close(&f);
}

static mem_tensor *mem_get(mem_file *m, const char *name)
{
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->t[i].name, name) == 0) return &m->t[i];
    ck_abort_msg("no tensor %s", name);
    return NULL;
}

static void mem_drop(mem_file *m, const char *name)
{
    mem_tensor *t = mem_get(m, name);
    free(t->bytes);
    *t = m->t[--m->n];
}

static void mem_free(mem_file *m)
{
    for (int i = 0; i < m->n; i++) free(m->t[i].bytes);
    m->n = 0;
}

/* F32 -> BF16 by truncation: the expected value after loading is exactly bits & 0xffff0000. */
static void mem_to_bf16(mem_tensor *t)
{
    size_t n = t->size / 4;
    for (size_t i = 0; i < n; i++) {
        t->bytes[2 * i] = t->bytes[4 * i + 2];
        t->bytes[2 * i + 1] = t->bytes[4 * i + 3];
    }
    t->size = 2 * n;
    t->dtype = "BF16";
}

/* Writes the file; the header is padded so that the data section starts at an offset that is
 * `misalign` past a multiple of 8. */
static const char *mem_write(const mem_file *m, int misalign)
{
    char *header = NULL;
    size_t header_size = 0;
    FILE *h = open_memstream(&header, &header_size);
    fputc('{', h);
    size_t offset = 0;
    for (int i = 0; i < m->n; i++) {
        const mem_tensor *t = &m->t[i];
        fprintf(h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", t->name, t->dtype);
        for (int d = 0; d < t->n_dims; d++)
            fprintf(h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        fprintf(h, "],\"data_offsets\":[%zu,%zu]}", offset, offset + t->size);
        offset += t->size;
    }
    fputc('}', h);
    while ((8 + ftell(h)) % 8 != misalign) fputc(' ', h);
    fclose(h);
    size_t total = 8 + header_size + offset;
    unsigned char *buf = malloc(total);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)header_size >> (8 * i));
    memcpy(buf + 8, header, header_size);
    offset = 8 + header_size;
    for (int i = 0; i < m->n; i++) {
        memcpy(buf + offset, m->t[i].bytes, m->t[i].size);
        offset += m->t[i].size;
    }
    const char *path = test_write_temp(buf, total, ".safetensors");
    free(buf);
    free(header);
    return path;
}

/* ---- weights ---- */

static vit_config tiny_config(void)
{
    vit_config cfg;
    raddino_status st = config_load_model(test_path("models/tiny/config.json"), &cfg);
    ck_assert_msg(st.code == 0, "%s", st.message);
    return cfg;
}

typedef struct {
    safetensors_file f;
    vit_weights w;
} loaded;

static raddino_status load(const char *path, const vit_config *cfg, loaded *out)
{
    raddino_status st = safetensors_open(path, &out->f);
    ck_assert_msg(st.code == 0, "%s", st.message);
    st = weights_load(&out->f, cfg, &out->w);
    if (st.code) safetensors_close(&out->f);
    return st;
}

static void unload(loaded *l)
{
    weights_free(&l->w);
    safetensors_close(&l->f);
}

static void expect_load_error(const char *path, const vit_config *cfg, const char *reason)
{
    loaded l;
    raddino_status st = load(path, cfg, &l);
    ck_assert_msg(st.code == RADDINO_ERR_MODEL, "code %d: %s", st.code, st.message);
    ck_assert_msg(strstr(st.message, path) != NULL, "no file name: %s", st.message);
    ck_assert_msg(strstr(st.message, reason) != NULL, "message lacks \"%s\": %s", reason,
                  st.message);
    ck_assert_ptr_null(l.w.layers);
    ck_assert_ptr_null(l.w.owned);
}

static void same(const float *a, const float *b, size_t n, const char *what)
{
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_msg(memcmp(a, b, n * sizeof *a) == 0, "%s differs", what);
}

/* Every pointer of a and b holds the same numbers. */
static void same_weights(const vit_weights *a, const vit_weights *b, const vit_config *c)
{
    size_t D = (size_t)c->hidden, M = (size_t)c->mlp;
    size_t P = (size_t)(c->channels * c->patch * c->patch);
    ck_assert_int_eq(a->table_h, b->table_h);
    ck_assert_int_eq(a->table_w, b->table_w);
    same(a->cls_token, b->cls_token, D, "cls_token");
    same(a->pos_embed, b->pos_embed, (1 + (size_t)(a->table_h * a->table_w)) * D, "pos_embed");
    same(a->patch_w, b->patch_w, D * P, "patch_w");
    same(a->patch_b, b->patch_b, D, "patch_b");
    same(a->norm_w, b->norm_w, D, "norm_w");
    same(a->norm_b, b->norm_b, D, "norm_b");
    for (int i = 0; i < c->layers; i++) {
        const vit_layer_weights *x = &a->layers[i], *y = &b->layers[i];
        same(x->q_w, y->q_w, D * D, "q_w");
        same(x->k_w, y->k_w, D * D, "k_w");
        same(x->v_w, y->v_w, D * D, "v_w");
        same(x->q_b, y->q_b, D, "q_b");
        same(x->k_b, y->k_b, D, "k_b");
        same(x->v_b, y->v_b, D, "v_b");
        same(x->norm1_w, y->norm1_w, D, "norm1_w");
        same(x->norm1_b, y->norm1_b, D, "norm1_b");
        same(x->proj_w, y->proj_w, D * D, "proj_w");
        same(x->proj_b, y->proj_b, D, "proj_b");
        same(x->ls1, y->ls1, D, "ls1");
        same(x->norm2_w, y->norm2_w, D, "norm2_w");
        same(x->norm2_b, y->norm2_b, D, "norm2_b");
        same(x->fc1_w, y->fc1_w, M * D, "fc1_w");
        same(x->fc1_b, y->fc1_b, M, "fc1_b");
        same(x->fc2_w, y->fc2_w, D * M, "fc2_w");
        same(x->fc2_b, y->fc2_b, D, "fc2_b");
        same(x->ls2, y->ls2, D, "ls2");
    }
}

START_TEST(weights_both_layouts_agree)
{
    vit_config cfg = tiny_config();
    loaded hf, bb;
    raddino_status st = load(test_path("models/tiny/model.safetensors"), &cfg, &hf);
    ck_assert_msg(st.code == 0, "%s", st.message);
    st = load(test_path("models/tiny/backbone_compatible.safetensors"), &cfg, &bb);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(hf.w.layout, RADDINO_LAYOUT_HF);
    ck_assert_int_eq(bb.w.layout, RADDINO_LAYOUT_BACKBONE);
    ck_assert_int_eq(hf.w.table_h, 37);
    ck_assert_uint_eq(hf.w.n_parameters, 225792);  /* README's 225,856 less mask_token */
    ck_assert_uint_eq(bb.w.n_parameters, 225792);
    /* aligned F32 is used in place */
    ck_assert_int_eq(hf.w.n_owned, 0);
    const uint8_t *q = (const uint8_t *)hf.w.layers[1].q_w;
    ck_assert(q >= hf.f.data_section && q < hf.f.data_section + hf.f.data_size);
    /* the backbone's q/k/v are row blocks of the fused matrix */
    const safetensors_tensor *qkv = safetensors_find(&bb.f, "blocks.1.attn.qkv.weight");
    ck_assert_ptr_eq(bb.w.layers[1].k_w, (const float *)(const void *)qkv->data + 64 * 64);
    same_weights(&hf.w, &bb.w, &cfg);
    /* and q differs from k: the comparison above is not vacuous */
    ck_assert(memcmp(hf.w.layers[0].q_w, hf.w.layers[0].k_w, 64 * 64 * sizeof(float)) != 0);
    unload(&hf);
    unload(&bb);
}
END_TEST

START_TEST(weights_vitb1)
{
    vit_config cfg;
    raddino_status st = config_load_model(test_path("models/vitb1/config.json"), &cfg);
    ck_assert_msg(st.code == 0, "%s", st.message);
    loaded l;
    st = load(test_path("models/vitb1/model.safetensors"), &cfg, &l);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(l.w.layout, RADDINO_LAYOUT_HF);
    ck_assert_uint_eq(l.w.n_parameters, 8596224);
    ck_assert_ptr_nonnull(l.w.layers[0].fc2_w);
    unload(&l);
}
END_TEST

START_TEST(weights_wrong_model)
{
    vit_config cfg = tiny_config();
    /* tiny224's table is for 16x16 patches; the tiny config says 37x37 */
    expect_load_error(test_path("models/tiny224/model.safetensors"), &cfg,
                      "tensor embeddings.position_embeddings has shape [1,257,64], expected "
                      "[1,1370,64]");
    cfg.layers = 3;
    expect_load_error(test_path("models/tiny/backbone_compatible.safetensors"), &cfg,
                      "missing tensor blocks.2.norm1.weight");
    cfg = tiny_config();
    cfg.mlp = 128;
    expect_load_error(test_path("models/tiny/model.safetensors"), &cfg,
                      "tensor encoder.layer.0.mlp.fc1.weight has shape [256,64], expected [128,64]");
    expect_load_error(write_st("{\"foo\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                               4),
                      &cfg, "no cls_token");
}
END_TEST

START_TEST(weights_missing_and_dtype)
{
    vit_config cfg = tiny_config();
    mem_file m;
    mem_load(&m, test_path("models/tiny/model.safetensors"));
    mem_drop(&m, "encoder.layer.1.mlp.fc2.bias");
    expect_load_error(mem_write(&m, 0), &cfg, "missing tensor encoder.layer.1.mlp.fc2.bias");
    mem_free(&m);

    mem_load(&m, test_path("models/tiny/backbone_compatible.safetensors"));
    mem_tensor *t = mem_get(&m, "norm.bias");
    t->dtype = "I32";  /* same byte size as F32 */
    expect_load_error(mem_write(&m, 0), &cfg,
                      "tensor norm.bias: dtype I32 not supported (want F32, F16 or BF16)");
    mem_free(&m);
}
END_TEST

START_TEST(weights_qkv_bias_false)
{
    vit_config cfg = tiny_config();
    cfg.qkv_bias = false;
    mem_file m;
    mem_load(&m, test_path("models/tiny/model.safetensors"));
    const char *parts[3] = {"query", "key", "value"};
    for (int l = 0; l < 2; l++)
        for (int j = 0; j < 3; j++) {
            char name[128];
            snprintf(name, sizeof name, "encoder.layer.%d.attention.attention.%s.bias", l,
                     parts[j]);
            mem_drop(&m, name);
        }
    loaded w;
    raddino_status st = load(mem_write(&m, 0), &cfg, &w);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_ptr_null(w.w.layers[0].q_b);
    ck_assert_ptr_null(w.w.layers[1].v_b);
    ck_assert_ptr_nonnull(w.w.layers[1].v_w);
    ck_assert_uint_eq(w.w.n_parameters, 225792 - 2 * 3 * 64);
    unload(&w);
    mem_free(&m);
}
END_TEST

/* Unaligned F32 data is copied; BF16 widens exactly. */
START_TEST(weights_bf16_and_unaligned)
{
    vit_config cfg = tiny_config();
    loaded ref;
    raddino_status st = load(test_path("models/tiny/backbone_compatible.safetensors"), &cfg, &ref);
    ck_assert_msg(st.code == 0, "%s", st.message);

    mem_file m;
    mem_load(&m, test_path("models/tiny/backbone_compatible.safetensors"));
    loaded un;
    st = load(mem_write(&m, 2), &cfg, &un);  /* data section 2 bytes off alignment */
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq((uintptr_t)un.f.data_section % 4, 2);
    ck_assert_int_eq(un.w.n_owned, 35 - 1);  /* every tensor but the unused mask_token */
    same_weights(&un.w, &ref.w, &cfg);
    unload(&un);

    for (int i = 0; i < m.n; i++) mem_to_bf16(&m.t[i]);
    loaded bf;
    st = load(mem_write(&m, 0), &cfg, &bf);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_uint_eq(bf.w.n_parameters, 225792);
    const float *got[3] = {bf.w.layers[1].v_w, bf.w.pos_embed, bf.w.layers[0].fc2_b};
    const float *want[3] = {ref.w.layers[1].v_w, ref.w.pos_embed, ref.w.layers[0].fc2_b};
    size_t count[3] = {64 * 64, 1370 * 64, 64};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < count[k]; i++) {
            uint32_t a, b;
            memcpy(&a, &got[k][i], 4);
            memcpy(&b, &want[k][i], 4);
            ck_assert_msg(a == (b & 0xffff0000u), "bf16 %d[%zu]: %08x vs %08x", k, i, a, b);
        }
    }
    unload(&bf);
    unload(&ref);
    mem_free(&m);
}
END_TEST

/* Independent reference: the value a binary16 pattern denotes, from its definition. */
static double f16_value(uint16_t h)
{
    int e = (h >> 10) & 31, mant = h & 1023;
    double v = e == 0 ? ldexp(mant, -24) : e == 31 ? (mant ? NAN : INFINITY)
                                                   : ldexp(1024 + mant, e - 25);
    return (h & 0x8000) ? -v : v;
}

/* Every one of the 65536 half-precision patterns, through the position table. */
START_TEST(weights_f16_every_value)
{
    vit_config cfg = tiny_config();
    mem_file m;
    mem_load(&m, test_path("models/tiny/model.safetensors"));
    mem_tensor *pos = mem_get(&m, "embeddings.position_embeddings");
    size_t n = pos->size / 4;
    ck_assert_uint_ge(n, 65536);
    for (size_t i = 0; i < n; i++) {
        pos->bytes[2 * i] = (unsigned char)(i & 0xff);
        pos->bytes[2 * i + 1] = (unsigned char)((i >> 8) & 0xff);
    }
    pos->size = 2 * n;
    pos->dtype = "F16";
    loaded l;
    raddino_status st = load(mem_write(&m, 0), &cfg, &l);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(l.w.n_owned, 1);
    for (size_t i = 0; i < 65536; i++) {
        float got = l.w.pos_embed[i];
        double want = f16_value((uint16_t)i);
        if (isnan(want)) {
            ck_assert_msg(isnan(got), "f16 %04zx: %g is not NaN", i, (double)got);
        } else {
            ck_assert_msg(got == want && !signbit(got) == !signbit(want),
                          "f16 %04zx: got %a, want %a", i, (double)got, want);
        }
    }
    ck_assert(l.w.pos_embed[0x0001] == ldexpf(1, -24));  /* smallest subnormal */
    ck_assert(l.w.pos_embed[0x3c00] == 1.0f);
    ck_assert(l.w.pos_embed[0x7bff] == 65504.0f);
    unload(&l);
    mem_free(&m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("reader");
    tcase_add_test(tc, golden_tiny_hf);
    tcase_add_test(tc, golden_tiny_backbone_and_vitb1);
    tcase_add_test(tc, valid_edge_cases);
    tcase_add_test(tc, bad_file_level);
    tcase_add_test(tc, bad_json);
    tcase_add_test(tc, bad_dtype);
    tcase_add_test(tc, bad_shape);
    tcase_add_test(tc, bad_offsets);
    tcase_add_test(tc, bad_overlap_and_duplicates);
    suite_add_tcase(s, tc);
    TCase *tw = tcase_create("weights");
    tcase_set_timeout(tw, 120);
    tcase_add_test(tw, weights_both_layouts_agree);
    tcase_add_test(tw, weights_vitb1);
    tcase_add_test(tw, weights_wrong_model);
    tcase_add_test(tw, weights_missing_and_dtype);
    tcase_add_test(tw, weights_qkv_bias_false);
    tcase_add_test(tw, weights_bf16_and_unaligned);
    tcase_add_test(tw, weights_f16_every_value);
    suite_add_tcase(s, tw);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
