/* cmd_version.c — raddino --version [--json]: this build and what it runs on (libraddino's
 * build information, raddino_get_build_info, plus libmicrohttpd, which only the program uses). */
#include "cli.h"
#include "raddino.h"

#include <microhttpd.h>
#include <string.h>

static const char version_usage[] =
    "usage: raddino --version [--json]\n"
    "\n"
    "Prints raddino's version and git commit, the versions of the libraries it uses (FAISS,\n"
    "GDCM, OpenBLAS and the variant loaded: openmp, pthread or serial; SQLite, libjpeg-turbo,\n"
    "libpng, cJSON, libcurl, libmicrohttpd) and the matrix kernel chosen for this CPU\n"
    "(avx512-bf16, avx512 or openblas).\n"
    "\n"
    "options:\n"
    "  --json             one JSON object instead of text\n";

int cmd_version(int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(version_usage, stdout);
            return EXIT_OK;
        } else {
            cli_error("--version: unexpected argument '%s' (see raddino --version --help)",
                      argv[i]);
            return EXIT_USAGE;
        }
    }
    const char *mhd = MHD_get_version();
    if (json) {
        char text[4096];
        raddino_status st = raddino_build_info_json(text, sizeof text);
        if (st.code) {
            cli_status_error(&st);
            return EXIT_INPUT_FAILED;
        }
        size_t n = strlen(text);   /* a JSON object: "{...}"; the program's own library added */
        if (n < 2 || text[n - 1] != '}') return EXIT_INPUT_FAILED;
        text[n - 1] = 0;
        fputs(text, stdout);
        fputs(",\"libmicrohttpd\":", stdout);
        cli_json_string(stdout, mhd ? mhd : "unknown");
        fputs("}\n", stdout);
        return EXIT_OK;
    }
    raddino_build_info b;
    raddino_get_build_info(&b);
    printf("raddino %s (commit %s)\n", b.version, b.git_commit);
    printf("kernel:         %s on this CPU (fp32: %s, bf16: %s)\n", b.kernel, b.kernel_fp32,
           b.kernel_bf16);
    printf("OpenBLAS:       %s (%s)\n", b.openblas, b.openblas_parallel);
    printf("FAISS:          %s (compiled in)\n", b.faiss);
    printf("GDCM:           %s\n", b.gdcm);
    printf("SQLite:         %s\n", b.sqlite);
    printf("libjpeg-turbo:  %s\n", b.libjpeg_turbo);
    printf("libpng:         %s\n", b.libpng);
    printf("cJSON:          %s\n", b.cjson);
    printf("libcurl:        %s\n", b.curl);
    printf("libmicrohttpd:  %s\n", mhd ? mhd : "unknown");
    return EXIT_OK;
}
