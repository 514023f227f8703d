"""Say where every published number comes from, and which have no source.

Run from anywhere in the repository::

    python benchmarks/check_results.py            # exit 1 if a quoted number has no source
    python benchmarks/check_results.py --strict   # exit 1 also if a number's only sources are stale
    python benchmarks/check_results.py -v         # list the stale numbers one by one

**Results files** are the committed files under ``benchmarks/results/`` and
``doc/_static/`` (text: ``.md``, ``.json``, ``.csv``, ``.txt``; a figure or a
file without provenance of its own takes that of a text file beside it).
Each benchmark records ``git describe --dirty`` as it starts; the commit is read
from the first of ``git describe --dirty: X``, ``"git": "X"``,
``"git_describe": "X"``, ``"describe": "X"``, ``Revision: X``, ``(git X)``,
``benchmark at X`` and a title ending in ``(X)``. For each file the script prints
that commit and whether any file under ``sklearn_cosmoe/`` changed between it
and ``HEAD`` (``git diff --quiet <commit> HEAD -- sklearn_cosmoe``): *current*,
*changed* (stale) or *unknown* (a commit not in this history, or none recorded).

**Quoted numbers** are read from ``README.md``, ``benchmarks/README.md`` and
every ``*.rst`` and ``*.md`` under ``doc/`` (not the generated or results folders
``doc/_static``, ``doc/_build``, ``doc/auto_examples``, ``doc/gen_modules``).
A quoted number is a decimal with a fractional part in prose: ``0.895``,
``12.3x``, ``95.1%``, ``13.3 s``, ``5.6 ms``, ``8.6e-15``. Not quoted numbers:

* integers of any kind (counts, sizes such as ``1e5``, years, line numbers);
* anything in code: fenced and indented literal blocks, the bodies of rst
  directives (``code-block``, ``math``, ``doctest``, ...), ``>>>`` lines,
  inline code (```x``` and ````x````) and mathematics (``$x$``,
  ``:math:`x```), link targets and URLs;
* version numbers: dotted triples (``1.9.1``), numbers after ``>=``, ``<=``,
  ``==``, ``~=``, ``v`` or the name ``Python``;
* references into a text: after Theorem, Section, Lemma, Proposition,
  Corollary, Figure, Table, Eq., Appendix, Definition, Assumption, Remark,
  and arXiv identifiers;
* the deliberate exceptions in ``benchmarks/check_results_allow.txt``
  (``path: number  # why``; ``*`` for any path).

Where a quoted number is looked for: in the results files that its block of
text cites (a paragraph, a list item or a table: a path or file name such as
``results/memory.md``, ``memory.json`` or ``results/runtime/``), or in every
results file when its block cites none. A quoted number with ``d`` decimals
is *found* in a results file when that file holds a number (a token of its
text, exponent form included) whose absolute value rounds to the quoted
absolute value at ``d`` decimals (half up): ``0.9x`` is found in ``0.897``,
``2.1x`` in ``2.14``. A number followed by ``%`` is also found as a fraction
(``95.1%`` in ``0.951``), one in ``ms`` or ``µs`` also in seconds. The
elements of a JSON array of more than ``BULK_ARRAY`` numbers (a loss trace, a
per-row record) are not looked at: a text quotes what is computed from such
an array, and a long trace holds almost any number. A found number is
*stale* when every file that holds it is *changed* or *unknown*.

Exit status: 1 when a quoted number is found in no results file; with
``--strict`` also when a quoted number is stale; 0 otherwise.
"""

import argparse
import re
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

RESULTS_DIRS = ("benchmarks/results", "doc/_static")
RESULTS_TEXT_SUFFIXES = (".md", ".json", ".csv", ".txt")
DOCS = ("README.md", "benchmarks/README.md")
DOC_DIR = "doc"
DOC_SKIP_DIRS = ("doc/_static", "doc/_build", "doc/auto_examples", "doc/gen_modules")
ALLOWLIST = "benchmarks/check_results_allow.txt"
PACKAGE = "sklearn_cosmoe"

_HASH = r"([0-9a-f]{7,40}(?:-dirty)?)"
PROVENANCE_PATTERNS = [re.compile(p) for p in (
    r"git describe --dirty:\s*`?" + _HASH,
    r'"git(?:_describe)?":\s*"' + _HASH,
    r'"describe":\s*"' + _HASH,
    r"Revision:\s*`?" + _HASH,
    r"\(git " + _HASH + r"[;)]",
    r"benchmark at " + _HASH + r"\b",
    r"(?m)^#[^\n]*\(" + _HASH + r"\)[ \t]*$",
)]

# a decimal with a fractional part, optional exponent, optional unit
QUOTED = re.compile(
    r"(?<![\w.])(?P<sign>[-+−]?)(?P<num>\d+\.\d+(?:e[-+−]?\d+)?)(?![\w.]*\.\d)"
    r"(?P<unit>\s?(?:%|ms\b|µs\b|us\b))?")
_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"  # a number token of a results file
RESULT_NUMBER = re.compile(r"(?<![\w.])" + _NUMBER)
# a JSON array of more numbers than this is a trace or a per-row record: a text quotes
# what is computed from it, never one of its elements, so its numbers are not sources
BULK_ARRAY = 16
_JSON_NUMBER = r"(?:" + _NUMBER + r"|null|NaN|-?Infinity)"
BULK_JSON_ARRAY = re.compile(
    r"\[\s*" + _JSON_NUMBER + r"(?:\s*,\s*" + _JSON_NUMBER + r"){%d,}\s*\]" % BULK_ARRAY)
VERSION_BEFORE = re.compile(r"(?:>=|<=|==|~=|\bv|\bPython\s)\s*$", re.IGNORECASE)
REFERENCE_BEFORE = re.compile(
    r"\b(?:Theorem|Section|Lemma|Proposition|Corollary|Figure|Fig\.|Table|Eq\.|Equation|"
    r"Appendix|Definition|Assumption|Remark)s?\s*$|arXiv:\s*$", re.IGNORECASE)
UNIT_SCALE = {"%": Decimal("0.01"), "ms": Decimal("0.001"), "µs": Decimal("0.000001"),
              "us": Decimal("0.000001")}

INLINE_CODE = re.compile(r"``.*?``|`[^`\n]*`")
MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$|:math:`[^`]*`", re.DOTALL)
LINK_TARGET = re.compile(r"\]\([^)]*\)|<https?://[^>]*>|https?://\S+")


def _blank(match):
    """Replace a match by spaces, keeping the line structure."""
    return re.sub(r"[^\n]", " ", match.group(0))


def strip_code(text, suffix):
    """Return ``text`` with code, mathematics and link targets blanked out.

    Lines keep their numbers so that a finding can name its line.
    """
    lines = text.split("\n")
    out = []
    fence = None
    literal_indent = None  # inside an indented literal block or directive body
    expect_literal = False
    prev_blank = True
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if fence is not None:
            out.append("")
            if stripped.startswith(fence):
                fence = None
            continue
        m = re.match(r"(```+|~~~+)", stripped) if suffix == ".md" else None
        if m:  # a Markdown code fence (in reStructuredText: a title's underline)
            fence = m.group(1)
            out.append("")
            continue
        if literal_indent is not None:
            if stripped == "" or indent > literal_indent:
                out.append("")
                continue
            literal_indent = None
        if expect_literal and stripped:
            expect_literal = False
        if suffix == ".rst" and re.match(r"\.\. [\w:-]+::", stripped):
            literal_indent = indent
            out.append("")
            prev_blank = False
            continue
        if suffix == ".rst" and stripped.endswith("::"):
            literal_indent = indent
            out.append(line[:-2])
            prev_blank = False
            continue
        if suffix == ".md" and indent >= 4 and prev_blank and not re.match(r"[*+-] |\d+\. ", stripped):
            literal_indent = indent - 1
            out.append("")
            continue
        if stripped.startswith(">>>") or stripped.startswith("..."):
            out.append("")
            prev_blank = False
            continue
        out.append(line)
        prev_blank = stripped == ""
    text = "\n".join(out)
    text = MATH.sub(_blank, text)
    text = INLINE_CODE.sub(_blank, text)
    return LINK_TARGET.sub(_blank, text)


def quoted_numbers(text, suffix):
    """The quoted numbers of a document, as ``(line, token, Decimal, decimals, unit)``."""
    found = []
    for lineno, line in enumerate(strip_code(text, suffix).split("\n"), start=1):
        for m in QUOTED.finditer(line):
            before = line[:m.start()]
            if VERSION_BEFORE.search(before) or REFERENCE_BEFORE.search(before):
                continue
            num = m.group("num").replace("−", "-")
            decimals = len(num.split("e")[0].split(".")[1])
            unit = (m.group("unit") or "").strip()
            found.append((lineno, m.group(0).strip(), Decimal(num), decimals, unit))
    return found


CITATION = re.compile(r"[\w./-]*[\w-]\.(?:md|json|csv|txt|png)\b|[\w./-]*results/[\w./-]*")
LIST_ITEM = re.compile(r"\s*(?:[*+-]|\d+\.|#\.)\s")


def blocks(text):
    """Split ``text`` into blocks (paragraphs, list items, tables).

    Returns the block index of every line, 1-based lines at index ``line - 1``.
    """
    ids, current, prev_blank = [], 0, True
    for line in text.split("\n"):
        if not line.strip():
            if not prev_blank:
                current += 1
            prev_blank = True
        else:
            if LIST_ITEM.match(line) and not prev_blank:
                current += 1
            prev_blank = False
        ids.append(current)
    return ids


def cited_files(block_text, results_paths):
    """The results files a block of text cites (empty if none)."""
    cited = set()
    for c in CITATION.findall(block_text):
        c = c.strip("./").removeprefix("benchmarks/")
        if not c:
            continue
        for p in results_paths:
            rel = p.removeprefix("benchmarks/")
            if rel == c or rel.endswith("/" + c) or (c.endswith("/") and (
                    rel.startswith(c) or ("/" + c) in rel)) or rel.startswith(c.rstrip("/") + "/"):
                cited.add(p)
    return cited


def provenance(text):
    """The commit a results file records, or None."""
    for pattern in PROVENANCE_PATTERNS:
        m = pattern.search(text[:20000]) or pattern.search(text)
        if m:
            return m.group(1)
    return None


class ResultsIndex:
    """The numbers of the results files, looked up by rounding."""

    def __init__(self, texts):
        self._tokens = {}
        for path, text in texts.items():
            values = set()
            if path.endswith(".json"):
                text = BULK_JSON_ARRAY.sub("[]", text)
            for tok in RESULT_NUMBER.findall(text):
                try:
                    values.add(abs(Decimal(tok)))
                except InvalidOperation:  # pragma: no cover - the pattern is numeric
                    continue
            self._tokens[path] = values
        self._rounded = {}

    def _at(self, decimals):
        if decimals not in self._rounded:
            q = Decimal(1).scaleb(-decimals)
            self._rounded[decimals] = {
                path: {v.quantize(q, rounding=ROUND_HALF_UP) for v in values if v.adjusted() < 30}
                for path, values in self._tokens.items()}
        return self._rounded[decimals]

    def files_holding(self, value, decimals, unit="", among=None):
        """The results files (of ``among``, default all) holding ``value`` at ``decimals``."""
        q = Decimal(1).scaleb(-decimals)
        target = abs(value).quantize(q, rounding=ROUND_HALF_UP)
        pool = self._at(decimals)
        hits = {p for p in (among or pool) if target in pool.get(p, ())}
        if unit in UNIT_SCALE:
            scaled = abs(value) * UNIT_SCALE[unit]
            d = max(decimals - UNIT_SCALE[unit].adjusted(), 0)
            target = scaled.quantize(Decimal(1).scaleb(-d), rounding=ROUND_HALF_UP)
            pool = self._at(d)
            hits |= {p for p in (among or pool) if target in pool.get(p, ())}
        return hits


def _git(root, *args):
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def commit_state(root, commit):
    """'current', 'changed' or 'unknown' for the package code since ``commit``."""
    if commit is None:
        return "unknown"
    sha = commit.removesuffix("-dirty")
    if _git(root, "cat-file", "-e", sha + "^{commit}").returncode != 0:
        return "unknown"
    if _git(root, "merge-base", "--is-ancestor", sha, "HEAD").returncode != 0:
        return "unknown"
    diff = _git(root, "diff", "--quiet", sha, "HEAD", "--", PACKAGE)
    state = "current" if diff.returncode == 0 else "changed"
    return "changed" if commit.endswith("-dirty") else state


def tracked_files(root, *paths):
    """Committed files under ``paths`` (all files if ``root`` is not a git work tree)."""
    res = _git(root, "ls-files", "--", *paths)
    if res.returncode == 0:
        return [root / p for p in res.stdout.splitlines() if (root / p).is_file()]
    return sorted(f for p in paths if (root / p).exists()
                  for f in ([root / p] if (root / p).is_file() else (root / p).rglob("*"))
                  if f.is_file())


def read_allowlist(root):
    """``{(path or '*', token)}`` from the allowlist file."""
    allowed = set()
    path = root / ALLOWLIST
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if ":" in line:
                where, token = (s.strip() for s in line.rsplit(":", 1))
                allowed.add((where, token))
    return allowed


def doc_files(root):
    files = [root / d for d in DOCS if (root / d).exists()]
    for f in tracked_files(root, DOC_DIR):
        rel = f.relative_to(root).as_posix()
        if f.suffix in (".rst", ".md") and not rel.startswith(DOC_SKIP_DIRS):
            files.append(f)
    return files


def check(root, strict=False, verbose=False, out=sys.stdout):
    """Print the report; return the exit status."""
    root = Path(root)
    results = tracked_files(root, *RESULTS_DIRS)
    texts = {f.relative_to(root).as_posix(): f.read_text(errors="replace")
             for f in results if f.suffix in RESULTS_TEXT_SUFFIXES}
    commits = {p: provenance(t) for p, t in texts.items()}
    for f in results:  # figures and files without provenance: a text file beside them
        rel = f.relative_to(root).as_posix()
        if commits.get(rel) is None:
            siblings = [c for p, c in sorted(commits.items())
                        if c and Path(p).parent == Path(rel).parent]
            commits[rel] = siblings[0] if siblings else None
    states = {}
    state_of = {p: states.setdefault(c, commit_state(root, c)) for p, c in commits.items()}

    print("Results files: commit recorded, and the package code since that commit", file=out)
    width = max((len(p) for p in commits), default=0)
    for p in sorted(commits):
        print(f"  {p:<{width}}  {commits[p] or '-':<13} {state_of[p]}", file=out)
    counts = {s: sum(v == s for v in state_of.values()) for s in ("current", "changed", "unknown")}
    print(f"  {len(commits)} files: {counts['current']} current, {counts['changed']} with "
          f"package code changed since, {counts['unknown']} unknown\n", file=out)

    index = ResultsIndex(texts)
    allowed = read_allowlist(root)
    missing, stale = [], []
    for doc in doc_files(root):
        rel = doc.relative_to(root).as_posix()
        text = doc.read_text()
        lines = text.split("\n")
        block_of = blocks(text)
        block_text = {}
        for i, b in enumerate(block_of):
            block_text[b] = block_text.get(b, "") + lines[i] + "\n"
        for lineno, token, value, decimals, unit in quoted_numbers(text, doc.suffix):
            if (rel, token) in allowed or ("*", token) in allowed:
                continue
            among = cited_files(block_text[block_of[lineno - 1]], texts)
            hits = index.files_holding(value, decimals, unit, among=among)
            if not hits:
                missing.append((rel, lineno, token, lines[lineno - 1].strip()))
            elif all(state_of.get(h) != "current" for h in hits):
                stale.append((rel, lineno, token, sorted(hits)))

    print(f"Quoted numbers found in no results file: {len(missing)}", file=out)
    for rel, lineno, token, line in missing:
        print(f"  {rel}:{lineno}: {token}    | {line[:90]}", file=out)
    print(f"\nQuoted numbers found only in results whose package code changed since (or "
          f"unknown): {len(stale)}{' (fails with --strict)' if not strict else ''}", file=out)
    by_doc = {}
    for rel, lineno, token, hits in stale:
        by_doc.setdefault(rel, []).append((lineno, token, hits))
    for rel, items in by_doc.items():
        print(f"  {rel}: {len(items)}", file=out)
        if verbose:
            for lineno, token, hits in items:
                print(f"    {lineno}: {token}  in {', '.join(hits[:3])}"
                      f"{' ...' if len(hits) > 3 else ''}", file=out)
    if missing or (strict and stale):
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--strict", action="store_true",
                        help="also fail when a quoted number's only sources are stale")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="list every stale quoted number")
    parser.add_argument("--root", default=Path(__file__).resolve().parents[1], type=Path,
                        help="repository root (default: the one holding this script)")
    args = parser.parse_args(argv)
    return check(args.root, strict=args.strict, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
