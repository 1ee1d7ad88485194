#include "energy.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <eelsvae/eelsvae.h>

#include "cli.h"

cli_range cli_range_none(void)
{
    cli_range r = {NAN, NAN, ""};
    return r;
}

void cli_range_edge(cli_range *r, const char *option, const char *name)
{
    eelsvae_edge e = {.struct_size = sizeof e};
    if (eelsvae_edge_lookup(name, &e) != EELSVAE_OK) cli_usage_error("%s: %s", option, eelsvae_last_error());
    cli_check(eelsvae_edge_window(&e, &r->lo, &r->hi), option);
    snprintf(r->label, sizeof r->label, "%s-%s edge, %g … %g eV", e.element, e.shell, r->lo, r->hi);
}

void cli_range_window(cli_range *r, const char *option, const char *text)
{
    cli_window(option, text, &r->lo, &r->hi);
    snprintf(r->label, sizeof r->label, "window %g … %g eV", r->lo, r->hi);
}

int cli_range_given(const cli_range *r)
{
    return !isnan(r->lo);
}

void cli_range_clip(cli_range *r, double axis_lo, double axis_hi, const char *what)
{
    if (!cli_range_given(r)) {
        r->lo = axis_lo;
        r->hi = axis_hi;
        snprintf(r->label, sizeof r->label, "%s, %g … %g eV", what, axis_lo, axis_hi);
        return;
    }
    if (r->hi < axis_lo || r->lo > axis_hi)
        cli_fail("the %s lies outside the %s (%g … %g eV): choose an edge or window inside it", r->label, what, axis_lo,
                 axis_hi);
    if (r->lo >= axis_lo && r->hi <= axis_hi) return;
    r->lo = fmax(r->lo, axis_lo);
    r->hi = fmin(r->hi, axis_hi);
    size_t n = strlen(r->label);
    snprintf(r->label + n, sizeof r->label - n, ", clipped to %g … %g eV", r->lo, r->hi);
}

void cli_print_edges(double lo, double hi)
{
    fprintf(stderr, "%s: edges inside %g … %g eV:", cli_prog(), lo, hi);
    size_t found = 0;
    for (size_t i = 0; i < eelsvae_edge_count(); i++) {
        eelsvae_edge e = {.struct_size = sizeof e};
        if (eelsvae_edge_at(i, &e) != EELSVAE_OK || e.onset_ev < lo || e.onset_ev > hi) continue;
        fprintf(stderr, "%s %s-%s (%g eV)", found++ ? "," : "", e.element, e.shell, e.onset_ev);
    }
    fprintf(stderr, "%s\n", found ? "" : " none of the table's");
}

void cli_range_apply(cli_range *r, const eelsvae_cube *cube, const char *what)
{
    size_t ne = 0, first = 0, count = 0;
    double offset = 0, scale = 0;
    eelsvae_cube_shape(cube, NULL, NULL, &ne);
    cli_check(eelsvae_cube_axis(cube, EELSVAE_AXIS_E, &offset, &scale, NULL), what);
    cli_range_clip(r, offset, offset + scale * (double)(ne - 1), what);
    cli_check(eelsvae_cube_energy_window(cube, r->lo, r->hi, &first, &count), what);
    fprintf(stderr, "%s: scoring the %s (%zu channels)\n", cli_prog(), r->label, count);
    cli_print_edges(r->lo, r->hi);
}
