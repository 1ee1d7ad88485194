#!/usr/bin/python3
"""scikit-image's threshold_otsu on awkward data, for tests/test_score.c.

Usage: score_otsu_cases.py FILE CASES N BINS...
FILE holds CASES rows of N raw little-endian float32; prints one threshold
per (row, bins) pair, rows outermost, as repr(float).
"""
import sys
import warnings

import numpy as np
from skimage.filters import threshold_otsu

# When float32 bin edges repeat, skimage divides 0/0 for the empty
# leading bins and warns; the result (np.argmax picks the NaN) is still the
# reference the library reproduces.
warnings.simplefilter("ignore", RuntimeWarning)

path, cases, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
bins = [int(b) for b in sys.argv[4:]]
data = np.fromfile(path, dtype="<f4").reshape(cases, n)
for row in data:
    for b in bins:
        print(repr(float(threshold_otsu(row, nbins=b))))
