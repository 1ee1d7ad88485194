#!/usr/bin/env python3
"""Make a man page from a program's --help, or check one against it.

The example programs print their help in one shape:

    Usage: NAME SYNOPSIS
    Description, one or more paragraphs separated by blank lines.

    Options:
      --option ARG       what it does, continued on lines
                         indented to the description column
      --help             this text

and this turns that into a section-1 roff page: NAME (the first clause of
the description), SYNOPSIS, DESCRIPTION, OPTIONS (and any other "Title:"
section), SEE ALSO. Nothing is fetched; only the standard library is used.

  help2man.py [--version V] [--see-also a,b] --output PAGE PROGRAM
      run PROGRAM --help and write PAGE.
  help2man.py --check [--version V] [--see-also a,b] PAGE PROGRAM
      fail (exit 1, saying why) unless PAGE is exactly what PROGRAM --help
      gives now, names every option that --help lists, and renders without
      warnings (groff -man -ww, when groff is installed; man -l, when man is).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

OPTION_LINE = re.compile(r"^ {1,4}(-\S.*?)(?: {2,}(\S.*))?$")
SECTION_LINE = re.compile(r"^([A-Z][A-Za-z ]*):$")


def run_help(program):
    """The text of `program --help`, which must exit 0."""
    done = subprocess.run([program, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=dict(os.environ, LC_ALL="C.UTF-8", COLUMNS="80"), timeout=60)
    if done.returncode != 0:
        sys.exit(f"help2man: {program} --help exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode("utf-8")


def parse_help(text):
    """(name, synopsis, description paragraphs, [(section title, items or lines)])."""
    lines = text.rstrip("\n").split("\n")
    m = re.match(r"^Usage: (\S+)\s*(.*)$", lines[0]) if lines else None
    if not m:
        sys.exit("help2man: --help does not start with 'Usage: NAME …'")
    name, synopsis = m.group(1), m.group(2)
    description, sections = [], []
    paragraph = []
    current = None  # (title, entries) of the section being read
    for line in lines[1:]:
        header = SECTION_LINE.match(line)
        if header:
            if paragraph:
                description.append(paragraph)
                paragraph = []
            current = (header.group(1), [])
            sections.append(current)
        elif current is None:
            if line.strip():
                paragraph.append(line)
            elif paragraph:
                description.append(paragraph)
                paragraph = []
        else:
            add_section_line(current[1], line)
    if paragraph:
        description.append(paragraph)
    return name, synopsis, description, sections


def add_section_line(entries, line):
    """Options become [spec, description]; other lines are kept as they are."""
    option = OPTION_LINE.match(line)
    if option:
        entries.append([option.group(1).strip(), option.group(2) or ""])
    elif line.strip() and entries and isinstance(entries[-1], list) and line.startswith("     "):
        entries[-1][1] = (entries[-1][1] + " " + line.strip()).strip()
    else:
        entries.append(line)


def option_names(text):
    """Every option an item of --help's option lists names: --foo, -h."""
    names = []
    for line in text.split("\n"):
        m = OPTION_LINE.match(line)
        if m:
            names += re.findall(r"(?<![\w-])(--?[A-Za-z0-9][\w-]*)", m.group(1))
    return names


def roff_text(s):
    """Escape text for roff: backslashes, option and program-name hyphens,
    non-ASCII characters (as \\[uXXXX], so no input encoding is assumed)."""
    s = s.replace("\\", "\\e")
    # Hyphens in options (--foo) and command names (eelsvae-pca) are minus
    # signs to be typed; those inside words (3-D, noise-free) stay hyphens.
    s = re.sub(r"(?<![\w-])--?[A-Za-z0-9][\w-]*|\beelsvae-[\w-]+",
               lambda m: m.group(0).replace("-", "\\-"), s)
    s = "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in s)
    return s


def roff_line(s):
    """A line of running text: one that starts with . or ' is not a request."""
    s = roff_text(s)
    return "\\&" + s if s.startswith((".", "'")) else s


def spec_roff(spec):
    """"--window LO:HI" → bold option, italic argument."""
    words = []
    for word in spec.split(" "):
        if word.startswith("-"):
            words.append("\\fB" + roff_text(word) + "\\fR")
        elif word:
            words.append("\\fI" + roff_text(word) + "\\fR")
    return " ".join(words)


def short_name(description):
    """The first clause of the description, for the NAME line."""
    first = " ".join(description[0]) if description else ""
    clause = re.split(r":\s|;\s|\s\(|\.\s|\.$", first, maxsplit=1)[0]
    return clause.strip()


def make_page(text, version, see_also):
    name, synopsis, description, sections = parse_help(text)
    out = [
        '.\\" Generated by tools/help2man.py from the output of "%s --help"; do not edit.' % name,
        '.TH %s 1 "" "libeelsvae %s" "libeelsvae manual"' % (roff_text(name.upper()), version),
        ".nh",  # no hyphenation: an option split across lines cannot be copied
        ".SH NAME",
        "%s \\- %s" % (roff_text(name), roff_text(short_name(description))),
        ".SH SYNOPSIS",
        ".B %s" % roff_text(name),
    ]
    if synopsis:
        out.append(roff_line(synopsis))
    out.append(".SH DESCRIPTION")
    for i, paragraph in enumerate(description):
        if i:
            out.append(".PP")
        out += [roff_line(line.strip()) for line in paragraph]
    for title, entries in sections:
        out.append(".SH " + roff_text(title.upper()))
        for entry in entries:
            if isinstance(entry, list):
                out += [".TP", spec_roff(entry[0]), roff_line(entry[1])]
            elif entry.strip():
                out += [".PP", roff_line(entry.strip())]
    if see_also:
        out.append(".SH SEE ALSO")
        refs = [".BR %s (1)%s" % (roff_text(p), "," if i + 1 < len(see_also) else "")
                for i, p in enumerate(see_also)]
        out += refs
        out += [".PP", "The libeelsvae reference manual: Doxygen HTML, installed under share/doc/eelsvae/html when it is built."]
    return "\n".join(out) + "\n"


def render_problems(page_path, text):
    """Warnings from groff, and options missing from man's rendering."""
    problems = []
    if shutil.which("groff"):
        done = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", page_path],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if done.returncode != 0 or done.stderr.strip():
            problems.append("groff -man -ww: %s" % done.stderr.decode(errors="replace").strip())
    if shutil.which("man"):
        done = subprocess.run(["man", "-l", page_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="0", MANPAGER="cat",
                                       PAGER="cat", LC_ALL="C.UTF-8"))
        shown = re.sub(r".\x08", "", done.stdout.decode("utf-8", errors="replace"))
        shown = shown.replace("\u2010", "-").replace("\u2212", "-")
        if done.returncode != 0:
            problems.append("man -l exited %d: %s" % (done.returncode, done.stderr.decode(errors="replace")))
        for option in option_names(text):
            if option not in shown:
                problems.append("man -l does not show %s" % option)
    return problems


def check(page_path, text, version, see_also):
    problems = []
    try:
        with open(page_path, encoding="utf-8") as f:
            page = f.read()
    except OSError as e:
        return ["cannot read %s: %s" % (page_path, e)]
    if page != make_page(text, version, see_also):
        problems.append("%s differs from what --help gives now: regenerate it" % page_path)
    for option in option_names(text):
        if roff_text(option) not in page:
            problems.append("%s does not describe %s" % (page_path, option))
    return problems + render_problems(page_path, text)


def main():
    ap = argparse.ArgumentParser(description="Make (or check) a man page from a program's --help.")
    ap.add_argument("--version", default="", help="version shown in the page footer")
    ap.add_argument("--see-also", default="", help="comma-separated programs for SEE ALSO")
    ap.add_argument("--output", help="page to write")
    ap.add_argument("--check", metavar="PAGE", help="check PAGE against the program instead")
    ap.add_argument("program")
    args = ap.parse_args()
    me = os.path.basename(args.program)
    see_also = [p for p in args.see_also.split(",") if p and p != me]
    text = run_help(args.program)
    if args.check:
        problems = check(args.check, text, args.version, see_also)
        for p in problems:
            print("FAIL: " + p, file=sys.stderr)
        if not problems:
            print("ok: %s matches %s --help (%d options)" % (args.check, os.path.basename(args.program),
                                                            len(option_names(text))))
        return 1 if problems else 0
    if not args.output:
        ap.error("--output PAGE or --check PAGE is required")
    page = make_page(text, args.version, see_also)
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
