#!/usr/bin/env python3
"""Fail when the public headers, the linker version script and the symbols the
shared library actually exports disagree.

usage: check_symbols.py LIBEELSVAE_SO VERSION_SCRIPT HEADER...
"""
import re
import subprocess
import sys


def header_functions(paths):
    names = set()
    for path in paths:
        text = open(path, encoding="utf-8").read()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        names.update(re.findall(r"EELSVAE_API\s+[^;{]*?\b(eelsvae_\w+)\s*\(", text))
    return names


def version_script_symbols(path):
    text = re.sub(r"/\*.*?\*/", " ", open(path, encoding="utf-8").read(), flags=re.S)
    names, wildcards = set(), []
    for block in re.findall(r"global\s*:(.*?)(?:local\s*:|\})", text, flags=re.S):
        for item in re.findall(r"([\w*?]+)\s*;", block):
            if any(c in item for c in "*?"):
                wildcards.append(item)
            else:
                names.add(item)
    return names, wildcards


def exported_symbols(library):
    out = subprocess.run(["nm", "-D", "--defined-only", library], check=True, capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            name = parts[2].split("@")[0]
            if parts[1] not in ("A",):  # version nodes are absolute symbols
                names.add(name)
    return names


def main():
    library, script, headers = sys.argv[1], sys.argv[2], sys.argv[3:]
    declared = header_functions(headers)
    listed, wildcards = version_script_symbols(script)
    exported = exported_symbols(library)
    problems = []
    if wildcards:
        problems.append(f"version script uses wildcards {wildcards}: list every symbol explicitly")
    for what, a, b in (("declared in the headers but not exported", declared, exported),
                       ("exported but not declared in the headers", exported, declared),
                       ("declared in the headers but not in the version script", declared, listed),
                       ("in the version script but not declared in the headers", listed, declared)):
        missing = sorted(a - b)
        if missing:
            problems.append(f"{len(missing)} symbol(s) {what}: {', '.join(missing)}")
    if not declared:
        problems.append("no EELSVAE_API declaration found in the headers")
    for p in problems:
        print("FAIL:", p)
    print(f"{len(declared)} public functions, {len(exported)} exported symbols, {len(listed)} in the version script")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
