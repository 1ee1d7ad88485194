/**
 * @file edges.h
 * @brief A table of core-loss EELS edge onsets, and the energy window to
 *        score an edge over.
 *
 * The table holds the K, L1, L2,3, M2,3 and M4,5 edges of every element
 * whose onset lies between 20 eV and 3000 eV, as HyperSpy's elements
 * database lists them (after the EELS Atlas, C. C. Ahn and O. L. Krivanek,
 * 1983). An edge is named `Element-Shell`, e.g. `Ti-L2,3`, `O-K`,
 * `La-M4,5`; eelsvae_edge_lookup() also takes the short forms `Ti-L` and
 * `La-M`. The onsets are tabulated values, good to a few eV: chemistry
 * moves an edge by that much, which is what a score window must allow for.
 */
#ifndef EELSVAE_EDGES_H
#define EELSVAE_EDGES_H

#include <eelsvae/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief One core-loss edge.
 *
 * A split edge (L2,3, M2,3, M4,5) is one entry: its sub-edges lie a few eV
 * to some tens of eV apart and are scored together.
 * @since 0.1.0
 */
typedef struct eelsvae_edge {
    size_t struct_size;   /**< sizeof(eelsvae_edge); set by the caller (as in ::eelsvae_metrics). */
    const char *element;  /**< Element symbol, e.g. "Ti" (static storage). */
    const char *shell;    /**< "K", "L1", "L2,3", "M2,3" or "M4,5" (static storage). */
    double onset_ev;      /**< Onset of the edge's first (lowest) sub-edge, eV: L3 of L2,3, M5 of M4,5, M3 of M2,3. */
    double last_onset_ev; /**< Onset of its last sub-edge, eV: L2 of L2,3, M4 of M4,5, M2 of M2,3;
                               equal to onset_ev for K and L1 (and where the table has one onset). */
} eelsvae_edge;

/**
 * @brief Number of edges in the table.
 * @return The count; eelsvae_edge_at() takes indices 0 … count − 1.
 * @since 0.1.0
 */
EELSVAE_API size_t eelsvae_edge_count(void);

/**
 * @brief An edge of the table by index, in order of onset.
 *
 * Index 0 is the edge of lowest onset_ev; ties are ordered by
 * last_onset_ev, then element, then shell.
 * @param index 0 … eelsvae_edge_count() − 1.
 * @param[in,out] edge struct_size set by the caller, at least
 *        sizeof(size_t); every field that lies wholly within struct_size
 *        is filled, the rest (and struct_size) are left as they were.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (NULL @p edge, a
 *         struct_size smaller than sizeof(size_t)), ::EELSVAE_ERR_RANGE
 *         (@p index past the table).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_edge_at(size_t index, eelsvae_edge *edge);

/**
 * @brief Find an edge by name.
 *
 * A name is `ELEMENT-SHELL`. The element symbol is case-insensitive ("Ti",
 * "ti", "TI"), and a space or an underscore may stand for the '-'
 * ("Ti L", "Ti_L"). The shell is one of
 * - "K";
 * - "L1";
 * - "L2,3", "L23", "L3", "L2" or just "L": the L2,3 edge;
 * - "M4,5", "M45", "M5", "M4": the M4,5 edge; "M2,3", "M23", "M3", "M2":
 *   the M2,3 edge; just "M": the M4,5 edge where the table has one for the
 *   element, else its M2,3 edge.
 *
 * On failure the message (eelsvae_last_error()) names the edges the table
 * has for the element, or the expected form of a name.
 * @param name The name, e.g. "Ti-L", "O-K", "La-M4,5".
 * @param[in,out] edge struct_size set by the caller, at least
 *        sizeof(size_t); filled as eelsvae_edge_at() fills it. Left as it
 *        was on failure.
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT (NULL or malformed
 *         @p name, an element or edge not in the table, NULL @p edge, a
 *         struct_size smaller than sizeof(size_t)).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_edge_lookup(const char *name, eelsvae_edge *edge);

/**
 * @brief The energy window to score an edge over:
 *        [onset_ev − 10, last_onset_ev + 30] eV.
 *
 * The 10 eV below the first onset hold the pre-edge background, against
 * which the edge's rise (and a shift of it) shows; the 30 eV above the last
 * onset hold the white lines and near-edge structure of every sub-edge,
 * where valence and coordination change the spectrum. For Fe-L2,3 (708 and
 * 721 eV) that is 698–751 eV. The window is not clipped: intersecting it
 * with a cube's energy axis, or refusing an edge the axis does not reach,
 * is the caller's job (see eelsvae_cube_energy_window()).
 * @param edge An edge from eelsvae_edge_at() or eelsvae_edge_lookup(), or
 *        one filled in by the caller: its struct_size must cover
 *        last_onset_ev, and onset_ev ≤ last_onset_ev, both finite.
 * @param[out] lo_ev Start of the window, eV.
 * @param[out] hi_ev End of the window, eV.
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT (a NULL pointer, a
 *         struct_size too small, onsets not finite or out of order).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_edge_window(const eelsvae_edge *edge, double *lo_ev, double *hi_ev);

#ifdef __cplusplus
}
#endif

#endif /* EELSVAE_EDGES_H */
