#!/usr/bin/python3
"""Write small Gatan DigitalMicrograph 3 and 4 files: the DM fuzz seeds.

The files are made here from our own numbers (no Gatan or HyperSpy test
data is copied), in the tag layout DigitalMicrograph writes: a root tag
group holding an ImageList of images, each with ImageData (Calibrations,
Data, DataType, Dimensions, PixelDepth), ImageTags and a Name, and a
Thumbnails group naming the thumbnail image. With --check, each file is
read back with HyperSpy (when installed) and compared with what was meant.

    fuzz/make_dm_seeds.py [--check] [OUTDIR]      (default fuzz/corpus/dm)
"""
import os
import struct
import sys

import numpy as np

# Encoded element types of DM tags.
SHORT, LONG, USHORT, ULONG, FLOAT, DOUBLE, BOOL, CHAR, OCTET = 2, 3, 4, 5, 6, 7, 8, 9, 10
STRUCT, STRING, ARRAY = 15, 18, 20
TYPE_CODE = {np.dtype('int16'): SHORT, np.dtype('int32'): LONG, np.dtype('uint16'): USHORT,
             np.dtype('uint32'): ULONG, np.dtype('float32'): FLOAT, np.dtype('float64'): DOUBLE,
             np.dtype('int8'): CHAR, np.dtype('uint8'): OCTET}
# ImageData.DataType of an image's elements.
IMAGE_TYPE = {np.dtype('int16'): 1, np.dtype('float32'): 2, np.dtype('uint8'): 6, np.dtype('int32'): 7,
              np.dtype('int8'): 9, np.dtype('uint16'): 10, np.dtype('uint32'): 11, np.dtype('float64'): 12}


class Group:
    def __init__(self, *tags):
        self.tags = list(tags)  # (name, Group | Data)


class Data:
    """One data tag: its info array (the type description) and its bytes."""

    def __init__(self, info, payload):
        self.info = info
        self.payload = payload


def simple(code, value, endian):
    fmt = {SHORT: 'h', LONG: 'i', USHORT: 'H', ULONG: 'I', FLOAT: 'f', DOUBLE: 'd', BOOL: 'B', CHAR: 'b',
           OCTET: 'B'}[code]
    return Data([code], struct.pack(endian + fmt, value))


def text(s, endian):
    """A string as DM keeps it in tag data: an array of UTF-16 code units."""
    units = np.frombuffer(s.encode('utf-16-le'), dtype='<u2')
    return Data([ARRAY, USHORT, len(units)], units.astype(endian + 'u2').tobytes())


def array(values, endian):
    values = np.ascontiguousarray(values)
    code = TYPE_CODE[values.dtype]
    return Data([ARRAY, code, values.size], values.astype(values.dtype.newbyteorder(endian)).tobytes())


def unique_id(endian):
    fields = [(ULONG, 17), (ULONG, 4242), (ULONG, 7), (ULONG, 99)]
    info = [STRUCT, 0, len(fields)]
    for code, _ in fields:
        info += [0, code]
    return Data(info, b''.join(struct.pack(endian + 'I', v) for _, v in fields))


class Writer:
    def __init__(self, version, little_endian):
        self.version = version
        self.endian = '<' if little_endian else '>'
        self.little = little_endian
        self.count = '>I' if version == 3 else '>Q'  # sizes and counts in the tag structure

    def group_body(self, group):
        out = struct.pack('>BB', 0, 1) + struct.pack(self.count, len(group.tags))
        for name, node in group.tags:
            out += self.tag(name, node)
        return out

    def tag(self, name, node):
        raw_name = name.encode('latin-1')
        head = struct.pack('>BH', 20 if isinstance(node, Group) else 21, len(raw_name)) + raw_name
        if isinstance(node, Group):
            body = self.group_body(node)
        else:
            body = b'%%%%' + struct.pack(self.count, len(node.info))
            body += b''.join(struct.pack(self.count, v) for v in node.info) + node.payload
        if self.version == 4:
            head += struct.pack('>Q', len(body))  # DM4: the bytes of the tag after this field
        return head + body

    def file(self, root):
        tags = self.group_body(root) + bytes(8)  # DM ends the root group with 8 zero bytes
        if self.version == 3:
            # DM3 records the file size less 16 bytes, DM4 less 24
            header = struct.pack('>III', 3, len(tags) + 12 - 16, 1 if self.little else 0)
        else:
            header = struct.pack('>IQI', 4, len(tags) + 16 - 24, 1 if self.little else 0)
        return header + tags


def image(name, data, dims, origins, scales, units, endian, tags=None):
    """An ImageList entry. `data` is in DM order (x fastest); dims, origins,
    scales and units run x, y, (E) as DM's Dimensions do."""
    dimension = Group(*[('', Group(('Origin', simple(FLOAT, o, endian)), ('Scale', simple(FLOAT, s, endian)),
                                   ('Units', text(u, endian))))
                        for o, s, u in zip(origins, scales, units)])
    calibrations = Group(('Brightness', Group(('Origin', simple(FLOAT, 0.0, endian)),
                                              ('Scale', simple(FLOAT, 1.0, endian)),
                                              ('Units', text('counts', endian)))),
                         ('Dimension', dimension),
                         ('DisplayCalibratedUnits', simple(BOOL, 1, endian)))
    image_data = Group(('Calibrations', calibrations),
                       ('Data', array(data.ravel(), endian)),
                       ('DataType', simple(LONG, IMAGE_TYPE[data.dtype], endian)),
                       ('Dimensions', Group(*[('', simple(LONG, d, endian)) for d in dims])),
                       ('PixelDepth', simple(LONG, data.dtype.itemsize, endian)))
    return Group(('ImageData', image_data), ('ImageTags', tags or Group()), ('Name', text(name, endian)),
                 ('UniqueID', unique_id(endian)))


def eels_tags(fmt, endian):
    return Group(
        ('DataBar', Group(('Acquisition Date', text('2/3/2021', endian)),
                          ('Acquisition Time', text('1:02:03 PM', endian)))),
        ('EELS', Group(('Acquisition', Group(('Exposure (s)', simple(DOUBLE, 0.05, endian)))),
                       ('Experimental Conditions', Group(
                           ('Collection semi-angle (mrad)', simple(DOUBLE, 25.0, endian)),
                           ('Convergence semi-angle (mrad)', simple(DOUBLE, 12.5, endian)))))),
        ('Meta Data', Group(('Format', text(fmt, endian)), ('Signal', text('EELS', endian)))),
        ('Microscope Info', Group(('Voltage', simple(DOUBLE, 200000.0, endian)),
                                  ('Name', text('Test TEM', endian)))))


def spectrum_file(version):
    """A 16-channel float32 EELS spectrum, 686 eV + 0.5 eV per channel."""
    e = '<'
    counts = (1000.0 / (1.0 + np.arange(16, dtype=np.float32))).astype(np.float32)
    img = image('spectrum', counts, [16], [-686.0 / 0.5], [0.5], ['eV'], e, eels_tags('Spectrum', e))
    root = Group(('ImageList', Group(('', img))))
    expect = dict(shape=(16,), data=counts, offsets=[686.0], scales=[0.5], units=['eV'], title='spectrum',
                  signal_type='EELS')
    return Writer(version, True).file(root), expect


def si_file(version):
    """A thumbnail and a 2 × 3 × 8 float32 EELS spectrum image (y, x, E)."""
    e = '<'
    ny, nx, ne = 2, 3, 8
    si = np.arange(ny * nx * ne, dtype=np.float32).reshape(ny, nx, ne) * 1.5 + 10.0
    thumb = np.array([[0, 64], [128, 255]], dtype=np.uint8)
    dm_order = np.ascontiguousarray(np.transpose(si, (2, 0, 1)))  # (E, y, x): x fastest in the file
    img = image('spectrum image', dm_order, [nx, ny, ne], [0.0, 0.0, -400.0 / 0.25], [2.0, 2.0, 0.25],
                ['nm', 'nm', 'eV'], e, eels_tags('Spectrum image', e))
    tn = image('thumbnail', thumb, [2, 2], [0.0, 0.0], [1.0, 1.0], ['', ''], e)
    root = Group(('ImageList', Group(('', tn), ('', img))),
                 ('Thumbnails', Group(('', Group(('ImageIndex', simple(ULONG, 0, e)))))))
    expect = dict(shape=(ny, nx, ne), data=si, offsets=[0.0, 0.0, 400.0], scales=[2.0, 2.0, 0.25],
                  units=['nm', 'nm', 'eV'], title='spectrum image', signal_type='EELS')
    return Writer(version, True).file(root), expect


def image_big_endian_file():
    """A 3 × 4 int16 image with big-endian tag data (the byte-order flag 0)."""
    e = '>'
    pixels = (np.arange(12, dtype=np.int16).reshape(3, 4) - 5) * 300
    img = image('big-endian image', pixels, [4, 3], [0.0, 0.0], [0.1, 0.1], ['nm', 'nm'], e)
    root = Group(('ImageList', Group(('', img))))
    expect = dict(shape=(3, 4), data=pixels, offsets=[0.0, 0.0], scales=[0.1, 0.1], units=['nm', 'nm'],
                  title='big-endian image', signal_type='', hyperspy_swaps=True)
    return Writer(3, False).file(root), expect


def files():
    yield 'spectrum.dm3', spectrum_file(3)
    yield 'spectrum.dm4', spectrum_file(4)
    yield 'si.dm3', si_file(3)
    yield 'si.dm4', si_file(4)
    yield 'image-be.dm3', image_big_endian_file()


def check(path, expect):
    import hyperspy.api as hs
    s = hs.load(path)
    assert s.data.shape == expect['shape'], (path, s.data.shape)
    data = s.data
    if expect.get('hyperspy_swaps'):
        # HyperSpy 1.7 reads image data little-endian whatever the file's byte-order flag says
        data = data.byteswap()
    assert np.array_equal(data, expect['data']), path
    axes = s.axes_manager._axes  # C order of s.data
    assert [a.units for a in axes] == expect['units'], (path, [a.units for a in axes])
    assert np.allclose([a.offset for a in axes], expect['offsets']), (path, [a.offset for a in axes])
    assert np.allclose([a.scale for a in axes], expect['scales']), (path, [a.scale for a in axes])
    assert s.metadata.General.title == expect['title'], path
    assert s.metadata.Signal.signal_type == expect['signal_type'], path


def main():
    args = [a for a in sys.argv[1:] if a != '--check']
    outdir = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'dm')
    os.makedirs(outdir, exist_ok=True)
    for name, (blob, expect) in files():
        path = os.path.join(outdir, name)
        with open(path, 'wb') as f:
            f.write(blob)
        if '--check' in sys.argv:
            check(path, expect)
        print('%s: %d bytes' % (path, len(blob)))


if __name__ == '__main__':
    main()
