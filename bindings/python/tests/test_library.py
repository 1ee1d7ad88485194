"""Loading the library, its version, and that the declarations cover the whole C API."""
import os
import re
import subprocess
import sys

import pytest

import eelsvae
from eelsvae import _lib

from conftest import source_dir


def test_version_agrees_with_the_bindings():
    number = eelsvae.version_number()
    major, minor, patch = (int(p) for p in eelsvae.version().split("."))
    assert number == major * 10000 + minor * 100 + patch
    assert major == _lib.ABI_MAJOR
    assert number >= _lib.MIN_VERSION_NUMBER
    assert eelsvae.library_path()


def test_version_matches_the_header():
    src = source_dir()
    if src is None:
        pytest.skip("the libeelsvae source tree (include/eelsvae/base.h) is not reachable")
    text = (src / "include" / "eelsvae" / "base.h").read_text()
    parts = [int(re.search(r"#define EELSVAE_VERSION_%s (\d+)" % p, text).group(1))
             for p in ("MAJOR", "MINOR", "PATCH")]
    assert eelsvae.version() == "%d.%d.%d" % tuple(parts)


def _header_functions(src):
    names = set()
    for header in (src / "include" / "eelsvae").glob("*.h"):
        text = re.sub(r"/\*.*?\*/", " ", header.read_text(), flags=re.S)
        names.update(re.findall(r"EELSVAE_API\s+[^;{]*?\b(eelsvae_\w+)\s*\(", text))
    return names


def test_every_public_function_is_declared_and_present():
    src = source_dir()
    if src is None:
        pytest.skip("the libeelsvae source tree (include/eelsvae) is not reachable")
    public = _header_functions(src)
    assert len(public) > 90
    assert public == set(_lib.FUNCTIONS), ("headers only: %s; bindings only: %s"
                                           % (sorted(public - set(_lib.FUNCTIONS)),
                                              sorted(set(_lib.FUNCTIONS) - public)))
    mapped = set(re.findall(r"^\s+(eelsvae_\w+);", (src / "lib" / "libeelsvae.map").read_text(), flags=re.M))
    assert mapped == public
    assert _lib.MISSING == []


_ENUMS = {"eelsvae_status", "eelsvae_axis", "eelsvae_dtype", "eelsvae_preset", "eelsvae_direction",
          "eelsvae_format", "eelsvae_score_kind", "eelsvae_log_level", "eelsvae_loss_kind"}


def _c_class(decl):
    """Coarse ABI class of a C type ('ptr', 'int', 'u64', 'double', 'float', 'void')."""
    if "*" in decl or "[" in decl:
        return "ptr"
    words = [w for w in re.findall(r"\w+", decl) if w not in ("const", "enum", "struct")]
    base = words[0] if words else "void"
    if base.endswith("_fn"):
        return "ptr"
    if base in _ENUMS or base == "int":
        return "int"
    return {"size_t": "u64", "uint64_t": "u64", "double": "double", "float": "float", "void": "void"}[base]


def _ctypes_class(t):
    import ctypes
    if t is None:
        return "void"
    if t is _lib.STATUS:
        return "int"
    if t in (ctypes.c_char_p, ctypes.c_void_p) or issubclass(t, (ctypes._Pointer, ctypes._CFuncPtr)):
        return "ptr"
    return {ctypes.c_int: "int", ctypes.c_size_t: "u64", ctypes.c_uint64: "u64", ctypes.c_double: "double",
            ctypes.c_float: "float"}[t]


def _header_signatures(src):
    sigs = {}
    for header in (src / "include" / "eelsvae").glob("*.h"):
        text = re.sub(r"/\*.*?\*/", " ", header.read_text(), flags=re.S)
        for ret, name, params in re.findall(r"EELSVAE_API\s+([^;{(]*?)\b(eelsvae_\w+)\s*\(([^;]*?)\)\s*;", text):
            args = []
            for param in (p.strip() for p in params.split(",")):
                if param in ("void", ""):
                    continue
                if "[" in param:
                    args.append("ptr")
                else:
                    args.append(_c_class(re.sub(r"\w+$", "", param)))   # drop the parameter's name
            sigs[name] = (_c_class(ret), args)
    return sigs


def test_every_declaration_matches_the_header_signature():
    # Parameter count and the ABI class of each parameter and of the result:
    # catches an API change (a new parameter) the bindings have not followed.
    src = source_dir()
    if src is None:
        pytest.skip("the libeelsvae source tree (include/eelsvae) is not reachable")
    sigs = _header_signatures(src)
    assert set(sigs) == set(_lib.FUNCTIONS)
    wrong = []
    for name, (restype, argtypes) in sorted(_lib.FUNCTIONS.items()):
        mine = (_ctypes_class(restype), [_ctypes_class(t) for t in argtypes])
        if mine != sigs[name]:
            wrong.append("%s: header %s, bindings %s" % (name, sigs[name], mine))
    assert not wrong, "\n".join(wrong)


def test_status_names_match_the_library():
    # Every mirrored status value must be the one the library names so.
    for status in eelsvae.Status:
        assert _lib.strerror(status) == status.c_name
    assert _lib.strerror(999) == "EELSVAE_ERR_UNKNOWN"


def test_enum_mirrors_match_the_library_names():
    for code in eelsvae.DType:
        expected = {"BOOL": "bool", "RGBA8": "rgba8"}.get(code.name, code.name.lower())
        assert _lib.decode(_lib.lib.eelsvae_dtype_name(code)) == expected
    for fmt in eelsvae.Format:
        assert eelsvae.signal.format_name(fmt) == fmt.name.lower()
    sizes = {"INT8": 1, "UINT8": 1, "INT16": 2, "UINT16": 2, "INT32": 4, "UINT32": 4, "INT64": 8, "UINT64": 8,
             "FLOAT16": 2, "FLOAT32": 4, "FLOAT64": 8, "BOOL": 1, "COMPLEX64": 8, "COMPLEX128": 16, "RGBA8": 4}
    for code in eelsvae.DType:
        assert _lib.lib.eelsvae_dtype_size(code) == sizes[code.name]
        assert eelsvae.signal.numpy_dtype(code).itemsize == sizes[code.name]


def test_threads_round_trip():
    before = eelsvae.threads()
    try:
        eelsvae.set_threads(1)
        assert eelsvae.threads() == 1
    finally:
        eelsvae.set_threads(before)
    assert eelsvae.threads() == before


def _run_import(env_library):
    env = dict(os.environ, EELSVAE_LIBRARY=env_library,
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, "-c", "import eelsvae; print(eelsvae.library_path())"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_eelsvae_library_variable_is_honoured():
    ok = _run_import(eelsvae.library_path())
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == eelsvae.library_path()
    bad = _run_import("/nonexistent/libeelsvae.so")
    assert bad.returncode != 0
    assert "ImportError" in bad.stderr and "/nonexistent/libeelsvae.so" in bad.stderr
