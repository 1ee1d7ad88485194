#!/usr/bin/python3
"""Write the fuzz seed corpora that Python can make, from our own numbers:

  corpus/npy   .npy files written by NumPy: every dtype the reader takes,
               both byte orders, C and Fortran order, versions 1.0/2.0/3.0,
               0-D to 4-D, an empty array;
  corpus/rpl   Ripple files written by HyperSpy (vector, image and
               dont-care layouts) and a few written by hand, each as one
               input: the .rpl header, the line "@@RAW@@", the .raw bytes
               (the layout fuzz/fuzz_rpl.c splits);
  corpus/hspy  small .hspy files written by HyperSpy;
  corpus/dm    by fuzz/make_dm_seeds.py.

The model and PCA seeds come from the library itself (fuzz/make_seeds.c).
HyperSpy is optional: without it the rpl and hspy seeds are skipped.

    /usr/bin/python3 fuzz/make_seeds.py [CORPUS_DIR]     (default fuzz/corpus)
"""
import io
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SEPARATOR = b'\n@@RAW@@\n'


def write(path, blob):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(blob)
    print('%s: %d bytes' % (path, len(blob)))


def npy_bytes(array, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array, allow_pickle=False)
    else:
        np.lib.format.write_array(buf, array, version=version, allow_pickle=False)
    return buf.getvalue()


def npy_seeds(out):
    ramp = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4) * 0.75 - 3.0
    seeds = {
        'f4-3d.npy': npy_bytes(ramp.astype('<f4')),
        'f4-3d-big.npy': npy_bytes(ramp.astype('>f4')),
        'f8-3d-fortran.npy': npy_bytes(np.asfortranarray(ramp.astype('<f8'))),
        'f2-2d.npy': npy_bytes(ramp[0].astype('<f2')),
        'i2-3d-big-fortran.npy': npy_bytes(np.asfortranarray(ramp.astype('>i2'))),
        'u2-1d.npy': npy_bytes((ramp.ravel() + 5).astype('<u2')),
        'i1-2d.npy': npy_bytes(ramp[1].astype('i1')),
        'u1-3d.npy': npy_bytes((ramp + 5).astype('u1')),
        'i4-1d.npy': npy_bytes(ramp.ravel().astype('<i4')),
        'u4-2d-big.npy': npy_bytes((ramp[0] + 5).astype('>u4')),
        'i8-3d.npy': npy_bytes(ramp.astype('<i8')),
        'u8-1d-big.npy': npy_bytes((ramp.ravel() + 5).astype('>u8')),
        'b1-2d.npy': npy_bytes(ramp[0] > 0),
        'f4-0d.npy': npy_bytes(np.float32(2.5).reshape(())),
        'f4-empty.npy': npy_bytes(np.zeros((2, 0, 3), dtype='<f4')),
        'f4-4d.npy': npy_bytes(np.arange(16, dtype='<f4').reshape(2, 2, 2, 2)),
        'f4-v2.npy': npy_bytes(ramp.astype('<f4'), version=(2, 0)),
        'f4-v3.npy': npy_bytes(ramp.astype('<f4'), version=(3, 0)),
        'structured.npy': npy_bytes(np.zeros(2, dtype=[('a', '<f4'), ('b', '<i2')])),
    }
    for name, blob in seeds.items():
        write(os.path.join(out, 'npy', name), blob)


def rpl_hand_seeds(out):
    """Headers in the forms Lispix and other programs write, beside HyperSpy's."""
    si = (np.arange(2 * 3 * 4, dtype='<u2').reshape(2, 3, 4) * 7).tobytes()
    headers = {
        'hand-vector-u2.rpl': (b'key\tvalue\nwidth\t3\nheight\t2\ndepth\t4\noffset\t0\ndata-length\t2\n'
                               b'data-type\tunsigned\nbyte-order\tlittle-endian\nrecord-by\tvector\n'
                               b'ev-per-chan\t0.5\ndepth-origin\t686\ndepth-units\teV\nsignal\tEELS\n', si),
        'hand-image-offset.rpl': (b'; written by hand\r\nkey\tvalue\r\nwidth\t3\r\nheight\t2\r\ndepth\t4\r\n'
                                  b'offset\t8\r\ndata-length\t2\r\ndata-type\tsigned\r\n'
                                  b'byte-order\tbig-endian\r\nrecord-by\timage\r\n',
                                  bytes(8) + (np.arange(24, dtype='>i2') - 12).tobytes()),
        'hand-float-dontcare.rpl': (b'width 4\nheight 1\ndepth 1\noffset 0\ndata-length 4\ndata-type float\n'
                                    b'byte-order dont-care\nrecord-by dont-care\n',
                                    np.arange(4, dtype='<f4').tobytes()),
    }
    for name, (header, raw) in headers.items():
        write(os.path.join(out, 'rpl', name), header + SEPARATOR + raw)


def hyperspy_seeds(out):
    try:
        import hyperspy.api as hs
    except Exception as e:  # HyperSpy is optional
        print('HyperSpy not available (%s): no rpl/hspy seeds from it' % e)
        return
    ny, nx, ne = 2, 3, 8
    si = hs.signals.Signal1D(np.arange(ny * nx * ne, dtype=np.float32).reshape(ny, nx, ne) + 100.0)
    si.set_signal_type('EELS')
    si.metadata.General.title = 'seed SI'
    for axis, (name, scale, offset, units) in zip(si.axes_manager._axes,
                                                  [('y', 2.0, 0.0, 'nm'), ('x', 2.0, 0.0, 'nm'),
                                                   ('Energy loss', 0.5, 686.0, 'eV')]):
        axis.name, axis.scale, axis.offset, axis.units = name, scale, offset, units
    spectrum = hs.signals.Signal1D(np.arange(16, dtype=np.int32) - 4)
    image = hs.signals.Signal2D(np.arange(12, dtype=np.uint8).reshape(3, 4))
    stack = hs.signals.Signal2D(np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4))
    with tempfile.TemporaryDirectory() as tmp:
        for name, signal in [('hs-si-vector', si), ('hs-spectrum', spectrum), ('hs-image', image),
                             ('hs-stack-image', stack)]:
            rpl = os.path.join(tmp, name + '.rpl')
            signal.save(rpl, overwrite=True)
            with open(rpl, 'rb') as f:
                header = f.read()
            with open(os.path.join(tmp, name + '.raw'), 'rb') as f:
                raw = f.read()
            write(os.path.join(out, 'rpl', name + '.rpl'), header + SEPARATOR + raw)
        for name, signal in [('hs-si', si), ('hs-spectrum', spectrum)]:
            path = os.path.join(tmp, name + '.hspy')
            signal.save(path, overwrite=True)
            with open(path, 'rb') as f:
                write(os.path.join(out, 'hspy', name + '.hspy'), f.read())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'corpus')
    npy_seeds(out)
    rpl_hand_seeds(out)
    hyperspy_seeds(out)
    sys.path.insert(0, HERE)
    import make_dm_seeds
    for name, (blob, _) in make_dm_seeds.files():
        write(os.path.join(out, 'dm', name), blob)


if __name__ == '__main__':
    main()
