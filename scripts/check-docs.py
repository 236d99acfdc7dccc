#!/usr/bin/env python3
"""`make docs`' link check (Python's standard library only): every relative link in README.md
and docs/src/**/*.md names a file that exists, every `#anchor` names a heading (or an HTML
`id`) of its target, and every chapter under docs/src is in docs/src/SUMMARY.md.

Anchors are the slugs GitHub and mdBook give headings: the heading's text without its markup,
lowercased, whitespace to `-`, every character that is not alphanumeric, `-` or `_` dropped,
and `-1`, `-2` ... after a slug already taken in the file. Links inside code (fenced blocks,
code spans) are not links and are skipped; links with a scheme (`https:`, `mailto:`) are not
checked. A link from docs/src to a file outside it is broken too: the book is built from
docs/src alone, so such a link would lead nowhere in it.

Usage: check-docs.py [REPO_ROOT]. Prints each broken link as `file:line: ...` and exits 1 when
there is any, 0 otherwise.
"""

import os
import re
import sys
import urllib.parse

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
INLINE_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>\n]*>|[^()\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[([^\]]+)\]:[ \t]*(<[^>\n]*>|\S+)", re.M)
HTML_HREF = re.compile(r"<a\s[^>]*?href=\"([^\"]*)\"", re.I)
HTML_ID = re.compile(r"<[a-z][^>]*?\s(?:id|name)=\"([^\"]*)\"", re.I)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def blank(text):
    """`text` with every character but line breaks made a space (offsets and lines kept)."""
    return re.sub(r"[^\n]", " ", text)


def fenced_lines(lines):
    """The indexes of the lines inside fenced code blocks, their fences included."""
    inside, fence, out = False, "", set()
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if not inside and m:
            inside, fence = True, m.group(1)
            out.add(i)
        elif inside:
            out.add(i)
            stripped = line.strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                inside = False
    return out


def prose(text):
    """`text` with fenced code blocks and code spans blanked out, offsets and lines kept."""
    lines = text.split("\n")
    code = fenced_lines(lines)
    kept = "\n".join(blank(line) if i in code else line for i, line in enumerate(lines))
    return CODE_SPAN.sub(lambda m: blank(m.group(0)), kept)


def plain(heading):
    """A heading's text as rendered, without its Markdown markup."""
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # HTML tags
    text = re.sub(r"(\*+)(.+?)\1", r"\2", text)  # *emphasis*, **strong**
    text = re.sub(r"(?<![\w_])(_+)(.+?)\1(?![\w_])", r"\2", text)  # _emphasis_
    return text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")


def slug(heading):
    out = []
    for ch in plain(heading).strip().lower():
        if ch.isalnum() or ch in "-_":
            out.append(ch)
        elif ch.isspace():
            out.append("-")
    return "".join(out)


def anchors(path, cache={}):
    """Every anchor of the Markdown file `path`: its headings' slugs and its HTML ids."""
    if path in cache:
        return cache[path]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    code = fenced_lines(lines)
    found, seen = set(), {}
    for i, line in enumerate(lines):
        if i in code:
            continue
        heading = None
        m = ATX.match(line)
        if m:
            heading = m.group(2) or ""
        elif (
            i > 0
            and SETEXT.match(line)
            and i - 1 not in code
            and lines[i - 1].strip()
            and not ATX.match(lines[i - 1])
            and not lines[i - 1].lstrip().startswith(("|", "-", "*", ">"))
        ):
            heading = lines[i - 1]
        if heading is None:
            continue
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    found.update(HTML_ID.findall(prose(text)))
    cache[path] = found
    return found


def links(text):
    """(offset, target) of every link of `text` outside code."""
    masked = prose(text)
    for m in INLINE_LINK.finditer(masked):
        yield m.start(3), m.group(3)
    for m in REFERENCE_DEF.finditer(masked):
        yield m.start(2), m.group(2)
    for m in HTML_HREF.finditer(masked):
        yield m.start(1), m.group(1)


def check_file(root, path, book):
    """The problems of one Markdown file's links, as (line, message)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    problems = []
    for offset, target in links(text):
        line = text.count("\n", 0, offset) + 1
        target = target.strip("<>")
        if not target or SCHEME.match(target) or target.startswith("//"):
            continue
        file_part, _, anchor = target.partition("#")
        file_part = urllib.parse.unquote(file_part)
        if file_part.startswith("/"):
            problems.append((line, f"'{target}': an absolute path; link relative to the file"))
            continue
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        if not os.path.exists(dest):
            problems.append((line, f"'{target}': no such file {os.path.relpath(dest, root)}"))
            continue
        if book and os.path.commonpath([dest, book]) != book:
            problems.append((line, f"'{target}': outside docs/src, so not in the built book"))
            continue
        if anchor:
            if not dest.endswith(".md") or os.path.isdir(dest):
                problems.append((line, f"'{target}': an anchor into a file that is not Markdown"))
            elif urllib.parse.unquote(anchor) not in anchors(dest):
                name = os.path.relpath(dest, root)
                problems.append((line, f"'{target}': no heading of {name} has the anchor #{anchor}"))
    return problems


def summary_problems(root, book):
    """Chapters under docs/src that SUMMARY.md does not list."""
    summary = os.path.join(book, "SUMMARY.md")
    if not os.path.exists(summary):
        return [(os.path.relpath(summary, root), 0, "missing: mdBook needs it")]
    with open(summary, encoding="utf-8") as f:
        text = f.read()
    listed = set()
    for _, target in links(text):
        file_part = urllib.parse.unquote(target.strip("<>").partition("#")[0])
        if file_part:
            listed.add(os.path.normpath(os.path.join(book, file_part)))
    problems = []
    for chapter in markdown_files(book):
        if chapter != summary and chapter not in listed:
            problems.append((os.path.relpath(chapter, root), 1, "a chapter SUMMARY.md does not list"))
    return problems


def markdown_files(top):
    out = []
    for d, dirs, files in os.walk(top):
        dirs.sort()
        out.extend(os.path.join(d, f) for f in sorted(files) if f.endswith(".md"))
    return out


def route_problems(root, book):
    """Every file the route of one task (docs/src/architecture.md, between its markers) names
    exists: a move that forgets the book fails here."""
    path = os.path.join(book, "architecture.md")
    if not os.path.exists(path):
        return []
    text = open(path, encoding="utf-8").read()
    begin, end = text.find("route-of-one-task: begin"), text.find("route-of-one-task: end")
    if begin < 0 or end < 0:
        return [("docs/src/architecture.md", 1, "the route-of-one-task markers are missing")]
    out = []
    first_line = text.count("\n", 0, begin) + 1
    for i, line in enumerate(text[begin:end].splitlines()):
        m = re.match(r"\d+\. `([^`]+)`", line.strip())
        if m and not os.path.exists(os.path.join(root, m.group(1))):
            out.append(("docs/src/architecture.md", first_line + i, f"the route names {m.group(1)}, which does not exist"))
    return out


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    book = os.path.join(root, "docs", "src")
    problems = []
    files = [os.path.join(root, "README.md")] + (markdown_files(book) if os.path.isdir(book) else [])
    for path in files:
        inside = book if os.path.commonpath([path, book]) == book else None
        for line, message in check_file(root, path, inside):
            problems.append((os.path.relpath(path, root), line, message))
    if os.path.isdir(book):
        problems.extend(summary_problems(root, book))
        problems.extend(route_problems(root, book))
    for name, line, message in problems:
        print(f"{name}:{line}: {message}")
    if problems:
        print(f"check-docs: {len(problems)} broken", file=sys.stderr)
        return 1
    print(f"check-docs: the links of {len(files)} files resolve, every chapter is in SUMMARY.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
