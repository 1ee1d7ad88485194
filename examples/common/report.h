/* The benchmark's results and how they are written: results.csv,
 * summary.md, report.html, and the F1 table on stdout. Not part of the library. */
#ifndef EELSVAE_EXAMPLES_REPORT_H
#define EELSVAE_EXAMPLES_REPORT_H

#include <stddef.h>
#include <stdio.h>

/* BENCH_VAE is trained once on the clean SI (novelty detection);
 * BENCH_VAE_SELF, with --self-train, on each injected SI itself (outlier
 * detection: the user's case, one SI and no clean twin). */
enum { BENCH_VAE, BENCH_PCA3, BENCH_PCA4, BENCH_PCA5, BENCH_VAE_SELF, BENCH_METHODS };

extern const char *const bench_method_id[BENCH_METHODS];     /* "vae", "pca3", …, "vae-self" (results.csv) */
extern const char *const bench_method_label[BENCH_METHODS];  /* "VAE", "PCA 3", … */
extern const char *const bench_method_colour[BENCH_METHODS]; /* the paper's: red, blue, orange, green */

/* One method on one injected SI. roc_auc and pr_auc are NaN only when the
 * truth holds a single class (never for a disk mask on a larger scan). */
typedef struct bench_row {
    int method;
    double shift_ev;
    size_t disks;
    double radius;
    double fraction; /* anomalous pixels / all pixels */
    double precision, recall, f1, iou, roc_auc, pr_auc;
    double threshold;          /* Otsu's, on the method's own PCC map */
    double mean_normal;        /* mean PCC of the normal pixels */
    double mean_anomalous;     /* mean PCC of the anomalous pixels */
    size_t missed, missed_rim; /* anomalous pixels not flagged; of them, on a disk's outer one-pixel ring */
    size_t false_alarms;       /* normal pixels flagged */
    /* The same score map cut by the run's --threshold rule (what a user of
     * eelsvae-detect gets by default) instead of Otsu's split. */
    double rule_precision, rule_recall, rule_f1, rule_threshold;
} bench_row;

/* Reconstruction against the noise-free cube: PCC (mean over pixels) and
 * PSNR (peak 1, the scaled data's range) per region; NaN = n/a. */
typedef struct bench_fidelity {
    const char *label;
    double edge_pcc, edge_psnr, bg_pcc, bg_psnr;
    char bg_region[48]; /* the background region used, or why n/a */
} bench_fidelity;

typedef struct bench_timing {
    char stage[48];
    double seconds;
} bench_timing;

typedef struct bench_figure {
    const char *file;    /* name inside the output directory */
    const char *png;     /* its raster companion, or NULL */
    const char *caption; /* HTML-safe text */
} bench_figure;

#define BENCH_MAX_TIMINGS 64
#define BENCH_MAX_FIGURES 12
#define BENCH_MAX_SWEEP 8

typedef struct bench_report {
    char source[512];  /* what the SI is */
    char setup[768];   /* preset, epochs, threads, … */
    const char *rule;  /* the --threshold rule beside Otsu's, e.g. "fdr:0.01" */
    double pca_trim;   /* PCA's trim fraction (0: the paper's plain PCA) */
    size_t ny, nx, ne;
    size_t disks;
    double radius, fraction;
    const double *shifts;
    size_t n_shifts;
    bench_row *rows;   /* every measurement, each (method, shift, disks, radius) once */
    size_t n_rows;
    double sweep_shift; /* ΔE of the concentration sweep */
    size_t sweep_disks[BENCH_MAX_SWEEP];
    double sweep_radius[BENCH_MAX_SWEEP];
    size_t n_sweep;
    bench_fidelity fidelity[BENCH_METHODS + 1]; /* the noisy input first, then each method … */
    size_t n_fidelity;                          /* … that reconstructs the clean SI (not vae-self) */
    int have_fidelity;
    char fidelity_note[512];
    double featured_shift; /* ΔE of figures 1, 2, 3 and 5 */
    double hist_mean[2][2]; /* [VAE, PCA 4][normal, anomalous] PCC means at the featured shift */
    double latent_diag, latent_offdiag;
    size_t latent_tiles;
    bench_timing timings[BENCH_MAX_TIMINGS];
    size_t n_timings;
    double total_seconds;
    bench_figure figures[BENCH_MAX_FIGURES];
    size_t n_figures;
} bench_report;

/* Whether any row is of `method` (vae-self runs only with --self-train). */
int bench_has_method(const bench_report *r, int method);

/* The row of (method, shift, disks, radius), or NULL. */
const bench_row *bench_find(const bench_report *r, int method, double shift, size_t disks, double radius);

void report_write_csv(const char *path, const bench_report *r);
void report_write_summary(const char *path, const bench_report *r);
void report_write_html(const char *path, const bench_report *r);
/* The F1 table (Markdown) and the total wall time. */
void report_print(FILE *fp, const bench_report *r);

#endif
