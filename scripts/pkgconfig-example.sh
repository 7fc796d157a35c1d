#!/usr/bin/env bash
# The README's pkg-config recipe for the C ABI, step by step as written there: a release build,
# the library and header installed under a prefix, picardiff.pc made from picardiff.pc.in, the C++
# example (examples/cpp/main.cpp) compiled and linked with `pkg-config --cflags --libs picardiff`
# (the .pc file carries the rpath, so the program finds libpicardiff.so without LD_LIBRARY_PATH) and
# run; then the same statically (`pkg-config --static`, a prefix holding only libpicardiff.a).
# Fails if any step fails or the example's output is incomplete.
#
# Usage (from anywhere): scripts/pkgconfig-example.sh [PREFIX]
#   PREFIX defaults to a fresh temporary directory (removed at exit). Honours CARGO_TARGET_DIR, CXX.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in pkg-config "${CXX:-c++}"; do
  command -v "$tool" >/dev/null || { echo "pkgconfig-example: \`$tool\` not found" >&2; exit 1; }
done
cxx="${CXX:-c++}"
if [ $# -ge 1 ]; then
  PREFIX="$(mkdir -p "$1" && cd "$1" && pwd)"
else
  PREFIX="$(mktemp -d)"
  trap 'rm -rf "$PREFIX"' EXIT
fi
target_dir="$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"

# --- the README's steps
cargo build --release --lib --quiet
mkdir -p "$PREFIX/lib/pkgconfig" "$PREFIX/include"
cp "$target_dir/release/libpicardiff.so" "$PREFIX/lib/"
cp include/picardiff.h "$PREFIX/include/"
sed -e "s|@PREFIX@|$PREFIX|" -e "s|@VERSION@|$version|" picardiff.pc.in >"$PREFIX/lib/pkgconfig/picardiff.pc"
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
# shellcheck disable=SC2046 # pkg-config's output is meant to be split into words
"$cxx" -std=c++17 examples/cpp/main.cpp $(pkg-config --cflags --libs picardiff) -o "$PREFIX/picardiff-example"
(cd / && "$PREFIX/picardiff-example") >"$PREFIX/stdout.txt"
grep -q '^end$' "$PREFIX/stdout.txt" || { echo "pkgconfig-example: shared: output incomplete" >&2; exit 1; }
echo "pkgconfig-example: shared: pkg-config $(pkg-config --modversion picardiff), $(grep -c '^sample ' "$PREFIX/stdout.txt") samples"

# --- static: a prefix with only libpicardiff.a
static="$PREFIX/static"
mkdir -p "$static/lib/pkgconfig" "$static/include"
cp "$target_dir/release/libpicardiff.a" "$static/lib/"
cp include/picardiff.h "$static/include/"
sed -e "s|@PREFIX@|$static|" -e "s|@VERSION@|$version|" picardiff.pc.in >"$static/lib/pkgconfig/picardiff.pc"
# shellcheck disable=SC2046
PKG_CONFIG_PATH="$static/lib/pkgconfig" "$cxx" -std=c++17 examples/cpp/main.cpp \
  $(PKG_CONFIG_PATH="$static/lib/pkgconfig" pkg-config --static --cflags --libs picardiff) -o "$static/picardiff-example"
if readelf -d "$static/picardiff-example" 2>/dev/null | grep -q 'libpicardiff'; then
  echo "pkgconfig-example: static: the program still needs libpicardiff.so" >&2
  exit 1
fi
(cd / && "$static/picardiff-example") >"$static/stdout.txt"
grep -q '^end$' "$static/stdout.txt" || { echo "pkgconfig-example: static: output incomplete" >&2; exit 1; }
cmp -s "$PREFIX/stdout.txt" "$static/stdout.txt" || { echo "pkgconfig-example: static and shared outputs differ" >&2; exit 1; }
echo "pkgconfig-example: static: same output"
