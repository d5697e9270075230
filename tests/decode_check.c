/* decode_check.c — decodes every file named on the command line (images of any format raddino
 * reads, DICOM included) and writes each decoded image to /dev/null, for valgrind's memcheck
 * (ctest valgrind_decode): memcheck reports a write() whose buffer holds a byte nobody wrote,
 * so an output pixel that depends on uninitialised memory fails the test, whatever the file.
 * Refusals are printed and are not failures (the inputs include files that must be refused);
 * the exit status is 0 unless a file could not be handled at all. */
#include "raddino_encoder.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int sink = open("/dev/null", O_WRONLY);
    if (sink < 0) {
        perror("/dev/null");
        return 1;
    }
    int rc = 0, ok = 0, refused = 0;
    for (int i = 1; i < argc; i++) {
        raddino_image img;
        raddino_status st = raddino_image_load(argv[i], 4000000, &img);
        if (st.code) {
            printf("refused %s\n", st.message);
            refused++;
            continue;
        }
        size_t n = (size_t)img.width * (size_t)img.height * 3;
        if (write_all(sink, img.rgb, n) != 0) {
            fprintf(stderr, "decode_check: %s: cannot write the pixels\n", argv[i]);
            rc = 1;
        }
        printf("ok %s %dx%d\n", argv[i], img.width, img.height);
        ok++;
        raddino_image_free(&img);
    }
    close(sink);
    printf("decode_check: %d decoded, %d refused\n", ok, refused);
    return rc;
}
