/* The signal's definition and the per-format readers and writers behind
 * io.h. Each format lives in its own file (dm.c, hspy.c, rpl.c); signal.c
 * holds the object, the dispatch on content and the cube conversion. */
#ifndef EELSVAE_IO_PRIVATE_H
#define EELSVAE_IO_PRIVATE_H

#include <eelsvae/io.h>

#include "../core/core.h"

#define EVAE_AXIS_NAME_MAX 64

typedef struct evae_signal_axis {
    double offset;
    double scale;
    char name[EVAE_AXIS_NAME_MAX];
    char units[EELSVAE_UNITS_MAX];
    int navigate;
} evae_signal_axis;

typedef struct evae_metadata_entry {
    char *key;   /* evae_malloc'd */
    char *value; /* evae_malloc'd */
} evae_metadata_entry;

struct eelsvae_signal {
    eelsvae_dtype dtype;
    size_t ndim;
    size_t shape[EELSVAE_SIGNAL_MAX_DIMS];
    size_t count; /* product of shape */
    void *data;   /* count · dtype size bytes, native byte order, 64-byte aligned */
    evae_signal_axis axis[EELSVAE_SIGNAL_MAX_DIMS];
    evae_metadata_entry *metadata;
    size_t metadata_count, metadata_capacity;
};

/* A signal of this type and shape with uninitialised data, default axes
 * (uncalibrated, all navigate but the last) and no metadata. */
eelsvae_status evae_signal_alloc(eelsvae_dtype dtype, size_t ndim, const size_t *shape, eelsvae_signal **out);

/* Set the "title" metadata entry (a convenience for readers). */
eelsvae_status evae_signal_set_title(eelsvae_signal *s, const char *title);

/* Numbers as metadata values, with enough digits to round-trip. */
eelsvae_status evae_signal_metadata_set_number(eelsvae_signal *s, const char *key, double value);

/* ---- per-format entry points (signal.c dispatches to these) ---------- */

/* DigitalMicrograph (dm.c). */
eelsvae_status evae_dm_count(const char *path, size_t *count, size_t *main_index);
eelsvae_status evae_dm_read(const char *path, size_t index, eelsvae_signal **out);

/* HyperSpy HDF5 (hspy.c; built only with HDF5, else hspy_none.c returns
 * EELSVAE_ERR_UNSUPPORTED). */
int evae_hspy_available(void);
eelsvae_status evae_hspy_read(const char *path, eelsvae_signal **out);
eelsvae_status evae_hspy_write(const eelsvae_signal *s, const char *path);

/* Ripple (rpl.c): `path` names the .rpl header; the .raw file is beside it. */
eelsvae_status evae_rpl_read(const char *path, eelsvae_signal **out);
eelsvae_status evae_rpl_write(const eelsvae_signal *s, const char *path);

#endif
