/* ladspa_run.c - a minimal LADSPA host for tests: run one plugin over raw float32 audio in
 * blocks of a chosen size (hosts call run() with any count; applyplugin and sox use their own).
 *
 *   ladspa-run PLUGIN.so IN.f32 OUT.f32 BLOCK [CONTROL...]
 *
 * Loads descriptor 0, instantiates it at 16000 Hz (TDN_RATE in the environment: another
 * rate), sets the input control ports in order to the CONTROL values (missing ones: the
 * port's default hint: minimum, maximum, 0 or 1), activates it and runs the whole input in
 * blocks of BLOCK samples (the last one shorter), in place when INPLACE=1 is set. Prints
 * "latency N" with the value of an output control port named "latency" after the last run.
 * Built without sanitizers (COUNT_ALLOC), it also prints "allocations_in_run N": calls of
 * malloc, calloc, realloc, free, aligned_alloc and posix_memalign made while run() executes
 * (this executable's definitions interpose on the plugin's), which a real-time plugin keeps at
 * 0, and "allocations_outside_run N" to show the counter works (instantiate allocates).
 * Exit status: 0, 1 on I/O errors, 3 when the plugin refuses to instantiate.
 */
#include <dlfcn.h>
#include <ladspa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef COUNT_ALLOC
/* glibc's own entry points, under the names it exports for exactly this kind of wrapper */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
static int in_run;
static unsigned long allocs_in_run, allocs_outside;
static void count(void) { if (in_run) allocs_in_run++; else allocs_outside++; }
void *malloc(size_t n) { count(); return __libc_malloc(n); }
void *calloc(size_t n, size_t m) { count(); return __libc_calloc(n, m); }
void *realloc(void *p, size_t n) { count(); return __libc_realloc(p, n); }
void free(void *p) { if (p) count(); __libc_free(p); }
void *aligned_alloc(size_t a, size_t n) { count(); return __libc_memalign(a, n); }
int posix_memalign(void **p, size_t a, size_t n)
{
    count();
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12; /* ENOMEM */
}
#define RUN_BEGIN() (in_run = 1)
#define RUN_END() (in_run = 0)
#else
#define RUN_BEGIN() ((void)0)
#define RUN_END() ((void)0)
#endif

static LADSPA_Data default_of(const LADSPA_PortRangeHint *h)
{
    switch (h->HintDescriptor & LADSPA_HINT_DEFAULT_MASK) {
    case LADSPA_HINT_DEFAULT_MINIMUM: return h->LowerBound;
    case LADSPA_HINT_DEFAULT_MAXIMUM: return h->UpperBound;
    case LADSPA_HINT_DEFAULT_1: return 1.0f;
    default: return 0.0f;
    }
}

int main(int argc, char **argv)
{
    void *so;
    LADSPA_Descriptor_Function entry;
    const LADSPA_Descriptor *d;
    LADSPA_Handle h;
    LADSPA_Data controls[16], latency = -1.0f, *in, *out;
    FILE *f;
    long n, block;
    unsigned long rate = getenv("TDN_RATE") ? strtoul(getenv("TDN_RATE"), NULL, 10) : 16000ul;
    int next_control = 5, inplace = getenv("INPLACE") && strcmp(getenv("INPLACE"), "1") == 0;
    if (argc < 5 || (block = atol(argv[4])) <= 0) {
        fprintf(stderr, "usage: ladspa-run PLUGIN.so IN.f32 OUT.f32 BLOCK [CONTROL...]\n");
        return 2;
    }
    so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!so) { fprintf(stderr, "ladspa-run: %s\n", dlerror()); return 1; }
    {   /* dlsym returns an object pointer; POSIX guarantees it converts, ISO C has no cast */
        void *sym = dlsym(so, "ladspa_descriptor");
        if (sizeof sym != sizeof entry) { fprintf(stderr, "ladspa-run: odd pointers\n"); return 1; }
        memcpy(&entry, &sym, sizeof entry);
    }
    if (!entry || !(d = entry(0)) || d->PortCount > 16) { fprintf(stderr, "ladspa-run: no descriptor\n"); return 1; }
    f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 1; }
    fseek(f, 0, SEEK_END);
    n = ftell(f) / (long)sizeof(float);
    fseek(f, 0, SEEK_SET);
    in = malloc((size_t)(n ? n : 1) * sizeof(float));
    out = inplace ? in : malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!in || !out || fread(in, sizeof(float), (size_t)n, f) != (size_t)n) { fprintf(stderr, "ladspa-run: read failed\n"); return 1; }
    fclose(f);
    h = d->instantiate(d, rate);
    if (!h) { fprintf(stderr, "ladspa-run: %s refused to instantiate at %lu Hz\n", d->Label, rate); return 3; }
    for (unsigned long p = 0; p < d->PortCount; p++) {
        LADSPA_PortDescriptor k = d->PortDescriptors[p];
        if (!LADSPA_IS_PORT_CONTROL(k)) continue;
        if (LADSPA_IS_PORT_INPUT(k))
            controls[p] = next_control < argc ? (LADSPA_Data)atof(argv[next_control++]) : default_of(&d->PortRangeHints[p]);
        d->connect_port(h, p, LADSPA_IS_PORT_INPUT(k) ? &controls[p] : strcmp(d->PortNames[p], "latency") == 0 ? &latency : &controls[p]);
    }
    if (d->activate) d->activate(h);
    for (long i = 0; i < n; i += block) {
        long m = n - i < block ? n - i : block;
        for (unsigned long p = 0; p < d->PortCount; p++) {
            LADSPA_PortDescriptor k = d->PortDescriptors[p];
            if (LADSPA_IS_PORT_AUDIO(k)) d->connect_port(h, p, (LADSPA_IS_PORT_INPUT(k) ? in : out) + i);
        }
        RUN_BEGIN();
        d->run(h, (unsigned long)m);
        RUN_END();
    }
    if (d->deactivate) d->deactivate(h);
    d->cleanup(h);
    f = fopen(argv[3], "wb");
    if (!f || fwrite(out, sizeof(float), (size_t)n, f) != (size_t)n || fclose(f) != 0) { perror(argv[3]); return 1; }
    printf("latency %g\n", (double)latency);
#ifdef COUNT_ALLOC
    printf("allocations_in_run %lu\nallocations_outside_run %lu\n", allocs_in_run, allocs_outside);
#endif
    if (out != in) free(out);
    free(in);
    dlclose(so);
    return 0;
}
