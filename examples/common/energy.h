/* The energy range a program works on: an edge of the library's table
 * (--edge Ti-L), an explicit window (--window LO:HI), or nothing (the whole
 * axis, or the model's range). Not part of the library. */
#ifndef EELSVAE_EXAMPLES_ENERGY_H
#define EELSVAE_EXAMPLES_ENERGY_H

#include <eelsvae/eelsvae.h>

typedef struct cli_range {
    double lo, hi;   /* eV; NaN when neither --edge nor --window was given */
    char label[128]; /* "Ti-L2,3 edge, 446 … 492 eV" or "window 690 … 730 eV" */
} cli_range;

/* Unset: the whole axis, or the model's range. */
cli_range cli_range_none(void);

/* --edge NAME: the library's window for that edge (eelsvae_edge_window);
 * a usage error naming the option and the library's message otherwise. */
void cli_range_edge(cli_range *r, const char *option, const char *name);

/* --window LO:HI. */
void cli_range_window(cli_range *r, const char *option, const char *text);

int cli_range_given(const cli_range *r);

/* The range clipped to [axis_lo, axis_hi] (the whole of it when unset,
 * labelled `what`, e.g. "energy axis"); exits naming `what` when they do
 * not overlap. The label says so when the range was clipped. */
void cli_range_clip(cli_range *r, double axis_lo, double axis_hi, const char *what);

/* "edges inside LO … HI eV: Ti-L2,3 (456 eV), O-K (532 eV)" on stderr. */
void cli_print_edges(double lo, double hi);

/* The range a program scores a cube over: clipped to the cube's energy
 * axis (all of it when unset, labelled `what`), checked to hold channels
 * (exits naming `what` otherwise), and said on stderr with the edges
 * inside it. */
void cli_range_apply(cli_range *r, const eelsvae_cube *cube, const char *what);

/* The help lines of --edge and --window (ends in "\n"). */
#define CLI_RANGE_HELP(what, otherwise) \
    "  --edge NAME             " what " the window of a core-loss edge, e.g. Ti-L,\n" \
    "                          O-K, Mn-L, Fe-L, La-M (onset - 10 eV to the last\n" \
    "                          sub-edge's onset + 30 eV, clipped to the axis)\n" \
    "  --window LO:HI          " what " LO … HI eV instead (default: " otherwise ")\n"

#endif
