#!/usr/bin/env python3
"""Writes docs/acceptance.md: every ACC line of the spec and the tests that name it.

A test names the behaviours it proves in the comment block right above it (`// ACC-024.`,
`// ACC-102 … ACC-106: …`, `// ACC-222b`). This script reads those blocks from every test in the
workspace and every `- **ACC-…**` line of the spec (acceptance.md, and the files from 11 on that
keep their own lines), so the map cannot drift from the code.

Usage: scripts/acceptance-map.py [path/to/spec/acceptance.md] > docs/acceptance.md
"""

import glob
import os
import re
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "spec", "acceptance.md")
SPEC_DIR = os.path.dirname(os.path.abspath(SPEC))

# The issues and the ACC ranges they own (issue text); together they cover every line of the
# spec. ACC-248 appears twice: the dev clock is the foundation's, its DELAY clause is #13's.
OWNERS = [
    ("#2 foundation", [(1, 33), (37, 57), (226, 233), (248, 248)]),
    ("#3 key backends", [(58, 85)]),
    ("#4 auth and agents", [(86, 129)]),
    ("#5 EVM pipeline / #6 Solana", [(130, 150), (162, 172), (175, 176), (249, 249)]),
    ("#11 notifications", [(234, 242)]),
    ("#12 policy engine", [(151, 157), (174, 174), (185, 205)]),
    ("#13 DELAY and APPROVAL", [(158, 161), (173, 173), (177, 184), (248, 248)]),
    ("#14 kill switch, AutoStop, withdraw", [(206, 225)]),
    ("#15 MCP, SDK, OpenAPI", [(34, 36), (243, 247)]),
    ("#20 owner console", [(260, 275)]),
    ("#23 PostgreSQL and failover", [(300, 313)]),
    ("#24 the first run", ["222b"]),
]

TEST_START = re.compile(
    r"^\s*(?:#\[(?:tokio::)?test\b|daemon_test!\(\s*(\w+)?)"
)
FN = re.compile(r"^\s*(?:pub(?:\(crate\))?\s+)?(?:async\s+)?fn\s+(\w+)")
ACC_RANGE = re.compile(r"ACC-(\d{3})\s*(?:…|\.\.\.?|–|-)\s*ACC-(\d{3})")
ACC_ONE = re.compile(r"ACC-(\d{3}[a-z]?)")


def key(acc):
    """Sort key of an id such as "222" or "222b"."""
    return (int(acc[:3]), acc[3:])


def owned_ids(ranges):
    """The ids an issue owns: numeric ranges (a, b) and single ids such as "222b"."""
    out = []
    for r in ranges:
        out += [f"{n:03d}" for n in range(r[0], r[1] + 1)] if isinstance(r, tuple) else [r]
    return out


def spec_lines():
    out = {}
    files = [SPEC] + sorted(glob.glob(os.path.join(SPEC_DIR, "[0-9][0-9]-*.md")))
    for path in files:
        for line in open(path, encoding="utf-8"):
            m = re.match(r"^- \*\*ACC-(\d{3}[a-z]?)\*\* (.*)", line.strip())
            if m:
                out[m.group(1)] = m.group(2)
    return out


def ids_in(text):
    found = set()
    for a, b in ACC_RANGE.findall(text):
        found.update(f"{n:03d}" for n in range(int(a), int(b) + 1))
    text = ACC_RANGE.sub("", text)
    found.update(ACC_ONE.findall(text))
    return found


def tests_in(path):
    """(test name, ACC ids in its comments) for every test in a file: the comment block right
    above the test and the comments inside its body."""
    lines = open(path, encoding="utf-8").read().split("\n")
    rel = os.path.relpath(path, ROOT)
    starts = [
        i
        for i, line in enumerate(lines)
        if TEST_START.match(line)
        and not (line.lstrip().startswith("#[") and i > 0 and lines[i - 1].lstrip().startswith("#["))
    ]
    for pos, i in enumerate(starts):
        m = TEST_START.match(lines[i])
        # The body runs to the comment block of the next test (or the end of the file).
        end = starts[pos + 1] if pos + 1 < len(starts) else len(lines)
        while end > i + 1 and lines[end - 1].strip().startswith(("//", "#[")):
            end -= 1
        body = [ln for ln in lines[i:end] if ln.strip().startswith("//")]
        name = m.group(1)
        j = i
        while name is None and j < min(i + 6, len(lines) - 1):
            j += 1
            f = FN.match(lines[j]) or re.match(r"^\s*(\w+),\s*$", lines[j])
            if f:
                name = f.group(1)
        k = i
        block = []
        while k > 0 and lines[k - 1].strip().startswith("//"):
            k -= 1
            block.append(lines[k])
        yield f"`{rel}` {name}", ids_in("\n".join(block + body))


def doctests_in(path):
    """compile_fail doctests: a `///` block holding one names the ACC lines it proves."""
    lines = open(path, encoding="utf-8").read().split("\n")
    rel = os.path.relpath(path, ROOT)
    block = []
    for line in lines + [""]:
        if line.strip().startswith("///"):
            block.append(line)
            continue
        text = "\n".join(block)
        if "```compile_fail" in text:
            item = re.match(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:struct|enum|fn|type|trait)\s+(\w+)", line)
            yield f"`{rel}` compile_fail doctests on {item.group(1) if item else 'item'}", ids_in(text)
        block = []


def main():
    spec = spec_lines()
    by_acc = defaultdict(list)
    files = [
        p
        for pattern in ("tests/*.rs", "src/**/*.rs", "storage/src/**/*.rs", "backends/src/**/*.rs")
        for p in glob.glob(os.path.join(ROOT, pattern), recursive=True)
    ]
    for path in sorted(set(files)):
        for test, ids in list(tests_in(path)) + list(doctests_in(path)):
            for n in ids:
                by_acc[n].append(test)

    owned_all = {n for _, ranges in OWNERS for n in owned_ids(ranges)}
    missing = sorted(set(spec) - owned_all, key=key)
    if missing:
        sys.exit(f"spec lines owned by no issue: {missing}")
    print("# Acceptance map\n")
    print("Generated by `scripts/acceptance-map.py` from the spec's `acceptance.md` and the")
    print("`// ACC-…` comments above (or inside) each test. Do not edit by hand; rerun the script.")
    print("A line marked — is named by no test yet: its issue (the section it is under) is not")
    print("finished. The script fails if a spec line belongs to no issue.\n")
    print("| issue | ACC lines | named by a test |")
    print("|---|---|---|")
    for issue, ranges in OWNERS:
        owned = [n for n in owned_ids(ranges) if n in spec]
        named = [n for n in owned if by_acc.get(n)]
        print(f"| {issue} | {len(owned)} | {len(named)} |")
    print()
    for issue, ranges in OWNERS:
        print(f"## {issue}\n")
        print("| ACC | behaviour | tests |")
        print("|---|---|---|")
        for n in owned_ids(ranges):
            if n not in spec:
                continue
            text = spec[n].replace("|", "\\|")
            if len(text) > 110:
                text = text[:107].rstrip() + "…"
            tests = "<br>".join(sorted(set(by_acc.get(n, [])))) or "—"
            print(f"| ACC-{n} | {text} | {tests} |")
        print()


if __name__ == "__main__":
    main()
