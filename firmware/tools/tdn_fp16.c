/* tdn_fp16.c - the software binary16 conversions over a file, for tests against numpy.
 *
 *   tdn-fp16 narrow IN.f32 OUT.u16x2   per binary32 input: fp16_from_f32 bits, fp16_sat bits
 *   tdn-fp16 widen OUT.f32             fp16_to_f32 of the 65536 binary16 patterns, in order
 */
#include <stdio.h>
#include <string.h>

#include "tdn/fp16.h"

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "narrow") == 0) {
        FILE *fi = fopen(argv[2], "rb"), *fo = fopen(argv[3], "wb");
        float v[1024];
        size_t n;
        if (!fi || !fo) { perror("tdn-fp16"); return 1; }
        while ((n = fread(v, 4, 1024, fi)) > 0) {
            uint16_t out[2048];
            for (size_t i = 0; i < n; i++) { out[2 * i] = fp16_from_f32(v[i]); out[2 * i + 1] = fp16_sat(v[i]); }
            fwrite(out, 2, 2 * n, fo);
        }
        fclose(fi);
        return fclose(fo) == 0 ? 0 : 1;
    }
    if (argc == 3 && strcmp(argv[1], "widen") == 0) {
        FILE *fo = fopen(argv[2], "wb");
        if (!fo) { perror("tdn-fp16"); return 1; }
        for (uint32_t h = 0; h < 65536u; h++) {
            float f = fp16_to_f32((uint16_t)h);
            fwrite(&f, 4, 1, fo);
        }
        return fclose(fo) == 0 ? 0 : 1;
    }
    fprintf(stderr, "usage: tdn-fp16 narrow IN.f32 OUT | tdn-fp16 widen OUT\n");
    return 2;
}
