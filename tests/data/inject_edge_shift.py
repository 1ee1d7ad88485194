#!/usr/bin/env python3
"""Inject an energy shift of one edge into a block of pixels of a real SI.

usage: inject_edge_shift.py SI OUT.hspy TRUTH.npy LO HI SHIFT Y,X [Y,X …]

Reads SI with HyperSpy (the oracle of what the file holds), shifts the part
of the spectrum of every pixel (Y, X) given that lies in [LO, HI] eV by
SHIFT eV — the new sample at E is the old spectrum at
E - SHIFT, linearly interpolated, as eelsvae_cube_inject_shift() does — and
writes the SI with its axes as OUT.hspy and the truth mask as TRUTH.npy.
"""
import logging
import sys
import warnings

import numpy as np

logging.disable(logging.CRITICAL)
warnings.filterwarnings("ignore")
import hyperspy.api as hs  # noqa: E402


def main(argv):
    src, out, truth_path = argv[1:4]
    lo, hi, shift = (float(v) for v in argv[4:7])
    pixels = [tuple(int(v) for v in p.split(",")) for p in argv[7:]]
    s = hs.load(src)
    axis = s.axes_manager.signal_axes[0]
    energy = axis.offset + axis.scale * np.arange(axis.size)
    inside = (energy >= lo) & (energy <= hi)
    data = s.data.astype(np.float32)
    truth = np.zeros(data.shape[:2], dtype=np.uint8)
    for y, x in pixels:
        truth[y, x] = 1
    for y, x in zip(*np.nonzero(truth)):
        spectrum = data[y, x].astype(np.float64)
        data[y, x, inside] = np.interp(energy[inside] - shift, energy, spectrum)
    s.data = data
    s.save(out, overwrite=True)
    np.save(truth_path, truth)


if __name__ == "__main__":
    main(sys.argv)
