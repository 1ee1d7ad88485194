/* Cutting a cube into T × T-pixel tiles and putting it back together. */
#include "cube_private.h"

#include <string.h>

size_t evae_tile_count(size_t n, size_t tile, size_t stride)
{
    size_t last = n - tile;
    return last / stride + 1 + (last % stride != 0);
}

size_t evae_tile_origin(size_t i, size_t n, size_t tile, size_t stride)
{
    size_t o = i * stride;
    return o > n - tile ? n - tile : o;
}

eelsvae_status eelsvae_tiling(size_t ny, size_t nx, size_t tile, size_t stride, size_t *tiles_y, size_t *tiles_x)
{
    if (tile == 0 || !tiles_y || !tiles_x)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "tiling: tile side 0 or NULL output");
    if (stride > tile)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "tiling: stride %zu is larger than the %zu-pixel tile, so pixels would be left out", stride,
                         tile);
    if (tile > ny || tile > nx)
        return evae_fail(EELSVAE_ERR_DIMENSION, "tiling: a %zu × %zu tile does not fit a %zu × %zu scan", tile, tile,
                         ny, nx);
    if (stride == 0) stride = tile;
    *tiles_y = evae_tile_count(ny, tile, stride);
    *tiles_x = evae_tile_count(nx, tile, stride);
    return EELSVAE_OK;
}

/* Floats a full tiling of `cube` needs, checked against the caller's count. */
static eelsvae_status tiles_size(const eelsvae_cube *cube, size_t tile, size_t stride, size_t count, size_t *ty,
                                 size_t *tx)
{
    EVAE_TRY(eelsvae_tiling(cube->ny, cube->nx, tile, stride, ty, tx));
    size_t need = 0;
    EVAE_TRY(evae_mul4(*ty * *tx, tile, tile, cube->ne, &need, "tile buffer"));
    if (count != need)
        return evae_fail(EELSVAE_ERR_DIMENSION, "tiles: buffer holds %zu floats, %zu tiles of %zu × %zu × %zu need %zu",
                         count, *ty * *tx, tile, tile, cube->ne, need);
    return EELSVAE_OK;
}

eelsvae_status eelsvae_cube_to_tiles(const eelsvae_cube *cube, size_t tile, size_t stride, float *tiles,
                                     size_t count)
{
    if (!cube || !tiles) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "to_tiles: NULL argument");
    size_t ty = 0, tx = 0;
    EVAE_TRY(tiles_size(cube, tile, stride, count, &ty, &tx));
    if (stride == 0) stride = tile;
    size_t row = tile * cube->ne; /* floats in one tile row */
    for (size_t i = 0; i < ty; i++)
        for (size_t j = 0; j < tx; j++) {
            size_t y0 = evae_tile_origin(i, cube->ny, tile, stride), x0 = evae_tile_origin(j, cube->nx, tile, stride);
            float *dst = tiles + (i * tx + j) * tile * row;
            for (size_t r = 0; r < tile; r++)
                memcpy(dst + r * row, cube->data + ((y0 + r) * cube->nx + x0) * cube->ne, row * sizeof(float));
        }
    return EELSVAE_OK;
}

/* Weight of offset r in a tile of side T. Tiles that overlap (stride < T)
 * blend with weights that fall towards their edges — min(r + 1, T − r), a
 * triangle — so that a pixel's value passes smoothly from one tile to the
 * next and a map shows no seam where the tile coverage changes; without
 * overlap every weight is 1 and a pixel is its tile's value exactly. */
static float tile_weight(size_t r, size_t tile, size_t stride)
{
    if (stride >= tile) return 1.0f;
    size_t a = r + 1, b = tile - r;
    return (float)(a < b ? a : b);
}

eelsvae_status eelsvae_cube_from_tiles(eelsvae_cube *cube, size_t tile, size_t stride, const float *tiles,
                                       size_t count)
{
    if (!cube || !tiles) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "from_tiles: NULL argument");
    size_t ty = 0, tx = 0;
    EVAE_TRY(tiles_size(cube, tile, stride, count, &ty, &tx));
    if (stride == 0) stride = tile;
    float *weight = NULL; /* Σ of the tile weights at each pixel */
    EVAE_TRY(evae_alloc_zeros(evae_cube_pixels(cube), sizeof *weight, (void **)&weight, "tile overlap weights"));
    memset(cube->data, 0, evae_cube_samples(cube) * sizeof(float));
    size_t ne = cube->ne;
    for (size_t i = 0; i < ty; i++)
        for (size_t j = 0; j < tx; j++) {
            size_t y0 = evae_tile_origin(i, cube->ny, tile, stride), x0 = evae_tile_origin(j, cube->nx, tile, stride);
            const float *src = tiles + (i * tx + j) * tile * tile * ne;
            for (size_t r = 0; r < tile; r++)
                for (size_t c = 0; c < tile; c++) {
                    size_t p = (y0 + r) * cube->nx + x0 + c;
                    float *d = cube->data + p * ne, w = tile_weight(r, tile, stride) * tile_weight(c, tile, stride);
                    const float *s = src + (r * tile + c) * ne;
                    for (size_t e = 0; e < ne; e++) d[e] += w * s[e];
                    weight[p] += w;
                }
        }
    for (size_t p = 0; p < evae_cube_pixels(cube); p++) {
        if (weight[p] == 1.0f) continue; /* one tile of weight 1: the value itself */
        float inv = 1.0f / weight[p];
        for (size_t e = 0; e < ne; e++) cube->data[p * ne + e] *= inv;
    }
    evae_free(weight);
    return EELSVAE_OK;
}
