/* build_info.c — what this libraddino is (version, commit) and what it runs on (library
 * versions, the OpenBLAS variant loaded, the matrix kernel this CPU gets). */
#include "raddino.h"

#include "encoder_internal.h"   /* gemm_cpu_has_avx512*: the test the encoder chooses by */
#include "raddino_git.h"        /* RADDINO_GIT_COMMIT, written at build time (cmake/git.cmake) */

#include <cblas.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <gdcmConfigure.h>      /* GDCM_VERSION: a plain C header of #defines */
#include <jpeglib.h>
#include <png.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

#ifndef RADDINO_VERSION_STRING
#error "RADDINO_VERSION_STRING is set by CMake (project version)"
#endif
#ifndef RADDINO_FAISS_VERSION
#define RADDINO_FAISS_VERSION "unknown"
#endif

/* openblas_get_parallel(): 0 serial, 1 pthreads, 2 OpenMP (OpenBLAS's own numbering). */
static const char *openblas_parallel_name(int p)
{
    switch (p) {
    case 0: return "serial";
    case 1: return "pthread";
    case 2: return "openmp";
    default: return "unknown";
    }
}

void raddino_get_build_info(raddino_build_info *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    out->version = RADDINO_VERSION_STRING;
    out->git_commit = RADDINO_GIT_COMMIT[0] ? RADDINO_GIT_COMMIT : "unknown";
    out->faiss = RADDINO_FAISS_VERSION;
    out->gdcm = GDCM_VERSION;
    const char *config = openblas_get_config();
    out->openblas = config ? config : "unknown";
    out->openblas_parallel = openblas_parallel_name(openblas_get_parallel());
    out->sqlite = sqlite3_libversion();
#ifdef LIBJPEG_TURBO_VERSION
    out->libjpeg_turbo = STRINGIFY(LIBJPEG_TURBO_VERSION);
#else
    out->libjpeg_turbo = "none (libjpeg " STRINGIFY(JPEG_LIB_VERSION) ")";
#endif
    out->libpng = png_get_libpng_ver(NULL);
    out->cjson = cJSON_Version();
    const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
    out->curl = curl && curl->version ? curl->version : "unknown";
    bool avx512 = gemm_cpu_has_avx512(), bf16 = gemm_cpu_has_avx512_bf16();
    out->kernel = bf16 ? "avx512-bf16" : avx512 ? "avx512" : "openblas";
    out->kernel_fp32 = avx512 ? "avx512-fp32" : "openblas-fp32";
    out->kernel_bf16 = bf16 ? "avx512-bf16" : out->kernel_fp32;
}

raddino_status raddino_build_info_json(char *out, size_t cap)
{
    if (!out || !cap) return status_error(RADDINO_ERR_ARGUMENT, "raddino_build_info_json: NULL");
    raddino_build_info b;
    raddino_get_build_info(&b);
    cJSON *root = cJSON_CreateObject();
    cJSON *blas = cJSON_CreateObject();
    cJSON *kernel = cJSON_CreateObject();
    bool ok = root && blas && kernel;
    ok = ok && cJSON_AddStringToObject(root, "version", b.version);
    ok = ok && cJSON_AddStringToObject(root, "git_commit", b.git_commit);
    ok = ok && cJSON_AddStringToObject(root, "faiss", b.faiss);
    ok = ok && cJSON_AddStringToObject(root, "gdcm", b.gdcm);
    ok = ok && cJSON_AddStringToObject(blas, "config", b.openblas);
    ok = ok && cJSON_AddStringToObject(blas, "parallel", b.openblas_parallel);
    if (ok) {
        cJSON_AddItemToObject(root, "openblas", blas);
        blas = NULL;
    }
    ok = ok && cJSON_AddStringToObject(root, "sqlite", b.sqlite);
    ok = ok && cJSON_AddStringToObject(root, "libjpeg_turbo", b.libjpeg_turbo);
    ok = ok && cJSON_AddStringToObject(root, "libpng", b.libpng);
    ok = ok && cJSON_AddStringToObject(root, "cjson", b.cjson);
    ok = ok && cJSON_AddStringToObject(root, "curl", b.curl);
    ok = ok && cJSON_AddStringToObject(kernel, "best", b.kernel);
    ok = ok && cJSON_AddStringToObject(kernel, "fp32", b.kernel_fp32);
    ok = ok && cJSON_AddStringToObject(kernel, "bf16", b.kernel_bf16);
    if (ok) {
        cJSON_AddItemToObject(root, "kernel", kernel);
        kernel = NULL;
    }
    raddino_status st = status_ok();
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    if (!text)
        st = status_error(RADDINO_ERR_NOMEM, "build information: out of memory");
    else if (strlen(text) >= cap)
        st = status_error(RADDINO_ERR_ARGUMENT, "build information: %zu bytes do not fit in %zu",
                          strlen(text) + 1, cap);
    else
        memcpy(out, text, strlen(text) + 1);
    if (st.code) out[0] = 0;
    cJSON_free(text);
    cJSON_Delete(root);
    cJSON_Delete(blas);
    cJSON_Delete(kernel);
    return st;
}
