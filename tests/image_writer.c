/* Writes known score maps with the example programs' image writers
 * (examples/common/image.c) for tests/image_test.sh to read back:
 *   line.tif   6 × 49 float map, pixel size 0.5 nm (y) × 0.25 nm (x), with a
 *              two-line description
 *   micron.tif the same map in µm (ImageJ's "micron")
 *   line.png   the same map as a heatmap, lo 0, hi 1, "PCC", three flagged pixels
 *   disks.png  192 × 192 with three flagged disks and a NaN pixel
 *   big.png    1024 × 1024, one flagged disk
 *   huge.png   2000 × 3300 (averaged down), one flagged disk
 * and prints, per PNG, its geometry, and the values and pixel positions the
 * test checks, as "key value…" lines. Exit 77 when built without libtiff or
 * libpng; 1 when a writer fails where it should not or succeeds where it
 * should not (a missing directory, a directory in the way, a zero pixel
 * size). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../examples/common/cli.h"
#include "../examples/common/image.h"

#if defined(EELSVAE_HAVE_TIFF) && defined(EELSVAE_HAVE_PNG)
static void print_geometry(const char *name, const cli_map_geometry *g)
{
    printf("%s geometry %zu %zu %zu %zu %zu %zu %zu %zu\n", name, g->width, g->height, g->map_x, g->map_y, g->map_w,
           g->map_h, g->zoom, g->shrink);
}

/* value 0.2 + 0.6 · (a smooth pattern), plus disks of radius r flagged */
static void disk_map(float *map, uint8_t *mask, size_t ny, size_t nx, const double (*disks)[3], size_t n)
{
    for (size_t y = 0; y < ny; y++)
        for (size_t x = 0; x < nx; x++) {
            double v = 0.5 + 0.4 * sin((double)x / (double)nx * 6.0) * cos((double)y / (double)ny * 4.0);
            uint8_t f = 0;
            for (size_t k = 0; k < n; k++) {
                double dy = (double)y - disks[k][0], dx = (double)x - disks[k][1];
                if (dy * dy + dx * dx <= disks[k][2] * disks[k][2]) f = 1, v = 0.05 + 0.1 * (double)k;
            }
            map[y * nx + x] = (float)v;
            mask[y * nx + x] = f;
        }
}

static int write_disks(const char *dir, const char *name, size_t ny, size_t nx, const double (*disks)[3], size_t n,
                       int with_nan)
{
    float *map = malloc(ny * nx * sizeof *map);
    uint8_t *mask = malloc(ny * nx);
    if (!map || !mask) return 1;
    disk_map(map, mask, ny, nx, disks, n);
    if (with_nan) map[5 * nx + 7] = NAN;
    cli_map_geometry g = cli_map_png_geometry(ny, nx, "PCC");
    print_geometry(name, &g);
    /* a flagged pixel at a disk's centre and its value */
    size_t cy = (size_t)disks[0][0], cx = (size_t)disks[0][1];
    printf("%s centre %zu %zu %.9g\n", name, cy, cx, (double)map[cy * nx + cx]);
    char file[64];
    snprintf(file, sizeof file, "%s.png", name);
    int rc = cli_write_map_png(cli_join(dir, file), map, mask, ny, nx, 0.0, 1.0, "PCC");
    free(map);
    free(mask);
    return rc != 0;
}

#endif

int main(int argc, char **argv)
{
    cli_init(argv[0]);
#if !defined(EELSVAE_HAVE_TIFF) || !defined(EELSVAE_HAVE_PNG)
    (void)argc;
    puts("skip: the example programs are built without libtiff or libpng");
    return 77;
#else
    if (argc != 2) {
        fprintf(stderr, "usage: image_writer OUT_DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    enum { NY = 6, NX = 49 };
    static float map[NY * NX];
    static uint8_t mask[NY * NX];
    /* values with all their bits in use: no decimal round trip would keep them */
    for (size_t i = 0; i < NY * NX; i++) map[i] = (float)(0.5 + 0.45 * sin(0.37 * (double)i + 0.1) / 1.000001);
    map[3] = -2.5e-7f;   /* negative and tiny: still bit for bit */
    map[NX + 4] = NAN;   /* grey in the PNG, NaN in the TIFF */
    map[2 * NX + 10] = 0.75f;
    mask[2 * NX + 10] = 1; /* one flagged pixel … */
    mask[4 * NX + 20] = mask[4 * NX + 21] = 1; /* … and a pair */
    FILE *f = fopen(cli_join(dir, "line.f32"), "wb");
    if (!f || fwrite(map, sizeof map, 1, f) != 1 || fclose(f) != 0) {
        perror("line.f32");
        return 1;
    }
    const char *desc = "eelsvae test map: PCC over 690-730 eV\nsource: tests/image_writer.c (µ ✓)";
    if (cli_write_tiff(cli_join(dir, "line.tif"), map, NY, NX, 0.5, 0.25, "nm", desc) != 0) return 1;
    if (cli_write_tiff(cli_join(dir, "micron.tif"), map, NY, NX, 0.002, 0.002, "\xC2\xB5m", NULL) != 0) return 1;

    cli_map_geometry g = cli_map_png_geometry(NY, NX, "PCC");
    print_geometry("line", &g);
    printf("line centre 2 10 %.9g\n", (double)map[2 * NX + 10]);
    printf("line nan 1 4\n");
    if (cli_write_map_png(cli_join(dir, "line.png"), map, mask, NY, NX, 0.0, 1.0, "PCC") != 0) return 1;

    static const double three[3][3] = {{60, 50, 12}, {130, 140, 20}, {40, 150, 6}};
    static const double one_big[1][3] = {{500, 400, 80}};
    static const double one_huge[1][3] = {{1000, 1600, 200}};
    if (write_disks(dir, "disks", 192, 192, three, 3, 1)) return 1;
    if (write_disks(dir, "big", 1024, 1024, one_big, 1, 0)) return 1;
    if (write_disks(dir, "huge", 2000, 3300, one_huge, 1, 0)) return 1;

    /* an unwritable place: -1, a message naming it, no temporary left */
    if (cli_write_tiff(cli_join(dir, "no-such-dir/x.tif"), map, NY, NX, 1, 1, "nm", NULL) != -1) return 1;
    /* a directory in the way: written, the rename fails, the temporary goes */
    if (mkdir(cli_join(dir, "a-directory"), 0777) != 0) return 1;
    if (cli_write_tiff(cli_join(dir, "a-directory"), map, NY, NX, 1, 1, "nm", NULL) != -1) return 1;
    /* an invalid pixel size */
    if (cli_write_tiff(cli_join(dir, "bad.tif"), map, NY, NX, 0, 1, "nm", NULL) != -1) return 1;
    return 0;
#endif
}
