/* test_config.c — config.json and preprocessor_config.json: golden values, transformers
 * defaults, refusals with the key named, wrong types. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder_internal.h"
#include "test_util.h"

static raddino_status model(const char *json, vit_config *c)
{
    return config_parse_model(json, strlen(json), "cfg.json", c);
}

static raddino_status prep(const char *json, preprocess_config *p)
{
    return config_parse_preprocess(json, strlen(json), "pre.json", p);
}

static void expect(raddino_status st, int code, const char *name, const char *reason)
{
    ck_assert_msg(st.code == code, "code %d, want %d: %s", st.code, code, st.message);
    ck_assert_msg(strstr(st.message, name) != NULL, "message lacks the file %s: %s", name,
                  st.message);
    ck_assert_msg(strstr(st.message, reason) != NULL, "message lacks \"%s\": %s", reason,
                  st.message);
}

static void expect_model(const char *json, int code, const char *reason)
{
    vit_config c;
    memset(&c, 0x5a, sizeof c);
    vit_config before = c;
    expect(model(json, &c), code, "cfg.json", reason);
    ck_assert_msg(memcmp(&c, &before, sizeof c) == 0, "output written on failure");
}

static void expect_prep(const char *json, int code, const char *reason)
{
    preprocess_config p;
    expect(prep(json, &p), code, "pre.json", reason);
}

/* ---- config.json ---- */

START_TEST(golden_models)
{
    vit_config c;
    raddino_status st = config_load_model(test_path("models/tiny/config.json"), &c);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(c.hidden, 64);
    ck_assert_int_eq(c.layers, 2);
    ck_assert_int_eq(c.heads, 2);
    ck_assert_int_eq(c.mlp, 256);
    ck_assert_int_eq(c.patch, 14);
    ck_assert_int_eq(c.channels, 3);
    ck_assert_int_eq(c.image_size, 518);
    ck_assert(c.layer_norm_eps == 1e-6f);
    ck_assert(c.qkv_bias);
    ck_assert(c.layerscale_value == 1.0);

    st = config_load_model(test_path("models/tiny224/config.json"), &c);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(c.image_size, 224);
    ck_assert_int_eq(c.hidden, 64);

    st = config_load_model(test_path("models/vitb1/config.json"), &c);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(c.hidden, 768);
    ck_assert_int_eq(c.layers, 1);
    ck_assert_int_eq(c.heads, 12);
    ck_assert_int_eq(c.mlp, 3072);
}
END_TEST

START_TEST(model_defaults)
{
    vit_config c;
    raddino_status st = model("{}", &c);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(c.hidden, 768);
    ck_assert_int_eq(c.layers, 12);
    ck_assert_int_eq(c.heads, 12);
    ck_assert_int_eq(c.mlp, 3072);
    ck_assert_int_eq(c.patch, 14);
    ck_assert_int_eq(c.channels, 3);
    ck_assert_int_eq(c.image_size, 224);
    ck_assert(c.layer_norm_eps == 1e-12f);  /* transformers' default, not RAD-DINO's 1e-6 */
    ck_assert(c.qkv_bias);
    ck_assert(c.layerscale_value == 1.0);

    /* mlp = int(hidden * mlp_ratio); the ratio may be fractional */
    st = model("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"mlp_ratio\": 2.5,"
               " \"model_type\": \"dinov2\", \"qkv_bias\": false, \"num_register_tokens\": 0,"
               " \"use_swiglu_ffn\": false, \"hidden_act\": \"gelu\", \"image_size\": 20}",
               &c);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(c.mlp, 160);
    ck_assert_int_eq(c.heads, 4);
    ck_assert(!c.qkv_bias);
    ck_assert_int_eq(c.image_size, 20);  /* not a multiple of the patch: the grid is floor */
    st = model("{\"hidden_size\": 10, \"num_attention_heads\": 1, \"mlp_ratio\": 0.35}", &c);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(c.mlp, 3);  /* int(3.5) truncates */
}
END_TEST

START_TEST(model_refused)
{
    expect_model("{\"use_swiglu_ffn\": true}", RADDINO_ERR_UNSUPPORTED, "use_swiglu_ffn");
    expect_model("{\"num_register_tokens\": 4}", RADDINO_ERR_UNSUPPORTED, "num_register_tokens");
    expect_model("{\"model_type\": \"dinov2_with_registers\"}", RADDINO_ERR_UNSUPPORTED,
                 "register");
    expect_model("{\"model_type\": \"vit\"}", RADDINO_ERR_UNSUPPORTED, "model_type");
    expect_model("{\"hidden_act\": \"gelu_new\"}", RADDINO_ERR_UNSUPPORTED, "hidden_act");
    expect_model("{\"hidden_act\": \"quick_gelu\"}", RADDINO_ERR_UNSUPPORTED, "hidden_act");
    expect_model("{\"num_channels\": 1}", RADDINO_ERR_UNSUPPORTED, "num_channels");
    expect_model("{\"hidden_size\": 100, \"num_attention_heads\": 3}", RADDINO_ERR_UNSUPPORTED,
                 "num_attention_heads");
    expect_model("{\"hidden_size\": 0}", RADDINO_ERR_UNSUPPORTED, "hidden_size");
    expect_model("{\"num_hidden_layers\": -1}", RADDINO_ERR_UNSUPPORTED, "num_hidden_layers");
    expect_model("{\"num_attention_heads\": 0}", RADDINO_ERR_UNSUPPORTED, "num_attention_heads");
    expect_model("{\"patch_size\": 0}", RADDINO_ERR_UNSUPPORTED, "patch_size");
    expect_model("{\"image_size\": 10}", RADDINO_ERR_UNSUPPORTED, "image_size");
    expect_model("{\"mlp_ratio\": 0}", RADDINO_ERR_UNSUPPORTED, "mlp_ratio");
    expect_model("{\"hidden_size\": 1000000}", RADDINO_ERR_TOO_LARGE, "hidden_size");
    expect_model("{\"num_hidden_layers\": 100000}", RADDINO_ERR_TOO_LARGE, "num_hidden_layers");
    expect_model("{\"image_size\": 100000}", RADDINO_ERR_TOO_LARGE, "image_size");
    expect_model("{\"mlp_ratio\": 1e9}", RADDINO_ERR_TOO_LARGE, "mlp_ratio");
    expect_model("{\"layer_norm_eps\": -1}", RADDINO_ERR_FORMAT, "layer_norm_eps");
}
END_TEST

START_TEST(model_wrong_types)
{
    expect_model("{\"hidden_size\": \"768\"}", RADDINO_ERR_FORMAT, "hidden_size");
    expect_model("{\"hidden_size\": 768.5}", RADDINO_ERR_FORMAT, "hidden_size");
    expect_model("{\"hidden_size\": 1e20}", RADDINO_ERR_FORMAT, "hidden_size");
    expect_model("{\"num_hidden_layers\": null}", RADDINO_ERR_FORMAT, "num_hidden_layers");
    expect_model("{\"qkv_bias\": \"yes\"}", RADDINO_ERR_FORMAT, "qkv_bias");
    expect_model("{\"use_swiglu_ffn\": 1}", RADDINO_ERR_FORMAT, "use_swiglu_ffn");
    expect_model("{\"layer_norm_eps\": \"1e-6\"}", RADDINO_ERR_FORMAT, "layer_norm_eps");
    expect_model("{\"mlp_ratio\": [4]}", RADDINO_ERR_FORMAT, "mlp_ratio");
    expect_model("{\"hidden_act\": 3}", RADDINO_ERR_FORMAT, "hidden_act");
    expect_model("{\"model_type\": false}", RADDINO_ERR_FORMAT, "model_type");
}
END_TEST

START_TEST(bad_json)
{
    expect_model("{\"hidden_size\": }", RADDINO_ERR_FORMAT, "not valid JSON");
    expect_model("", RADDINO_ERR_FORMAT, "not valid JSON");
    expect_model("{} x", RADDINO_ERR_FORMAT, "not valid JSON");
    expect_model("[1]", RADDINO_ERR_FORMAT, "not a JSON object");
    expect_model("768", RADDINO_ERR_FORMAT, "not a JSON object");
    expect_prep("{\"size\": {\"shortest_edge\": 5}", RADDINO_ERR_FORMAT, "not valid JSON");
    expect_prep("\"x\"", RADDINO_ERR_FORMAT, "not a JSON object");
    /* only `len` bytes are parsed: the text after them is not seen */
    vit_config c;
    const char *text = "{\"hidden_size\": 64, \"num_attention_heads\": 2}garbage";
    raddino_status st = config_parse_model(text, strlen(text) - 7, "cfg.json", &c);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(c.hidden, 64);
}
END_TEST

START_TEST(files)
{
    const char *missing = test_path("models/tiny/nope.json");
    vit_config c;
    preprocess_config p;
    expect(config_load_model(missing, &c), RADDINO_ERR_IO, missing, "cannot open: No such file");
    expect(config_load_preprocess(missing, &p), RADDINO_ERR_IO, missing, "cannot open");
    const char *dir = test_temp_dir();
    expect(config_load_model(dir, &c), RADDINO_ERR_IO, dir, "not a regular file");
    const char *bad = test_write_temp("{\"hidden_size\": 64,", 19, ".json");
    expect(config_load_model(bad, &c), RADDINO_ERR_FORMAT, bad, "not valid JSON");
    const char *swiglu = test_write_temp("{\"use_swiglu_ffn\": true}", 24, ".json");
    expect(config_load_model(swiglu, &c), RADDINO_ERR_UNSUPPORTED, swiglu, "use_swiglu_ffn");
    /* The size limit (1 MiB), from the file and from a buffer: at the limit is read. */
    size_t big_size = (1u << 20) + 1;
    char *big = malloc(big_size);
    memset(big, ' ', big_size);
    big[0] = '{';
    big[big_size - 1] = '}';
    const char *big_path = test_write_temp(big, big_size, ".json");
    expect(config_load_preprocess(big_path, &p), RADDINO_ERR_TOO_LARGE, big_path, "too large");
    expect(config_parse_model(big, big_size, "big.json", &c), RADDINO_ERR_TOO_LARGE,
           "big.json", "limit 1048576");
    big[big_size - 2] = '}';
    const char *limit_path = test_write_temp(big, big_size - 1, ".json");
    raddino_status st = config_load_preprocess(limit_path, &p);
    ck_assert_msg(!st.code, "%s", st.message);
    free(big);
}
END_TEST

/* ---- preprocessor_config.json ---- */

START_TEST(golden_preprocess)
{
    preprocess_config p;
    raddino_status st =
        config_load_preprocess(test_path("models/tiny/preprocessor_config.json"), &p);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert(p.do_convert_rgb && p.do_resize && p.do_center_crop && p.do_rescale &&
              p.do_normalize);
    ck_assert_int_eq(p.resize_shortest_edge, 518);
    ck_assert_int_eq(p.resize_height, 0);
    ck_assert_int_eq(p.resize_width, 0);
    ck_assert_int_eq(p.resample, 3);
    ck_assert_int_eq(p.crop_height, 518);
    ck_assert_int_eq(p.crop_width, 518);
    ck_assert(p.rescale_factor == 1.0 / 255.0);
    for (int i = 0; i < 3; i++) {
        ck_assert(p.mean[i] == 0.5307f);
        ck_assert(p.std[i] == 0.2583f);
    }
}
END_TEST

START_TEST(preprocess_defaults)
{
    preprocess_config p;
    raddino_status st = prep("{}", &p);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert(p.do_convert_rgb && p.do_resize && p.do_center_crop && p.do_rescale &&
              p.do_normalize);
    ck_assert_int_eq(p.resize_shortest_edge, 224);
    ck_assert_int_eq(p.resample, 3);
    ck_assert_int_eq(p.crop_height, 224);
    ck_assert_int_eq(p.crop_width, 224);
    ck_assert(p.rescale_factor == 1.0 / 255.0);
    ck_assert(p.mean[0] == 0.48145466f && p.mean[1] == 0.4578275f && p.mean[2] == 0.40821073f);
    ck_assert(p.std[0] == 0.26862954f && p.std[1] == 0.26130258f && p.std[2] == 0.27577711f);
}
END_TEST

START_TEST(preprocess_forms)
{
    preprocess_config p;
    raddino_status st = prep("{\"size\": {\"height\": 300, \"width\": 400}, \"crop_size\": 200,"
                             " \"image_mean\": 0.5, \"image_std\": [0.1, 0.2, 0.3],"
                             " \"do_center_crop\": false, \"do_rescale\": false,"
                             " \"rescale_factor\": 0.5, \"do_convert_rgb\": false}",
                             &p);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(p.resize_shortest_edge, 0);
    ck_assert_int_eq(p.resize_height, 300);
    ck_assert_int_eq(p.resize_width, 400);
    ck_assert_int_eq(p.crop_height, 200);
    ck_assert_int_eq(p.crop_width, 200);
    ck_assert(!p.do_center_crop && !p.do_rescale && !p.do_convert_rgb && p.do_resize);
    ck_assert(p.rescale_factor == 0.5);
    for (int i = 0; i < 3; i++) ck_assert(p.mean[i] == 0.5f);
    ck_assert(p.std[0] == 0.1f && p.std[1] == 0.2f && p.std[2] == 0.3f);

    st = prep("{\"size\": 256, \"crop_size\": {\"height\": 100, \"width\": 120}}", &p);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(p.resize_shortest_edge, 256);
    ck_assert_int_eq(p.crop_height, 100);
    ck_assert_int_eq(p.crop_width, 120);

    /* BitImageProcessor.resize ignores longest_edge next to shortest_edge */
    st = prep("{\"size\": {\"shortest_edge\": 300, \"longest_edge\": 1000},"
              " \"crop_size\": [30, 40]}",
              &p);
    ck_assert_msg(st.code == 0, "%s", st.message);
    ck_assert_int_eq(p.resize_shortest_edge, 300);
    ck_assert_int_eq(p.crop_height, 30);
    ck_assert_int_eq(p.crop_width, 40);
}
END_TEST

START_TEST(preprocess_refused)
{
    expect_prep("{\"resample\": 2}", RADDINO_ERR_UNSUPPORTED, "bicubic");
    expect_prep("{\"resample\": 0}", RADDINO_ERR_UNSUPPORTED, "resample");
    expect_prep("{\"resample\": \"bicubic\"}", RADDINO_ERR_FORMAT, "resample");
    expect_prep("{\"image_std\": 0}", RADDINO_ERR_FORMAT, "image_std");
    expect_prep("{\"image_std\": [1, 0, 1]}", RADDINO_ERR_FORMAT, "image_std[1]");
    expect_prep("{\"image_mean\": [1, 2]}", RADDINO_ERR_FORMAT, "image_mean");
    expect_prep("{\"image_mean\": [1, 2, \"3\"]}", RADDINO_ERR_FORMAT, "image_mean[2]");
    expect_prep("{\"image_mean\": \"0.5\"}", RADDINO_ERR_FORMAT, "image_mean");
    expect_prep("{\"image_std\": [1, 1, 1e300]}", RADDINO_ERR_FORMAT, "image_std[2]");
    expect_prep("{\"size\": {\"foo\": 1}}", RADDINO_ERR_FORMAT, "size");
    expect_prep("{\"size\": {\"height\": 10}}", RADDINO_ERR_FORMAT, "size");
    expect_prep("{\"size\": \"224\"}", RADDINO_ERR_FORMAT, "size");
    expect_prep("{\"size\": {\"shortest_edge\": 0}}", RADDINO_ERR_FORMAT, "size.shortest_edge");
    expect_prep("{\"size\": {\"shortest_edge\": 22.5}}", RADDINO_ERR_FORMAT,
                "size.shortest_edge");
    expect_prep("{\"size\": 1000000}", RADDINO_ERR_TOO_LARGE, "size");
    expect_prep("{\"crop_size\": {\"height\": -1, \"width\": 5}}", RADDINO_ERR_FORMAT,
                "crop_size.height");
    expect_prep("{\"crop_size\": [1, 2, 3]}", RADDINO_ERR_FORMAT, "crop_size");
    expect_prep("{\"crop_size\": true}", RADDINO_ERR_FORMAT, "crop_size");
    expect_prep("{\"do_resize\": \"true\"}", RADDINO_ERR_FORMAT, "do_resize");
    expect_prep("{\"do_normalize\": null}", RADDINO_ERR_FORMAT, "do_normalize");
    expect_prep("{\"rescale_factor\": \"1/255\"}", RADDINO_ERR_FORMAT, "rescale_factor");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tm = tcase_create("model");
    tcase_add_test(tm, golden_models);
    tcase_add_test(tm, model_defaults);
    tcase_add_test(tm, model_refused);
    tcase_add_test(tm, model_wrong_types);
    tcase_add_test(tm, bad_json);
    tcase_add_test(tm, files);
    suite_add_tcase(s, tm);
    TCase *tp = tcase_create("preprocess");
    tcase_add_test(tp, golden_preprocess);
    tcase_add_test(tp, preprocess_defaults);
    tcase_add_test(tp, preprocess_forms);
    tcase_add_test(tp, preprocess_refused);
    suite_add_tcase(s, tp);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
