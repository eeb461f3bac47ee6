/* plugin_model.h - what `streamer plugin` generates (a C file) for ladspa_tdn.c: the model
 * blob, compiled in as data the way RNNoise compiles in its weights, and the plugin's names. */
#ifndef TDN_PLUGIN_MODEL_H
#define TDN_PLUGIN_MODEL_H

extern const unsigned char tdn_plugin_blob[];  /* the TDNB blob (8-byte aligned) */
extern const unsigned long tdn_plugin_blob_size;
extern const unsigned long tdn_plugin_id;       /* LADSPA unique ID */
extern const char tdn_plugin_label[];           /* LADSPA label: no white space */
extern const char tdn_plugin_name[];            /* what hosts show */

#endif
