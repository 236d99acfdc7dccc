#!/usr/bin/env python3
"""The shape of the code, measured: circles of imports between a crate's files, and the longest
functions.

    scripts/structure.py cycles      # every circle of imports, per crate; exit 1 if any
    scripts/structure.py functions   # functions longer than --max lines (default 80), longest first
    scripts/structure.py check       # both, failing on a circle or on a function over --max
    scripts/structure.py selftest    # the checks on a made-up crate: they find what is there

A file depends on another file of its crate when it names a path in it (`use crate::a::b`,
`super::x`, or `crate::a::f()` in the code). Test code (`#[cfg(test)]` items, `tests.rs`,
`tests/` folders) is left out: tests may use everything, nothing uses them. A path resolves to
the deepest module file it names, so `crate::pipeline::chunker::Chunker` depends on
`pipeline/chunker.rs` (or `pipeline/chunker/mod.rs`), not on `pipeline/mod.rs`.
"""
import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = [
    "shared/batchops-core",
    "shared/batchops-aws",
    "functions/job-intake",
    "functions/manifest-chunker",
    "functions/task-executor",
    "functions/report-finalizer",
    "cli",
    "sim",
    "fuzz",
    "bench",
    "tests",
    "examples/lambda",
]


def strip_comments_and_strings(text):
    """Blanks comments, string and char literals (keeping newlines) so braces and paths in them
    do not count."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i:j + 1]))
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a): only the former is blanked.
            m = re.match(r"'(\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", text[i:i + 12])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(text, open_at):
    depth = 0
    for j in range(open_at, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(text) - 1


def strip_test_items(text):
    """Blanks every item under `#[cfg(test)]` (a `mod tests { .. }`, a `use`, a fn)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", text)
        if not m:
            return text
        start = m.start()
        j = m.end()
        semi = text.find(";", j)
        brace = text.find("{", j)
        if brace < 0 or (0 <= semi < brace):
            end = semi
        else:
            end = matching_brace(text, brace)
        text = text[:start] + re.sub(r"[^\n]", " ", text[start:end + 1]) + text[end + 1:]


def module_path(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("lib", "main") and len(rel) == 1:
        return []
    if rel[-1] == "mod":
        rel = rel[:-1]
    return rel


def is_test_file(rel):
    parts = rel.split("/")
    return "tests" in parts[:-1] or parts[-1] in ("tests.rs", "proptests.rs")


def rust_files(crate, include_tests=False):
    """(path, path relative to src/) of every `.rs` file under the crate's src/, tests left
    out unless asked for."""
    src = os.path.join(ROOT, crate, "src")
    for dirpath, _, names in os.walk(src):
        for name in sorted(names):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src).replace(os.sep, "/")
            if include_tests or not is_test_file(rel):
                yield path, rel


def crate_files(crate):
    src = os.path.join(ROOT, crate, "src")
    files = {}
    for path, rel in rust_files(crate):
        if rel.startswith("bin/"):
            continue
        if rel == "main.rs" and os.path.exists(os.path.join(src, "lib.rs")):
            continue  # a binary beside a library is a crate of its own, a user of the library
        files[tuple(module_path(src, path))] = rel
    return files


def expand_use_tree(tree):
    """`a::{b, c::{d as e, f}}` -> ["a::b", "a::c::d as e", "a::c::f"]."""
    tree = re.sub(r"\s+as\s+", "\0", tree)
    tree = re.sub(r"\s+", "", tree).replace("\0", " as ")
    brace = tree.find("{")
    if brace < 0:
        return [tree]
    prefix, inner = tree[:brace], tree[brace + 1:tree.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        parts.append(cur)
    out = []
    for part in parts:
        for p in expand_use_tree(part):
            out.append(prefix + p if p != "self" else prefix.rstrip(":"))
    return out


def split_alias(use_path):
    """`a::b as c` -> ("a::b", "c"); `a::b` -> ("a::b", "b")."""
    path, _, alias = use_path.partition(" as ")
    return path, alias or path.split("::")[-1]


def paths_in(text):
    """Every path a file names: its `use` trees (an alias or an imported module then names
    paths too: `use crate::p; p::child::f()` is `crate::p::child::f`) and the paths in its code."""
    out, names = [], {}
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        for p in expand_use_tree(m.group(1)):
            path, name = split_alias(p)
            out.append(path)
            if name not in ("*", "self"):
                names[name] = path
    for m in re.finditer(r"(?<![\w:])(?:\w+)(?:::\w+)+", text):
        first, _, rest = m.group(0).partition("::")
        out.append(names[first] + "::" + rest if first in names else m.group(0))
    return out


def resolve(path, here, modules, reexports=None, seen=()):
    """The module file a path names, from the module `here`; None outside the crate. A name a
    module re-exports (`pub use inner::Name`) resolves to where it is defined."""
    segs = path.split("::")
    if segs[0] == "crate":
        base, rest = [], segs[1:]
    elif segs[0] in ("super", "self"):
        base = list(here)
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
        rest = segs
    elif tuple(here) + (segs[0],) in modules:
        base, rest = list(here), segs  # a child module, named from its parent: `use chunker::X`
    else:
        return None
    full = base + [s for s in rest if s not in ("*",)]
    for k in range(len(full), -1, -1):
        mod = tuple(full[:k])
        if mod in modules:
            if reexports and k < len(full) and (mod, full[k]) in reexports and (mod, full[k]) not in seen:
                target = reexports[(mod, full[k])]
                return resolve(target, mod, modules, reexports, seen + ((mod, full[k]),)) or mod
            return mod
    return None


def reexports_of(modules, texts):
    """(module, name) -> the path it re-exports, for every `pub use a::b::Name` (not globs)."""
    out = {}
    for mod, text in texts.items():
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", text):
            for p in expand_use_tree(m.group(1)):
                path, name = split_alias(p)
                if name != "*":
                    out[(mod, name)] = path
    return out


def import_graph(crate):
    modules = crate_files(crate)
    src = os.path.join(ROOT, crate, "src")
    graph = {m: set() for m in modules}
    texts = {}
    for mod, rel in modules.items():
        with open(os.path.join(src, rel), encoding="utf-8") as f:
            texts[mod] = strip_test_items(strip_comments_and_strings(f.read()))
    reexports = reexports_of(modules, texts)
    for mod, text in texts.items():
        for p in paths_in(text):
            target = resolve(p, mod, modules, reexports)
            if target is not None and target != mod:
                graph[mod].add(target)
    return modules, graph


def strongly_connected(graph):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def cycles():
    found = 0
    for crate in CRATES:
        if not os.path.isdir(os.path.join(ROOT, crate, "src")):
            continue
        modules, graph = import_graph(crate)
        for comp in strongly_connected(graph):
            found += 1
            files = [modules[m] for m in comp]
            print(f"{crate}: a circle of {len(files)} files: {', '.join(files)}")
    return found


FN_RE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:(?:const|async|unsafe|extern\s+\"C\")\s+)*fn\s+(\w+)", re.M)


def functions(include_tests=False):
    out = []
    for crate in CRATES:
        for path, _ in rust_files(crate, include_tests):
            rel = os.path.relpath(path, ROOT)
            with open(path, encoding="utf-8") as f:
                text = strip_comments_and_strings(f.read())
            if not include_tests:
                text = strip_test_items(text)
            for m in FN_RE.finditer(text):
                brace = text.find("{", m.end())
                semi = text.find(";", m.end())
                if brace < 0 or (0 <= semi < brace):
                    continue  # a declaration in a trait
                end = matching_brace(text, brace)
                first = text.count("\n", 0, m.start(1)) + 1
                last = text.count("\n", 0, end) + 1
                out.append((last - first + 1, f"{rel}:{first}", m.group(1)))
    out.sort(reverse=True)
    return out


def selftest():
    """A made-up crate with two circles (a -> b -> p/child.rs -> a, through a parent's
    re-export; r <-> q/inner.rs, through an imported module) and one long function: they are
    found, and nothing else is (an alias is no circle; a test module's imports do not count)."""
    import tempfile

    global ROOT, CRATES
    files = {
        "lib.rs": "pub mod a;\npub mod b;\npub mod c;\npub mod d;\npub mod e;\npub mod p;\npub mod q;\npub mod r;\n",
        "a.rs": "use crate::b::B;\npub struct A;\n",
        "b.rs": "pub struct B;\npub fn f() { crate::p::g(); }\n",
        "p/mod.rs": "mod child;\npub use child::g;\n",
        "p/child.rs": "pub fn g() { let _ = crate::a::A; }\n",
        "d.rs": "use crate::e as e2;\npub fn f() { e2::g(); }\n",
        "e.rs": "pub fn g() {}\n",
        "q/mod.rs": "pub mod inner;\n",
        "q/inner.rs": "pub fn h() { crate::r::i(); }\n",
        "r.rs": "use crate::q;\npub fn i() {}\npub fn j() { q::inner::h(); }\n",
        "c.rs": "pub fn long() {\n" + "    let _ = 1;\n" * 90 + "}\n"
        "#[cfg(test)]\nmod tests {\n    use crate::a::A;\n}\n",
    }
    with tempfile.TemporaryDirectory() as root:
        for rel, text in files.items():
            path = os.path.join(root, "k", "src", rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        ROOT, CRATES = root, ["k"]
        modules, graph = import_graph("k")
        circles = [sorted(modules[m] for m in comp) for comp in strongly_connected(graph)]
        # p/mod.rs only re-exports; d names e through an alias (no circle); r and q/inner.rs
        # name each other, r through the module it imported.
        assert circles == [["a.rs", "b.rs", "p/child.rs"], ["q/inner.rs", "r.rs"]], circles
        long = [(n, name) for n, _, name in functions() if n > 80]
        assert long == [(92, "long")], long
    print("structure.py selftest: the two circles and the long function are found, nothing else")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["cycles", "functions", "check", "selftest"])
    ap.add_argument("--max", type=int, default=80)
    args = ap.parse_args()
    if args.what == "selftest":
        selftest()
        return
    failed = False
    if args.what in ("cycles", "check"):
        n = cycles()
        print(f"{n} circle(s) of imports")
        failed |= n > 0
    if args.what in ("functions", "check"):
        long = [f for f in functions() if f[0] > args.max]
        for lines, where, name in long:
            print(f"{lines:5} {name} {where}")
        print(f"{len(long)} function(s) over {args.max} lines (tests left out)")
        failed |= args.what == "check" and bool(long)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
