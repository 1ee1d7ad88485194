"""Each mirrored options struct has the C struct's size and every field's offset and size.

A small C program, compiled against the public headers, prints sizeof and
offsetof; skipped when there is no C compiler or no headers.
"""
import os
import pathlib
import shutil
import subprocess

import pytest

from eelsvae import _lib

from conftest import source_dir


def _include_dir():
    env = os.environ.get("EELSVAE_INCLUDE_DIR")
    if env and (pathlib.Path(env) / "eelsvae" / "eelsvae.h").is_file():
        return pathlib.Path(env)
    src = source_dir()
    return src / "include" if src else None


def _program():
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <eelsvae/eelsvae.h>",
             "#define FIELD(T, f) printf(\"%s %s %zu %zu\\n\", #T, #f, offsetof(T, f), sizeof(((T *)0)->f))",
             "int main(void) {"]
    for cname, struct in _lib.STRUCTS.items():
        lines.append('    printf("%%s sizeof 0 %%zu\\n", "%s", sizeof(%s));' % (cname, cname))
        for field, _ in struct._fields_:
            lines.append("    FIELD(%s, %s);" % (cname, field))
    lines += ["    return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to print the C struct layout")
    include = _include_dir()
    if include is None:
        pytest.skip("no public headers (set EELSVAE_INCLUDE_DIR)")
    work = tmp_path_factory.mktemp("layout")
    (work / "layout.c").write_text(_program())
    exe = work / "layout"
    build = subprocess.run([cc, "-std=c11", "-Wall", "-I", str(include), str(work / "layout.c"), "-o", str(exe)],
                           capture_output=True, text=True, timeout=60)
    assert build.returncode == 0, build.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30, check=True).stdout
    layout = {}
    for line in out.splitlines():
        cname, field, offset, size = line.split()
        layout[(cname, field)] = (int(offset), int(size))
    return layout


@pytest.mark.parametrize("cname", sorted(_lib.STRUCTS))
def test_struct_layout_matches_c(c_layout, cname):
    import ctypes
    struct = _lib.STRUCTS[cname]
    assert ctypes.sizeof(struct) == c_layout[(cname, "sizeof")][1], "sizeof(%s)" % cname
    for field, _ in struct._fields_:
        descr = getattr(struct, field)
        assert (descr.offset, descr.size) == c_layout[(cname, field)], "%s.%s" % (cname, field)


_INITS = {
    "eelsvae_preprocess_options": lambda p, n: _lib.lib.eelsvae_preprocess_options_init_sized(p, 0, n),
    "eelsvae_synth_options": lambda p, n: _lib.lib.eelsvae_synth_options_init_sized(p, n),
    "eelsvae_pca_options": lambda p, n: _lib.lib.eelsvae_pca_options_init_sized(p, n),
    "eelsvae_scorer_options": lambda p, n: _lib.lib.eelsvae_scorer_options_init_sized(p, n),
    "eelsvae_model_options": lambda p, n: _lib.lib.eelsvae_model_options_init_sized(p, 0, n),
    "eelsvae_train_options": lambda p, n: _lib.lib.eelsvae_train_options_init_sized(p, 0, n),
}


@pytest.mark.parametrize("cname", sorted(_INITS))
def test_library_init_writes_only_the_size_it_is_given(cname):
    # The init writes exactly the bytes the caller says it has and sets
    # struct_size to that: the whole mirror, or (an older caller) only a
    # prefix of it.  Canary bytes after the given size must survive.
    import ctypes
    struct = _lib.STRUCTS[cname]
    second = getattr(struct, struct._fields_[1][0])
    for size in (ctypes.sizeof(struct), second.offset + second.size):
        room = ctypes.create_string_buffer(b"\xa5" * (size + 64), size + 64)
        _INITS[cname](ctypes.cast(room, ctypes.POINTER(struct)), size)
        assert ctypes.c_size_t.from_buffer(room).value == size, cname
        assert room.raw[size:] == b"\xa5" * 64, "%s: init wrote past the %d bytes it was given" % (cname, size)
        assert room.raw[second.offset:second.offset + second.size] != b"\xa5" * second.size, cname


@pytest.mark.parametrize("cname", sorted(_INITS))
def test_library_init_zeroes_a_newer_callers_tail(cname):
    # A struct longer than the library's (a newer header): the bytes past the
    # library's struct, up to the given size, are zeroed, none after it touched.
    import ctypes
    size = ctypes.sizeof(_lib.STRUCTS[cname])
    room = ctypes.create_string_buffer(b"\xa5" * (size + 96), size + 96)
    _INITS[cname](ctypes.cast(room, ctypes.POINTER(_lib.STRUCTS[cname])), size + 32)
    assert ctypes.c_size_t.from_buffer(room).value == size + 32
    assert room.raw[size:size + 32] == bytes(32), cname
    assert room.raw[size + 32:] == b"\xa5" * 64, cname


def test_library_init_refuses_a_size_without_struct_size():
    import ctypes
    room = ctypes.create_string_buffer(b"\xa5" * 64, 64)
    with pytest.raises(_lib.EelsvaeError) as err:
        _lib.lib.eelsvae_pca_options_init_sized(ctypes.cast(room, ctypes.POINTER(_lib.PcaOptions)), 4)
    assert err.value.status == _lib.Status.INVALID_ARGUMENT and "struct_size" in err.value.message
    assert room.raw == b"\xa5" * 64


_NEW_TRAILING = [("eelsvae_model_options", "energy_bin", 1), ("eelsvae_train_options", "min_tiles", 64),
                 ("eelsvae_train_options", "min_steps", 0), ("eelsvae_train_options", "outlier_cut", 3.0),
                 ("eelsvae_pca_options", "trim_fraction", 0.1)]


@pytest.mark.parametrize("cname, field, preset_value", _NEW_TRAILING)
def test_new_trailing_fields_older_and_newer_callers(cname, field, preset_value):
    # A caller built before the field (its struct ends where the field starts)
    # never has it written; one built with it gets the preset's value.
    import ctypes
    struct = _lib.STRUCTS[cname]
    descr = getattr(struct, field)
    assert descr.offset + descr.size <= ctypes.sizeof(struct)
    older = descr.offset
    room = ctypes.create_string_buffer(b"\xa5" * ctypes.sizeof(struct), ctypes.sizeof(struct))
    _INITS[cname](ctypes.cast(room, ctypes.POINTER(struct)), older)
    assert ctypes.c_size_t.from_buffer(room).value == older
    assert room.raw[older:] == b"\xa5" * (ctypes.sizeof(struct) - older)
    full = struct()
    _INITS[cname](ctypes.pointer(full), ctypes.sizeof(full))
    assert getattr(full, field) == preset_value


def test_edge_struct_is_filled_up_to_the_callers_size():
    # eelsvae_edge's struct_size is set by the caller; fields past it are left alone.
    import ctypes
    size = _lib.EdgeStruct.onset_ev.offset            # an older caller: element and shell only
    room = ctypes.create_string_buffer(b"\xa5" * ctypes.sizeof(_lib.EdgeStruct), ctypes.sizeof(_lib.EdgeStruct))
    ctypes.c_size_t.from_buffer(room).value = size
    _lib.lib.eelsvae_edge_lookup(b"O-K", ctypes.cast(room, ctypes.POINTER(_lib.EdgeStruct)))
    edge = _lib.EdgeStruct.from_buffer_copy(room)
    assert edge.struct_size == size and (edge.element, edge.shell) == (b"O", b"K")
    assert room.raw[size:] == b"\xa5" * (ctypes.sizeof(_lib.EdgeStruct) - size)
    with pytest.raises(_lib.EelsvaeError) as err:        # the window needs last_onset_ev
        _lib.lib.eelsvae_edge_window(ctypes.byref(edge), ctypes.byref(ctypes.c_double()),
                                     ctypes.byref(ctypes.c_double()))
    assert err.value.status == _lib.Status.INVALID_ARGUMENT
