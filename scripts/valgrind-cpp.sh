#!/usr/bin/env bash
# Builds the C++ example (examples/cpp/main.cpp) against the picardiff cdylib and runs it under
# valgrind's memcheck with a full leak check: any memory error or leak (definite or possible) fails.
# scripts/valgrind-cpp.supp holds the one suppression (rayon's global pool threads, alive at exit).
#
# Usage (from anywhere): scripts/valgrind-cpp.sh      Honours CARGO_TARGET_DIR and CXX.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind-cpp: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
cxx="${CXX:-c++}"
command -v "$cxx" >/dev/null || { echo "valgrind-cpp: C++ compiler \`$cxx\` not found (install g++ or set CXX)" >&2; exit 1; }

# The test profile (opt-level 2 + debug info, target/<dir>/debug) reuses what `cargo test` built.
cargo build --lib --profile test --quiet
target_dir="$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
lib_dir="$target_dir/debug"
out_dir="$target_dir/valgrind-cpp"
mkdir -p "$out_dir"

"$cxx" -std=c++17 -O1 -g -Wall -Wextra -Werror -Iinclude examples/cpp/main.cpp \
  -L"$lib_dir" -lpicardiff -Wl,-rpath,"$lib_dir" -o "$out_dir/picardiff-cpp-example"

valgrind --quiet --leak-check=full --show-leak-kinds=definite,possible --error-exitcode=1 \
  --suppressions=scripts/valgrind-cpp.supp \
  "$out_dir/picardiff-cpp-example" >"$out_dir/stdout.txt"
grep -q '^end$' "$out_dir/stdout.txt" || { echo "valgrind-cpp: the example's output is incomplete" >&2; exit 1; }
echo "valgrind-cpp: no memory errors, no leaks ($(grep -c '^sample ' "$out_dir/stdout.txt") samples written)"

# The control-loop example on a small LeRobot policy (tests/data/lerobot/film_bias_k3_g4, its own DDIM-10).
"$cxx" -std=c++17 -O1 -g -Wall -Wextra -Werror -Iinclude examples/cpp/policy_loop.cpp \
  -L"$lib_dir" -lpicardiff -Wl,-rpath,"$lib_dir" -o "$out_dir/picardiff-policy-loop"
valgrind --quiet --leak-check=full --show-leak-kinds=definite,possible --error-exitcode=1 \
  --suppressions=scripts/valgrind-cpp.supp \
  "$out_dir/picardiff-policy-loop" tests/data/lerobot/film_bias_k3_g4 3 >"$out_dir/policy-stdout.txt"
grep -q '^end$' "$out_dir/policy-stdout.txt" || { echo "valgrind-cpp: the policy loop's output is incomplete" >&2; exit 1; }
echo "valgrind-cpp: policy loop: no memory errors, no leaks ($(grep -c '^tick ' "$out_dir/policy-stdout.txt") action chunks)"
