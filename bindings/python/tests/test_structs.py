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


def test_library_init_sets_struct_size_to_the_mirror():
    # The library's own init writes sizeof(C struct) into struct_size; the
    # mirror must be exactly that big (this one needs no compiler).  The
    # struct lives in a larger buffer so that a too-small mirror cannot be
    # overrun by the init.
    import ctypes
    inits = {
        "eelsvae_preprocess_options": lambda p: _lib.lib.eelsvae_preprocess_options_init(p, 0),
        "eelsvae_synth_options": lambda p: _lib.lib.eelsvae_synth_options_init(p),
        "eelsvae_pca_options": lambda p: _lib.lib.eelsvae_pca_options_init(p),
        "eelsvae_scorer_options": lambda p: _lib.lib.eelsvae_scorer_options_init(p),
        "eelsvae_model_options": lambda p: _lib.lib.eelsvae_model_options_init(p, 0),
        "eelsvae_train_options": lambda p: _lib.lib.eelsvae_train_options_init(p, 0),
    }
    for cname, init in inits.items():
        struct = _lib.STRUCTS[cname]
        room = ctypes.create_string_buffer(ctypes.sizeof(struct) + 4096)
        init(ctypes.cast(room, ctypes.POINTER(struct)))
        written = ctypes.c_size_t.from_buffer(room).value
        assert written == ctypes.sizeof(struct), cname
