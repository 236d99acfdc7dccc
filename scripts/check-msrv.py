#!/usr/bin/env python3
"""Checks the Rust versions agree: the toolchain running is the one rust-toolchain.toml names,
it is not below the workspace's rust-version (Cargo.toml), and that rust-version is at least
what every locked dependency declares it needs, so the minimum the README states is one the
lock can build with. (Clippy's incompatible_msrv lint checks the workspace's own uses of std
against the same rust-version.) Exits 1 saying which does not hold."""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def version(text):
    parts = [int(x) for x in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"], check=True, capture_output=True, text=True
        ).stdout
    )
    members = set(meta["workspace_members"])
    resolved = {n["id"] for n in meta["resolve"]["nodes"]}
    declared = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
    if len(declared) != 1 or None in declared:
        print(f"check-msrv: workspace members declare rust-version {sorted(map(str, declared))}; want one")
        return 1
    msrv = declared.pop()
    needs = sorted(
        ((version(p["rust_version"]), p["name"], p["version"]) for p in meta["packages"]
         if p["id"] in resolved and p["id"] not in members and p.get("rust_version")),
        reverse=True,
    )
    over = [(v, n, pv) for v, n, pv in needs if v > version(msrv)]
    if over:
        names = ", ".join(f"{n} {pv} ({'.'.join(map(str, v))})" for v, n, pv in over[:10])
        print(f"check-msrv: rust-version {msrv} is below what locked dependencies need: {names}")
        return 1
    with open(os.path.join(ROOT, "rust-toolchain.toml")) as f:
        channel = re.search(r'^channel = "([0-9.]+)"$', f.read(), re.M).group(1)
    running = subprocess.run(["rustc", "--version"], check=True, capture_output=True, text=True, cwd=ROOT).stdout.split()[1]
    if running != channel or version(channel) < version(msrv):
        print(f"check-msrv: rustc {running} runs; rust-toolchain.toml names {channel}; rust-version is {msrv}")
        return 1
    top = needs[0] if needs else None
    print(f"check-msrv: rustc {running} as rust-toolchain.toml says; rust-version {msrv}; the most any locked dependency needs: "
          + (f"{'.'.join(map(str, top[0]))} ({top[1]})" if top else "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
