/* Tests of the edge table (edges.h): lookup by every accepted spelling,
 * known onsets, the table's order and range, the score window, bad names,
 * short caller structs, and — where /usr/bin/python3 has HyperSpy — the
 * table against HyperSpy's elements database it was made from. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers --------------------------------------------------------------- */

static eelsvae_edge lookup(const char *name)
{
    eelsvae_edge e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    eelsvae_status st = eelsvae_edge_lookup(name, &e);
    if (st != EELSVAE_OK)
        fail_msg("eelsvae_edge_lookup(\"%s\") returned %s: %s", name, eelsvae_strerror(st), eelsvae_last_error());
    return e;
}

static eelsvae_edge edge_at(size_t i)
{
    eelsvae_edge e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    assert_ok(eelsvae_edge_at(i, &e));
    return e;
}

static void assert_same_edge(const eelsvae_edge *a, const eelsvae_edge *b, const char *name)
{
    if (strcmp(a->element, b->element) != 0 || strcmp(a->shell, b->shell) != 0 || a->onset_ev != b->onset_ev ||
        a->last_onset_ev != b->last_onset_ev)
        fail_msg("\"%s\" gave %s-%s (%g, %g), expected %s-%s (%g, %g)", name, a->element, a->shell, a->onset_ev,
                 a->last_onset_ev, b->element, b->shell, b->onset_ev, b->last_onset_ev);
}

/* Every name in `names` (NULL-terminated) resolves to the entry of `want`. */
static void assert_all_resolve(const char *const *names, const char *element, const char *shell)
{
    for (size_t i = 0; names[i]; i++) {
        eelsvae_edge e = lookup(names[i]);
        if (strcmp(e.element, element) != 0 || strcmp(e.shell, shell) != 0)
            fail_msg("\"%s\" gave %s-%s, expected %s-%s", names[i], e.element, e.shell, element, shell);
        eelsvae_edge first = lookup(names[0]);
        assert_same_edge(&e, &first, names[i]);
    }
}

/* ---- lookup ---------------------------------------------------------------- */

static void test_spellings(void **state)
{
    (void)state;
    static const char *const ti_l23[] = {"Ti-L", "Ti-L2,3", "Ti-L23", "Ti-L3", "Ti-L2", "ti-l", "TI-L", "Ti L",
                                         "Ti_L", "ti_l2,3", "TI L23", NULL};
    assert_all_resolve(ti_l23, "Ti", "L2,3");
    static const char *const ti_l1[] = {"Ti-L1", "ti-l1", "Ti L1", "Ti_L1", NULL};
    assert_all_resolve(ti_l1, "Ti", "L1");
    static const char *const o_k[] = {"O-K", "o-k", "O K", "O_K", NULL};
    assert_all_resolve(o_k, "O", "K");
    static const char *const la_m45[] = {"La-M", "La-M4,5", "La-M45", "La-M5", "La-M4", "LA-M", "la m45", NULL};
    assert_all_resolve(la_m45, "La", "M4,5");
    static const char *const la_m23[] = {"La-M2,3", "La-M23", "La-M3", "La-M2", NULL};
    assert_all_resolve(la_m23, "La", "M2,3");
    /* "X-M" is M2,3 where the element has no M4,5 in the table. */
    static const char *const fe_m[] = {"Fe-M", "Fe-M2,3", "Fe-M23", "fe_m3", NULL};
    assert_all_resolve(fe_m, "Fe", "M2,3");
    static const char *const ti_m[] = {"Ti-M", "Ti-M2,3", NULL};
    assert_all_resolve(ti_m, "Ti", "M2,3");

    /* The L2,3 entry spans L3 … L2, the M4,5 entry M5 … M4. */
    eelsvae_edge ti = lookup("Ti-L");
    assert_true(ti.last_onset_ev > ti.onset_ev);
    eelsvae_edge la = lookup("La-M");
    assert_true(la.last_onset_ev > la.onset_ev);
    /* K and L1 are single edges. */
    eelsvae_edge o = lookup("O-K");
    assert_true(o.last_onset_ev == o.onset_ev);
    eelsvae_edge l1 = lookup("Ti-L1");
    assert_true(l1.last_onset_ev == l1.onset_ev);
}

static void test_known_onsets(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        double onset, last;
    } known[] = {
        {"C-K", 284, 284},    {"N-K", 401, 401},    {"Ti-L", 456, 462},   {"O-K", 532, 532},
        {"Cr-L", 575, 584},   {"Mn-L", 640, 651},   {"Fe-L", 708, 721},   {"Co-L", 779, 794},
        {"La-M", 832, 849},   {"Ni-L", 855, 872},   {"Cu-L", 931, 951},   {"Zn-L", 1020, 1043},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        eelsvae_edge e = lookup(known[i].name);
        if (!(e.onset_ev >= known[i].onset - 2 && e.onset_ev <= known[i].onset + 2 &&
              e.last_onset_ev >= known[i].last - 2 && e.last_onset_ev <= known[i].last + 2))
            fail_msg("%s: onsets %g, %g eV, expected about %g, %g", known[i].name, e.onset_ev, e.last_onset_ev,
                     known[i].onset, known[i].last);
    }
}

/* ---- the table --------------------------------------------------------------- */

static void test_table_order_and_range(void **state)
{
    (void)state;
    size_t n = eelsvae_edge_count();
    assert_true(n >= 100); /* 80 elements, most with several edges */
    double previous = 0;
    for (size_t i = 0; i < n; i++) {
        eelsvae_edge e = edge_at(i);
        assert_non_null(e.element);
        assert_non_null(e.shell);
        assert_true(strlen(e.element) >= 1 && strlen(e.element) <= 2);
        assert_true(strcmp(e.shell, "K") == 0 || strcmp(e.shell, "L1") == 0 || strcmp(e.shell, "L2,3") == 0 ||
                    strcmp(e.shell, "M2,3") == 0 || strcmp(e.shell, "M4,5") == 0);
        if (!(e.onset_ev >= 20 && e.onset_ev <= 3000))
            fail_msg("%s-%s: onset %g eV outside [20, 3000]", e.element, e.shell, e.onset_ev);
        if (!(e.last_onset_ev >= e.onset_ev))
            fail_msg("%s-%s: last onset %g eV below onset %g", e.element, e.shell, e.last_onset_ev, e.onset_ev);
        if (strcmp(e.shell, "K") == 0 || strcmp(e.shell, "L1") == 0) assert_true(e.last_onset_ev == e.onset_ev);
        if (e.onset_ev < previous)
            fail_msg("entry %zu, %s-%s at %g eV, comes after one at %g eV", i, e.element, e.shell, e.onset_ev,
                     previous);
        previous = e.onset_ev;
        /* Each (element, shell) once. */
        for (size_t j = 0; j < i; j++) {
            eelsvae_edge f = edge_at(j);
            if (strcmp(e.element, f.element) == 0 && strcmp(e.shell, f.shell) == 0)
                fail_msg("%s-%s is in the table twice (%zu and %zu)", e.element, e.shell, j, i);
        }
    }
    eelsvae_edge e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    assert_status(eelsvae_edge_at(n, &e), EELSVAE_ERR_RANGE);
    assert_status(eelsvae_edge_at((size_t)-1, &e), EELSVAE_ERR_RANGE);
    assert_null(e.element); /* untouched */
}

static void test_every_entry_looks_itself_up(void **state)
{
    (void)state;
    size_t n = eelsvae_edge_count();
    for (size_t i = 0; i < n; i++) {
        eelsvae_edge e = edge_at(i);
        char name[32];
        snprintf(name, sizeof name, "%s-%s", e.element, e.shell);
        eelsvae_edge found = lookup(name);
        assert_same_edge(&found, &e, name);
        /* The short form names the same entry where it is unambiguous. */
        if (strcmp(e.shell, "L2,3") == 0) {
            snprintf(name, sizeof name, "%s-L", e.element);
            found = lookup(name);
            assert_same_edge(&found, &e, name);
        }
        if (strcmp(e.shell, "M4,5") == 0) {
            snprintf(name, sizeof name, "%s-M", e.element);
            found = lookup(name);
            assert_same_edge(&found, &e, name);
        }
    }
}

/* ---- the window ---------------------------------------------------------------- */

static void test_window(void **state)
{
    (void)state;
    size_t n = eelsvae_edge_count();
    for (size_t i = 0; i < n; i++) {
        eelsvae_edge e = edge_at(i);
        double lo = 0, hi = 0;
        assert_ok(eelsvae_edge_window(&e, &lo, &hi));
        assert_true(lo == e.onset_ev - 10);
        assert_true(hi == e.last_onset_ev + 30);
    }
    eelsvae_edge fe = lookup("Fe-L");
    double lo = 0, hi = 0;
    assert_ok(eelsvae_edge_window(&fe, &lo, &hi));
    assert_close(lo, 698, 0, 0);
    assert_close(hi, 751, 0, 0);

    /* A caller's own edge. */
    eelsvae_edge own;
    memset(&own, 0, sizeof own);
    own.struct_size = sizeof own;
    own.onset_ev = 100;
    own.last_onset_ev = 100;
    assert_ok(eelsvae_edge_window(&own, &lo, &hi));
    assert_close(lo, 90, 0, 0);
    assert_close(hi, 130, 0, 0);

    /* Bad input. */
    assert_status(eelsvae_edge_window(NULL, &lo, &hi), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_edge_window(&own, NULL, &hi), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_edge_window(&own, &lo, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    own.last_onset_ev = 99;
    assert_status(eelsvae_edge_window(&own, &lo, &hi), EELSVAE_ERR_INVALID_ARGUMENT);
    own.last_onset_ev = INFINITY;
    assert_status(eelsvae_edge_window(&own, &lo, &hi), EELSVAE_ERR_INVALID_ARGUMENT);
    own.last_onset_ev = 100;
    own.struct_size = offsetof(eelsvae_edge, last_onset_ev);
    assert_status(eelsvae_edge_window(&own, &lo, &hi), EELSVAE_ERR_INVALID_ARGUMENT);
}

/* ---- bad names and short structs ----------------------------------------------- */

static void test_bad_names(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "Xx-L", "Ti-Q", "Ti", "-L", "Ti-", "Ti-L4", "Ti-K1", "O-L2,3",
                                      "Ti-M4,5", "Ti--L", "1-K", "Tix-L", "Ti-LL", "Ti-L2,3 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eelsvae_edge e;
        memset(&e, 0, sizeof e);
        e.struct_size = sizeof e;
        eelsvae_status st = eelsvae_edge_lookup(bad[i], &e);
        if (st != EELSVAE_ERR_INVALID_ARGUMENT)
            fail_msg("\"%s\" returned %s, expected EELSVAE_ERR_INVALID_ARGUMENT", bad[i], eelsvae_strerror(st));
        const char *msg = eelsvae_last_error();
        if (!strstr(msg, "eelsvae_edge_lookup")) fail_msg("\"%s\": message \"%s\" names no function", bad[i], msg);
        if (bad[i][0] && !strstr(msg, bad[i])) fail_msg("\"%s\": message \"%s\" does not quote it", bad[i], msg);
        assert_null(e.element); /* untouched on failure */
        assert_true(e.onset_ev == 0);
    }
    eelsvae_edge e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    assert_status(eelsvae_edge_lookup(NULL, &e), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "eelsvae_edge_lookup"));

    /* What the messages say to do. */
    assert_status(eelsvae_edge_lookup("Ti", &e), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "ELEMENT-SHELL, e.g. Ti-L or O-K"));
    assert_status(eelsvae_edge_lookup("Ti-Q", &e), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "known edges of Ti: "));
    assert_non_null(strstr(eelsvae_last_error(), "Ti-L2,3"));
    assert_non_null(strstr(eelsvae_last_error(), "Ti-L1"));
    assert_non_null(strstr(eelsvae_last_error(), "energy window in eV"));
    assert_status(eelsvae_edge_lookup("Xx-L", &e), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "energy window in eV"));

    /* NULL or too small an out struct. */
    assert_status(eelsvae_edge_lookup("Ti-L", NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_edge_at(0, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    e.struct_size = sizeof(size_t) - 1;
    assert_status(eelsvae_edge_lookup("Ti-L", &e), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_edge_at(0, &e), EELSVAE_ERR_INVALID_ARGUMENT);
    e.struct_size = 0;
    assert_status(eelsvae_edge_at(0, &e), EELSVAE_ERR_INVALID_ARGUMENT);
}

/* A caller compiled against a shorter struct: only the fields it has are
 * written, and the bytes after it — here a canary — stay as they were. */
static void test_short_struct(void **state)
{
    (void)state;
    const eelsvae_edge full = lookup("Fe-L");
    static const size_t sizes[] = {
        sizeof(size_t),
        offsetof(eelsvae_edge, element) + sizeof(const char *),
        offsetof(eelsvae_edge, shell) + sizeof(const char *),
        offsetof(eelsvae_edge, onset_ev) + sizeof(double),
        offsetof(eelsvae_edge, onset_ev) + sizeof(double) + 3, /* part of last_onset_ev */
        sizeof(eelsvae_edge),
    };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t size = sizes[k];
        for (int by_index = 0; by_index < 2; by_index++) {
            unsigned char buf[sizeof(eelsvae_edge) + 16];
            memset(buf, 0xA5, sizeof buf);
            memcpy(buf, &size, sizeof size);
            eelsvae_edge *e = (eelsvae_edge *)(void *)buf;
            if (by_index) {
                size_t index = (size_t)-1;
                for (size_t i = 0; i < eelsvae_edge_count(); i++) {
                    eelsvae_edge f = edge_at(i);
                    if (strcmp(f.element, "Fe") == 0 && strcmp(f.shell, "L2,3") == 0) index = i;
                }
                assert_true(index != (size_t)-1);
                assert_ok(eelsvae_edge_at(index, e));
            } else {
                assert_ok(eelsvae_edge_lookup("Fe-L", e));
            }
            size_t got_size;
            memcpy(&got_size, buf, sizeof got_size);
            assert_int_equal(got_size, size); /* struct_size stays the caller's */
            /* The fields wholly inside `size` are written… */
            eelsvae_edge expect;
            memset(&expect, 0xA5, sizeof expect);
            expect.struct_size = size;
            if (size >= offsetof(eelsvae_edge, element) + sizeof full.element) expect.element = full.element;
            if (size >= offsetof(eelsvae_edge, shell) + sizeof full.shell) expect.shell = full.shell;
            if (size >= offsetof(eelsvae_edge, onset_ev) + sizeof full.onset_ev) expect.onset_ev = full.onset_ev;
            if (size >= offsetof(eelsvae_edge, last_onset_ev) + sizeof full.last_onset_ev)
                expect.last_onset_ev = full.last_onset_ev;
            assert_memory_equal(buf, &expect, sizeof expect);
            /* …and nothing after the struct. */
            for (size_t b = sizeof(eelsvae_edge); b < sizeof buf; b++) assert_int_equal(buf[b], 0xA5);
        }
    }
}

/* ---- against HyperSpy ---------------------------------------------------------- */

/* Rebuilds the table from HyperSpy's database by the rules of lib/cube/edges.c
 * and compares it, row by row, with the library's (read from argv[1]). */
static const char oracle_script[] =
    "import sys\n"
    "try:\n"
    "    from hyperspy.misc.elements import elements\n"
    "except Exception as e:\n"
    "    print('no hyperspy.misc.elements:', e); sys.exit(77)\n"
    "rows = []\n"
    "for el, d in elements.items():\n"
    "    be = d.get('Atomic_properties', {}).get('Binding_energies', {})\n"
    "    on = lambda k: float(be[k]['onset_energy (eV)']) if 'onset_energy (eV)' in be.get(k, {}) else None\n"
    "    cand = [(s, on(s), on(s)) for s in ('K', 'L1') if on(s) is not None]\n"
    "    for shell, a, b in (('L2,3', 'L3', 'L2'), ('M2,3', 'M3', 'M2'), ('M4,5', 'M5', 'M4')):\n"
    "        x, y = on(a), on(b)\n"
    "        if x is None and y is None: x = y = on(shell)\n"
    "        if x is None and y is None: continue\n"
    "        cand.append((shell, x if x is not None else y, y if y is not None else x))\n"
    "    rows += [(x, y, el, s) for s, x, y in cand if 20 <= x <= 3000]\n"
    "if not rows: print('no Binding_energies in this HyperSpy'); sys.exit(77)\n"
    "want = [(el, s, x, y) for x, y, el, s in sorted(rows)]\n"
    "got = [(el, s, float(x), float(y)) for el, s, x, y in\n"
    "       (line.split('\\t') for line in open(sys.argv[1]).read().split('\\n')[:-1])]\n"
    "bad = [f'library {g!r} / HyperSpy {w!r}' for g, w in zip(got, want) if g != w]\n"
    "if len(got) != len(want): bad.append(f'{len(got)} rows, HyperSpy gives {len(want)}')\n"
    "print('\\n'.join(bad[:10]))\n"
    "sys.exit(1 if bad else 0)\n";

static void test_table_matches_hyperspy(void **state)
{
    (void)state;
    const char *python = tu_hyperspy_python();
    if (!python) tu_skip("/usr/bin/python3 with HyperSpy is not available");
    size_t n = eelsvae_edge_count();
    size_t cap = n * 64 + 1, used = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (size_t i = 0; i < n; i++) {
        eelsvae_edge e = edge_at(i);
        /* %.17g reads back as the same double. */
        used += (size_t)snprintf(text + used, cap - used, "%s\t%s\t%.17g\t%.17g\n", e.element, e.shell,
                                 e.onset_ev, e.last_onset_ev);
        assert_true(used < cap);
    }
    tu_write_file(tu_path("edges_library.txt"), text, used);
    free(text);
    tu_write_file(tu_path("edges_oracle.py"), oracle_script, sizeof oracle_script - 1);
    int rc = tu_system("%s '%s' '%s'", python, tu_path("edges_oracle.py"), tu_path("edges_library.txt"));
    if (rc == 77) tu_skip("this HyperSpy has no EELS binding energies");
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spellings),
        cmocka_unit_test(test_known_onsets),
        cmocka_unit_test(test_table_order_and_range),
        cmocka_unit_test(test_every_entry_looks_itself_up),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_short_struct),
        cmocka_unit_test(test_table_matches_hyperspy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
