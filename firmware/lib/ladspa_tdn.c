/* ladspa_tdn.c - libtdn as a LADSPA plugin: mono in, mono out, 16 kHz, the model compiled in.
 *
 * Ports: 0 "Input" and 1 "Output" (audio); 2 "Attenuation limit (dB)" (0..100, default 100:
 * 100 means no limit, the network's mask as is; below it the mask is floored as by the
 * Python pipeline's --atten-lim-db); 3 "Bypass" (toggle: output = input, delayed by the same
 * latency); 4 "latency" (output, samples: what hosts read to align the output).
 *
 * Any block size: samples are queued into 100-sample hops. Sample n of the output is sample
 * n - 400 of the input, enhanced: 300 of the STFT (libtdn.h) and 100 of queueing (a hop's
 * output is played out while the next hop fills). run() only copies samples and calls
 * tdn_lib_process: no allocation, no lock, no system call. Other sample rates are refused:
 * instantiate() returns NULL, which hosts report, and says why on stderr.
 */
#include <ladspa.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libtdn.h"
#include "plugin_model.h"

#define PLUGIN_LATENCY (TDN_LIB_LATENCY + TDN_LIB_HOP)
#define ATTEN_OFF_DB 100.0f /* the port's maximum: no limit */

enum { P_IN, P_OUT, P_ATTEN, P_BYPASS, P_LATENCY, P_COUNT };

typedef struct {
    tdn_lib *lib;
    LADSPA_Data *port[P_COUNT];
    float in_hop[TDN_LIB_HOP];   /* the hop being filled */
    float out_hop[TDN_LIB_HOP];  /* the output of the last whole hop, being played out */
    unsigned fill;               /* samples in in_hop = the next out_hop sample to play */
    float atten_db;              /* the control value now applied (NaN: none yet) */
} plugin;

static LADSPA_Handle instantiate(const LADSPA_Descriptor *d, unsigned long rate)
{
    plugin *p;
    const char *why = "";
    (void)d;
    if (rate != TDN_LIB_SAMPLE_RATE) {
        fprintf(stderr, "%s: runs at %d Hz only, the host asked for %lu Hz: resample to %d Hz "
                "around it (e.g. sox ... rate 16000)\n", tdn_plugin_label, TDN_LIB_SAMPLE_RATE, rate,
                TDN_LIB_SAMPLE_RATE);
        return NULL;
    }
    p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->lib = tdn_lib_create(tdn_plugin_blob, tdn_plugin_blob_size, &why);
    if (!p->lib) {
        fprintf(stderr, "%s: the compiled-in model was refused: %s\n", tdn_plugin_label, why);
        free(p);
        return NULL;
    }
    p->atten_db = -1.0f;
    return p;
}

static void connect_port(LADSPA_Handle h, unsigned long port, LADSPA_Data *where)
{
    if (port < P_COUNT) ((plugin *)h)->port[port] = where;
}

static void activate(LADSPA_Handle h)
{
    plugin *p = h;
    tdn_lib_reset(p->lib);
    memset(p->in_hop, 0, sizeof p->in_hop);
    memset(p->out_hop, 0, sizeof p->out_hop);
    p->fill = 0;
    p->atten_db = -1.0f; /* forces the first run() to apply the port's value */
}

static void apply_controls(plugin *p)
{
    float db = p->port[P_ATTEN] ? *p->port[P_ATTEN] : ATTEN_OFF_DB;
    if (!(db >= 0.0f)) db = 0.0f; /* below the range (or NaN): the strongest limit */
    if (db > ATTEN_OFF_DB) db = ATTEN_OFF_DB;
    if (db != p->atten_db) {
        tdn_lib_set_atten_lim_db(p->lib, db >= ATTEN_OFF_DB ? (double)INFINITY : (double)db);
        p->atten_db = db;
    }
    tdn_lib_set_bypass(p->lib, p->port[P_BYPASS] && *p->port[P_BYPASS] > 0.0f);
}

static void run(LADSPA_Handle h, unsigned long n)
{
    plugin *p = h;
    const LADSPA_Data *in = p->port[P_IN];
    LADSPA_Data *out = p->port[P_OUT];
    apply_controls(p);
    for (unsigned long i = 0; i < n; i++) {
        float x = in[i]; /* read before writing: in and out may be one buffer */
        out[i] = p->out_hop[p->fill];
        p->in_hop[p->fill++] = x;
        if (p->fill == TDN_LIB_HOP) {
            tdn_lib_process(p->lib, p->in_hop, p->out_hop);
            p->fill = 0;
        }
    }
    if (p->port[P_LATENCY]) *p->port[P_LATENCY] = (LADSPA_Data)PLUGIN_LATENCY;
}

static void cleanup(LADSPA_Handle h)
{
    plugin *p = h;
    tdn_lib_destroy(p->lib);
    free(p);
}

static const LADSPA_PortDescriptor port_kinds[P_COUNT] = {
    LADSPA_PORT_INPUT | LADSPA_PORT_AUDIO, LADSPA_PORT_OUTPUT | LADSPA_PORT_AUDIO,
    LADSPA_PORT_INPUT | LADSPA_PORT_CONTROL, LADSPA_PORT_INPUT | LADSPA_PORT_CONTROL,
    LADSPA_PORT_OUTPUT | LADSPA_PORT_CONTROL,
};
static const char *const port_names[P_COUNT] = {
    "Input", "Output", "Attenuation limit (dB, 100 = none)", "Bypass", "latency",
};
static const LADSPA_PortRangeHint port_hints[P_COUNT] = {
    {0, 0.0f, 0.0f},
    {0, 0.0f, 0.0f},
    {LADSPA_HINT_BOUNDED_BELOW | LADSPA_HINT_BOUNDED_ABOVE | LADSPA_HINT_DEFAULT_MAXIMUM, 0.0f, ATTEN_OFF_DB},
    {LADSPA_HINT_TOGGLED | LADSPA_HINT_DEFAULT_0, 0.0f, 0.0f},
    {0, 0.0f, 0.0f},
};

static LADSPA_Descriptor descriptor = {
    .Properties = LADSPA_PROPERTY_HARD_RT_CAPABLE,
    .Maker = "streamer (TinyDenoiser firmware arithmetic)",
    .Copyright = "None",
    .PortCount = P_COUNT,
    .PortDescriptors = port_kinds,
    .PortNames = port_names,
    .PortRangeHints = port_hints,
    .instantiate = instantiate,
    .connect_port = connect_port,
    .activate = activate,
    .run = run,
    .cleanup = cleanup,
};

__attribute__((visibility("default"))) const LADSPA_Descriptor *ladspa_descriptor(unsigned long index)
{
    if (index != 0) return NULL;
    /* the generated model file names the plugin (labels must differ between loaded plugins) */
    descriptor.UniqueID = tdn_plugin_id;
    descriptor.Label = tdn_plugin_label;
    descriptor.Name = tdn_plugin_name;
    return &descriptor;
}
