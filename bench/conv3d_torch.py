"""PyTorch's time for the 3D-CVAE's eight convolution layers (CPU, float32).

Run by bench/conv3d_bench.c (--torch) or by hand. Prints one line per layer,
"layer i fwd <ms> bwd <ms>", best of --reps; the backward computes dx, dw and
db, except for the first layer (no dx), as a network's first layer does.
"""
import argparse
import time

import torch
import torch.nn.functional as F


def layers(T, E, c):
    """(in_ch, out_ch, in_dims, k, s, p, output_padding, transposed) of the model."""
    return [
        (1, c[0], (T, T, E), (1, 1, 7), (1, 1, 2), (0, 0, 3), (0, 0, 0), False),
        (c[0], c[1], (T, T, E // 2), (3, 3, 5), (1, 1, 2), (1, 1, 2), (0, 0, 0), False),
        (c[1], c[2], (T, T, E // 4), (3, 3, 3), (2, 2, 2), (1, 1, 1), (0, 0, 0), False),
        (c[2], c[3], (T // 2, T // 2, E // 8), (3, 3, 3), (2, 2, 2), (1, 1, 1), (0, 0, 0), False),
        (c[3], c[2], (T // 4, T // 4, E // 16), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), True),
        (c[2], c[1], (T // 2, T // 2, E // 8), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), True),
        (c[1], c[0], (T, T, E // 4), (3, 3, 5), (1, 1, 2), (1, 1, 2), (0, 0, 1), True),
        (c[0], 1, (T, T, E // 2), (1, 1, 7), (1, 1, 2), (0, 0, 3), (0, 0, 1), True),
    ]


def time_layer(batch, spec, reps, first, clock):
    ci, co, dims, k, s, p, op, transposed = spec
    x = torch.rand(batch, ci, *dims, requires_grad=not first)
    w = (torch.rand((ci, co) + k if transposed else (co, ci) + k) - 0.5).requires_grad_()
    b = torch.rand(co).requires_grad_()

    def forward():
        if transposed:
            return F.conv_transpose3d(x, w, b, s, p, op)
        return F.conv3d(x, w, b, s, p)

    dy = torch.rand_like(forward())
    best_f = best_b = float("inf")
    for _ in range(reps + 1):  # the first run warms up
        t0 = clock()
        y = forward()
        t1 = clock()
        y.backward(dy)
        t2 = clock()
        best_f, best_b = min(best_f, t1 - t0), min(best_b, t2 - t1)
    return 1e3 * best_f, 1e3 * best_b


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tile", type=int, default=24)
    ap.add_argument("--energy", type=int, default=256)
    ap.add_argument("--channels", default="8,16,32,64")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cpu-clock", action="store_true",
                    help="time with the process's CPU time (for --threads 1 on a busy machine)")
    a = ap.parse_args()
    clock = time.process_time if a.cpu_clock else time.perf_counter
    torch.set_num_threads(a.threads)
    c = [int(v) for v in a.channels.split(",")]
    for i, spec in enumerate(layers(a.tile, a.energy, c)):
        f, b = time_layer(a.batch, spec, a.reps, i == 0, clock)
        print(f"layer {i} fwd {f:.3f} bwd {b:.3f}", flush=True)


if __name__ == "__main__":
    main()
