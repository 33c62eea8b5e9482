#!/usr/bin/env bash
# duet check vs squawk on the same files, by the same measurement: the whole directory, wall time
# of the process, median of 3 runs each, interleaved (duet, squawk, duet, squawk, ...).
#
#   shadow/examples/check_vs_squawk.sh [STATEMENTS] [DIR]
#
# Needs target/release/duet (cargo build --release -p duet --bin duet), the generator example
# (cargo build --release -p duet-shadow --example check_bench) and squawk on PATH
# (pip install squawk-cli). DIR (default /tmp/duet-check-corpus) is generated when it has no
# .sql files: STATEMENTS (default 100000) statements, 100 per file. Both tools run from an empty
# directory so neither picks up a config file (duet reads config/duet.toml, squawk .squawk.toml)
# and print their default human output to /dev/null (both exit non-zero: there are findings).
# squawk takes no directory, so it gets the pattern "DIR/*.sql" and expands it itself.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
total=${1:-100000}
dir=${2:-/tmp/duet-check-corpus}
duet="$root/target/release/duet"
bench="$root/target/release/examples/check_bench"
runs=3

command -v squawk >/dev/null || { echo "squawk not found (pip install squawk-cli)" >&2; exit 2; }
[ -x "$duet" ] || { echo "$duet missing (cargo build --release -p duet --bin duet)" >&2; exit 2; }
if ! ls "$dir"/*.sql >/dev/null 2>&1; then
    [ -x "$bench" ] || { echo "$bench missing (cargo build --release -p duet-shadow --example check_bench)" >&2; exit 2; }
    "$bench" "$total" "$dir" >/dev/null
fi
dir=$(cd "$dir" && pwd)
stmts=$(grep -c ';$' "$dir"/*.sql | awk -F: '{ s += $2 } END { print s }')
files=$(ls "$dir"/*.sql | wc -l)
empty=$(mktemp -d)
trap 'rmdir "$empty"' EXIT
cd "$empty"

# Wall seconds of one run of "$@".
wall() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || true
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }

echo "$stmts statements in $files files ($dir); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "duet: $("$duet" --version 2>/dev/null || echo "$duet"); squawk: $(squawk --version)"
duet_times=()
squawk_times=()
for i in $(seq "$runs"); do
    d=$(wall "$duet" check "$dir")
    s=$(wall squawk "$dir/*.sql")
    printf 'run %d: duet %.3f s, squawk %.3f s\n' "$i" "$d" "$s"
    duet_times+=("$d")
    squawk_times+=("$s")
done
dm=$(median "${duet_times[@]}")
sm=$(median "${squawk_times[@]}")
dr=$(echo "$stmts / $dm" | bc -l)
sr=$(echo "$stmts / $sm" | bc -l)
printf 'duet check: median %.3f s, %.0f statements/s\n' "$dm" "$dr"
printf 'squawk:     median %.3f s, %.0f statements/s\n' "$sm" "$sr"
printf 'ratio (duet / squawk statements/s): %.2fx\n' "$(echo "$dr / $sr" | bc -l)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
