/* fuzz_config.c — config.json and preprocessor_config.json: the same bytes go to both parsers
 * (they share the JSON reading and the typed getters). The input is passed as it is, not
 * NUL-terminated: the parsers take (text, length) and must not read past it. */
#include "encoder_internal.h"
#include "fuzz.h"

#include <math.h>

static int check_model(const vit_config *c)
{
    FUZZ_REQUIRE(c->hidden > 0 && c->layers > 0 && c->heads > 0 && c->patch > 0);
    FUZZ_REQUIRE(c->hidden % c->heads == 0);
    FUZZ_REQUIRE(c->image_size >= c->patch && c->channels == 3);
    FUZZ_REQUIRE(c->mlp > 0 && c->layer_norm_eps >= 0 && isfinite(c->layer_norm_eps));
    return 0;
}

static int check_preprocess(const preprocess_config *p)
{
    FUZZ_REQUIRE(p->resample == 3);
    FUZZ_REQUIRE(p->resize_shortest_edge > 0 || (p->resize_height > 0 && p->resize_width > 0));
    FUZZ_REQUIRE(p->crop_height > 0 && p->crop_width > 0);
    FUZZ_REQUIRE(isfinite(p->rescale_factor));
    for (int i = 0; i < 3; i++)
        FUZZ_REQUIRE(isfinite(p->mean[i]) && isfinite(p->std[i]) && p->std[i] != 0);
    return 0;
}

int fuzz_config(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    vit_config c;
    raddino_status st = config_parse_model(text, size, FUZZ_NAME, &c);
    int rc = st.code ? fuzz_check_error(&st) : check_model(&c);
    preprocess_config p;
    st = config_parse_preprocess(text, size, FUZZ_NAME, &p);
    int rc2 = st.code ? fuzz_check_error(&st) : check_preprocess(&p);
    return rc ? rc : rc2;
}

FUZZ_ENTRY(fuzz_config)
