#!/usr/bin/env bash
# Makes the toolchain rust-toolchain.toml names usable without a download when this machine's
# stable toolchain is that very version (rustup would otherwise try to fetch it, and some
# machines reach no toolchain server): the name is linked to stable, as rustup's own layout
# has it. Anything else is left to rustup, with a line saying what is wanted.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
want=$(sed -n 's/^channel = "\(.*\)"$/\1/p' "$here/rust-toolchain.toml")
toolchains="${RUSTUP_HOME:-$HOME/.rustup}/toolchains"
# Run by every make and every script: the usual case (already there) costs no rustc call.
[ -z "$want" ] || compgen -G "$toolchains/$want-*" > /dev/null && exit 0
command -v rustup > /dev/null || exit 0
host=$(rustc +stable -vV 2> /dev/null | sed -n 's/^host: //p')
[ -z "$host" ] && exit 0
have=$(rustc +stable --version 2> /dev/null | awk '{print $2}')
if [ "$have" = "$want" ] && [ -d "$toolchains/stable-$host" ]; then
  ln -s "$toolchains/stable-$host" "$toolchains/$want-$host" && echo "toolchain $want: linked to stable ($have)" >&2
else
  echo "rust-toolchain.toml wants Rust $want; stable here is ${have:-absent}: rustup will try to install $want" >&2
fi
