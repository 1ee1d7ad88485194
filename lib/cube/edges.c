/* The table of core-loss EELS edge onsets (edges.h): lookup by index or by
 * name, and the energy window to score an edge over. */
#include "../core/core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- the table ------------------------------------------------------------ */

typedef struct edge_row {
    const char *element;
    const char *shell;
    double onset_ev;      /* first (lowest) sub-edge */
    double last_onset_ev; /* last sub-edge */
} edge_row;

/* Onset energies (eV) from HyperSpy's elements database
 * (hyperspy/misc/elements.py, its Atomic_properties / Binding_energies
 * 'onset_energy (eV)' entries; HyperSpy is GPL, only the facts are taken
 * here), which follows the EELS Atlas: C. C. Ahn and O. L. Krivanek, "EELS
 * Atlas", Gatan / ASU HREM Facility, 1983. Values as in HyperSpy 1.7.3.
 *
 * Every K, L1, L2,3, M2,3 and M4,5 edge it lists whose onset lies in
 * [20, 3000] eV. A split edge is one row: L2,3 from its L3 (onset) and L2
 * (last) entries, M2,3 from M3 and M2, M4,5 from M5 and M4; where only one
 * of a pair is listed (or a single 'L2,3' entry) it is both. Sorted by onset,
 * then last onset, element and shell, so that eelsvae_edge_at() goes up in
 * energy; tests/test_edges.c checks the order. */
static const edge_row edge_table[] = {
    {"He", "K", 24.587, 24.587},
    {"Na", "L2,3", 31.0, 31.0},
    {"Sc", "M2,3", 32.0, 32.0},
    {"Ti", "M2,3", 35.0, 35.0},
    {"V", "M2,3", 38.0, 38.0},
    {"Cr", "M2,3", 43.0, 43.0},
    {"Mg", "L2,3", 51.0, 51.0},
    {"Mn", "M2,3", 51.0, 51.0},
    {"Li", "K", 55.0, 55.0},
    {"Fe", "M2,3", 57.0, 57.0},
    {"Co", "M2,3", 59.0, 59.0},
    {"Na", "L1", 63.0, 63.0},
    {"Ni", "M2,3", 68.0, 68.0},
    {"Al", "L2,3", 73.0, 73.0},
    {"Cu", "M2,3", 74.0, 74.0},
    {"Zn", "M2,3", 87.0, 87.0},
    {"Kr", "M4,5", 89.0, 89.0},
    {"Mg", "L1", 89.0, 89.0},
    {"Si", "L2,3", 99.2, 99.8},
    {"Rb", "M4,5", 110.0, 110.0},
    {"Be", "K", 111.0, 111.0},
    {"Al", "L1", 118.0, 118.0},
    {"P", "L2,3", 132.0, 132.0},
    {"Sr", "M4,5", 134.0, 134.0},
    {"Si", "L1", 149.7, 149.7},
    {"Y", "M4,5", 160.0, 160.0},
    {"S", "L2,3", 165.0, 165.0},
    {"Zr", "M4,5", 181.0, 181.0},
    {"B", "K", 188.0, 188.0},
    {"P", "L1", 189.0, 189.0},
    {"Cl", "L2,3", 200.0, 200.0},
    {"Nb", "M4,5", 202.3, 205.0},
    {"Mo", "M4,5", 227.0, 228.0},
    {"S", "L1", 229.0, 229.0},
    {"Rb", "M2,3", 238.0, 247.0},
    {"Ar", "L2,3", 245.0, 245.0},
    {"Sr", "M2,3", 269.0, 280.0},
    {"Cl", "L1", 270.0, 270.0},
    {"Ru", "M4,5", 279.0, 279.0},
    {"C", "K", 284.0, 284.0},
    {"K", "L2,3", 294.0, 296.0},
    {"Y", "M2,3", 300.0, 312.0},
    {"Rh", "M4,5", 308.0, 312.0},
    {"Ar", "L1", 320.0, 320.0},
    {"Zr", "M2,3", 330.0, 344.0},
    {"Pd", "M4,5", 335.0, 340.0},
    {"Ca", "L2,3", 346.0, 350.0},
    {"Nb", "M2,3", 363.0, 378.0},
    {"Ag", "M4,5", 367.0, 373.0},
    {"K", "L1", 377.0, 377.0},
    {"Mo", "M2,3", 392.0, 410.0},
    {"N", "K", 401.0, 401.0},
    {"Sc", "L2,3", 402.0, 407.0},
    {"Cd", "M4,5", 404.0, 411.0},
    {"Ca", "L1", 438.0, 438.0},
    {"In", "M4,5", 443.0, 451.0},
    {"Ti", "L2,3", 456.0, 462.0},
    {"Ru", "M2,3", 461.0, 483.0},
    {"Sn", "M4,5", 485.0, 494.0},
    {"Rh", "M2,3", 496.0, 521.0},
    {"Sc", "L1", 500.0, 500.0},
    {"V", "L2,3", 513.0, 521.0},
    {"Sb", "M4,5", 528.0, 537.0},
    {"Pd", "M2,3", 531.0, 559.0},
    {"O", "K", 532.0, 532.0},
    {"Ti", "L1", 564.0, 564.0},
    {"Ag", "M2,3", 571.0, 602.0},
    {"Te", "M4,5", 572.0, 582.0},
    {"Cr", "L2,3", 575.0, 584.0},
    {"Cd", "M2,3", 616.0, 651.0},
    {"I", "M4,5", 620.0, 631.0},
    {"V", "L1", 628.0, 628.0},
    {"Mn", "L2,3", 640.0, 651.0},
    {"In", "M2,3", 664.0, 702.0},
    {"Xe", "M4,5", 672.0, 685.0},
    {"F", "K", 685.0, 685.0},
    {"Cr", "L1", 695.0, 695.0},
    {"Fe", "L2,3", 708.0, 721.0},
    {"Sn", "M2,3", 714.0, 756.0},
    {"Cs", "M4,5", 726.0, 740.0},
    {"Sb", "M2,3", 766.0, 812.0},
    {"Mn", "L1", 769.0, 769.0},
    {"Co", "L2,3", 779.0, 794.0},
    {"Ba", "M4,5", 781.0, 796.0},
    {"Te", "M2,3", 819.0, 870.0},
    {"La", "M4,5", 832.0, 849.0},
    {"Fe", "L1", 846.0, 846.0},
    {"Ni", "L2,3", 855.0, 872.0},
    {"Ne", "K", 867.0, 867.0},
    {"I", "M2,3", 875.0, 930.0},
    {"Ce", "M4,5", 883.0, 901.0},
    {"Co", "L1", 926.0, 926.0},
    {"Cu", "L2,3", 931.0, 951.0},
    {"Pr", "M4,5", 931.0, 951.0},
    {"Nd", "M4,5", 978.0, 1000.0},
    {"Cs", "M2,3", 998.0, 1065.0},
    {"Ni", "L1", 1008.0, 1008.0},
    {"Zn", "L2,3", 1020.0, 1043.0},
    {"Ba", "M2,3", 1062.0, 1137.0},
    {"Na", "K", 1072.0, 1072.0},
    {"Sm", "M4,5", 1080.0, 1106.0},
    {"Cu", "L1", 1096.0, 1096.0},
    {"Ga", "L2,3", 1115.0, 1142.0},
    {"La", "M2,3", 1123.0, 1204.0},
    {"Eu", "M4,5", 1131.0, 1161.0},
    {"Gd", "M4,5", 1185.0, 1217.0},
    {"Ce", "M2,3", 1185.0, 1273.0},
    {"Zn", "L1", 1194.0, 1194.0},
    {"Ge", "L2,3", 1217.0, 1248.0},
    {"Tb", "M4,5", 1241.0, 1275.0},
    {"Pr", "M2,3", 1242.0, 1337.0},
    {"Dy", "M4,5", 1295.0, 1332.0},
    {"Nd", "M2,3", 1297.0, 1403.0},
    {"Ga", "L1", 1298.0, 1298.0},
    {"Mg", "K", 1305.0, 1305.0},
    {"As", "L2,3", 1323.0, 1359.0},
    {"Ho", "M4,5", 1351.0, 1391.0},
    {"Er", "M4,5", 1409.0, 1453.0},
    {"Ge", "L1", 1414.0, 1414.0},
    {"Sm", "M2,3", 1420.0, 1541.0},
    {"Se", "L2,3", 1436.0, 1476.0},
    {"Tm", "M4,5", 1468.0, 1515.0},
    {"Eu", "M2,3", 1481.0, 1614.0},
    {"As", "L1", 1526.0, 1526.0},
    {"Yb", "M4,5", 1528.0, 1576.0},
    {"Gd", "M2,3", 1544.0, 1688.0},
    {"Br", "L2,3", 1550.0, 1596.0},
    {"Al", "K", 1560.0, 1560.0},
    {"Lu", "M4,5", 1588.0, 1639.0},
    {"Tb", "M2,3", 1611.0, 1768.0},
    {"Se", "L1", 1654.0, 1654.0},
    {"Hf", "M4,5", 1662.0, 1716.0},
    {"Kr", "L2,3", 1675.0, 1727.0},
    {"Dy", "M2,3", 1676.0, 1842.0},
    {"Ta", "M4,5", 1735.0, 1793.0},
    {"Ho", "M2,3", 1741.0, 1923.0},
    {"Br", "L1", 1782.0, 1782.0},
    {"Rb", "L2,3", 1804.0, 1864.0},
    {"W", "M4,5", 1809.0, 1872.0},
    {"Er", "M2,3", 1812.0, 2006.0},
    {"Si", "K", 1839.0, 1839.0},
    {"Re", "M4,5", 1883.0, 1949.0},
    {"Tm", "M2,3", 1884.0, 2090.0},
    {"Kr", "L1", 1921.0, 1921.0},
    {"Sr", "L2,3", 1940.0, 2007.0},
    {"Yb", "M2,3", 1950.0, 2173.0},
    {"Os", "M4,5", 1960.0, 2031.0},
    {"Lu", "M2,3", 2024.0, 2263.0},
    {"Ir", "M4,5", 2040.0, 2116.0},
    {"Rb", "L1", 2065.0, 2065.0},
    {"Y", "L2,3", 2080.0, 2155.0},
    {"Pt", "M4,5", 2122.0, 2202.0},
    {"P", "K", 2146.0, 2146.0},
    {"Au", "M4,5", 2206.0, 2291.0},
    {"Sr", "L1", 2216.0, 2216.0},
    {"Zr", "L2,3", 2222.0, 2307.0},
    {"Hg", "M4,5", 2295.0, 2385.0},
    {"Nb", "L2,3", 2371.0, 2465.0},
    {"Y", "L1", 2372.0, 2372.0},
    {"Tl", "M4,5", 2389.0, 2485.0},
    {"Pb", "M4,5", 2484.0, 2586.0},
    {"Mo", "L2,3", 2520.0, 2625.0},
    {"Zr", "L1", 2532.0, 2532.0},
    {"Bi", "M4,5", 2580.0, 2688.0},
    {"Nb", "L1", 2698.0, 2698.0},
    {"Mo", "L1", 2866.0, 2866.0},
};

#define EDGE_COUNT (sizeof edge_table / sizeof edge_table[0])

/* The score window (edges.h): pre-edge background below the first onset,
 * white lines and near-edge structure above the last. */
#define EDGE_WINDOW_BELOW_EV 10.0
#define EDGE_WINDOW_ABOVE_EV 30.0

/* ---- writing the caller's struct ------------------------------------------ */

/* Copy a field when the caller's struct_size holds all of it (as
 * eelsvae_metrics_compute() does). */
#define EDGE_COPY_IF_FITS(dst, src, size, field)                                                                 \
    do {                                                                                                         \
        if ((size) >= offsetof(eelsvae_edge, field) + sizeof((src)->field)) (dst)->field = (src)->field;         \
    } while (0)

static eelsvae_status check_edge_out(const eelsvae_edge *edge, const char *what)
{
    if (!edge) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: NULL edge", what);
    if (edge->struct_size < sizeof(size_t))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "%s: struct_size is %zu, smaller than the struct_size field itself (%zu bytes); set it "
                         "to sizeof(eelsvae_edge)",
                         what, edge->struct_size, sizeof(size_t));
    return EELSVAE_OK;
}

/* Fill only what the caller's struct holds; struct_size stays the caller's. */
static void write_edge(eelsvae_edge *edge, const edge_row *row)
{
    size_t given = edge->struct_size;
    eelsvae_edge full;
    memset(&full, 0, sizeof full);
    full.element = row->element;
    full.shell = row->shell;
    full.onset_ev = row->onset_ev;
    full.last_onset_ev = row->last_onset_ev;
    EDGE_COPY_IF_FITS(edge, &full, given, element);
    EDGE_COPY_IF_FITS(edge, &full, given, shell);
    EDGE_COPY_IF_FITS(edge, &full, given, onset_ev);
    EDGE_COPY_IF_FITS(edge, &full, given, last_onset_ev);
}

/* ---- public API --------------------------------------------------------------- */

size_t eelsvae_edge_count(void)
{
    return EDGE_COUNT;
}

eelsvae_status eelsvae_edge_at(size_t index, eelsvae_edge *edge)
{
    EVAE_TRY(check_edge_out(edge, "eelsvae_edge_at"));
    if (index >= EDGE_COUNT)
        return evae_fail(EELSVAE_ERR_RANGE, "eelsvae_edge_at: index %zu is past the table's %zu edges", index,
                         (size_t)EDGE_COUNT);
    write_edge(edge, &edge_table[index]);
    return EELSVAE_OK;
}

/* ASCII only: the names are ASCII, and the C library's tolower depends on
 * the locale. */
static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int is_ascii_letter(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* The element symbol `sym` (len bytes, any case) equals the table's `element`. */
static int element_matches(const char *element, const char *sym, size_t len)
{
    if (strlen(element) != len) return 0;
    for (size_t i = 0; i < len; i++)
        if (ascii_lower(element[i]) != ascii_lower(sym[i])) return 0;
    return 1;
}

/* The table's row of `element` and `shell`, or NULL. */
static const edge_row *find_row(const char *element, const char *shell)
{
    for (size_t i = 0; i < EDGE_COUNT; i++)
        if (strcmp(edge_table[i].element, element) == 0 && strcmp(edge_table[i].shell, shell) == 0)
            return &edge_table[i];
    return NULL;
}

/* The canonical shell that a spelling names ("L" → "L2,3", "m45" → "M4,5"),
 * "M" for a bare M (resolved against the element), or NULL. */
static const char *canonical_shell(const char *s)
{
    char letter = ascii_lower(s[0]);
    const char *rest = s + 1;
    if (letter == 'k') return rest[0] == '\0' ? "K" : NULL;
    if (letter == 'l') {
        if (strcmp(rest, "1") == 0) return "L1";
        if (!strcmp(rest, "") || !strcmp(rest, "2,3") || !strcmp(rest, "23") || !strcmp(rest, "3") ||
            !strcmp(rest, "2"))
            return "L2,3";
        return NULL;
    }
    if (letter == 'm') {
        if (rest[0] == '\0') return "M";
        if (!strcmp(rest, "4,5") || !strcmp(rest, "45") || !strcmp(rest, "5") || !strcmp(rest, "4")) return "M4,5";
        if (!strcmp(rest, "2,3") || !strcmp(rest, "23") || !strcmp(rest, "3") || !strcmp(rest, "2")) return "M2,3";
        return NULL;
    }
    return NULL;
}

/* How a name must look, for the messages. */
#define EDGE_NAME_FORM "ELEMENT-SHELL, e.g. Ti-L or O-K (shells K, L1, L2,3, M2,3, M4,5)"

eelsvae_status eelsvae_edge_lookup(const char *name, eelsvae_edge *edge)
{
    if (!name)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "eelsvae_edge_lookup: NULL name; give an edge as %s",
                         EDGE_NAME_FORM);
    EVAE_TRY(check_edge_out(edge, "eelsvae_edge_lookup"));

    /* ELEMENT, one separator, SHELL. */
    size_t len = strcspn(name, "-_ ");
    int letters = len >= 1 && len <= 3;
    for (size_t i = 0; letters && i < len; i++) letters = is_ascii_letter(name[i]);
    if (!letters || name[len] == '\0' || name[len + 1] == '\0')
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "eelsvae_edge_lookup: \"%.64s\" is not an edge name; expected %s, or give the energy "
                         "window in eV instead",
                         name, EDGE_NAME_FORM);

    /* The element as the table spells it. */
    const char *element = NULL;
    for (size_t i = 0; i < EDGE_COUNT && !element; i++)
        if (element_matches(edge_table[i].element, name, len)) element = edge_table[i].element;
    if (!element)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "eelsvae_edge_lookup: \"%.64s\": no element \"%.*s\" has an edge in the table (onsets "
                         "20-3000 eV); give an element symbol such as Ti or O, or give the energy window in eV "
                         "instead",
                         name, (int)len, name);

    const char *shell = canonical_shell(name + len + 1);
    const edge_row *row = NULL;
    if (shell && strcmp(shell, "M") == 0) {
        row = find_row(element, "M4,5");
        if (!row) row = find_row(element, "M2,3");
    } else if (shell) {
        row = find_row(element, shell);
    }
    if (!row) {
        char known[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < EDGE_COUNT; i++) {
            if (strcmp(edge_table[i].element, element) != 0) continue;
            int n = snprintf(known + used, sizeof known - used, "%s%s-%s", used ? ", " : "", element,
                             edge_table[i].shell);
            if (n < 0 || (size_t)n >= sizeof known - used) break;
            used += (size_t)n;
        }
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "eelsvae_edge_lookup: no edge \"%.64s\" in the table; known edges of %s: %s; or give the "
                         "energy window in eV instead",
                         name, element, known);
    }
    write_edge(edge, row);
    return EELSVAE_OK;
}

eelsvae_status eelsvae_edge_window(const eelsvae_edge *edge, double *lo_ev, double *hi_ev)
{
    if (!edge || !lo_ev || !hi_ev) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "eelsvae_edge_window: NULL pointer");
    size_t need = offsetof(eelsvae_edge, last_onset_ev) + sizeof edge->last_onset_ev;
    if (edge->struct_size < need)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "eelsvae_edge_window: struct_size is %zu, too small to hold last_onset_ev (%zu bytes); "
                         "set it to sizeof(eelsvae_edge)",
                         edge->struct_size, need);
    if (!isfinite(edge->onset_ev) || !isfinite(edge->last_onset_ev) || edge->last_onset_ev < edge->onset_ev)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "eelsvae_edge_window: onsets %g and %g eV are not finite and in order (onset_ev <= "
                         "last_onset_ev)",
                         edge->onset_ev, edge->last_onset_ev);
    *lo_ev = edge->onset_ev - EDGE_WINDOW_BELOW_EV;
    *hi_ev = edge->last_onset_ev + EDGE_WINDOW_ABOVE_EV;
    return EELSVAE_OK;
}
