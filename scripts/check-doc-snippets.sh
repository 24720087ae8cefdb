#!/usr/bin/env bash
# Runs the user_hash snippets of docs/messenger.md (Node, Python, Ruby, PHP, shell) exactly as
# printed and checks each prints the documented test vector. Run by .ci/run, which installs
# the interpreters. (The Rust snippet needs crates outside this workspace; the same vector is
# checked in Rust by interlock-crypto's `known_vector` test.)
set -euo pipefail
cd "$(dirname "$0")/.."
doc=docs/messenger.md
want=c4d291f5b8fcd65fc1ee8a75a3526b60534af392233a929df4e064b733ce6fe7
grep -q "$want" "$doc" || { echo "the test vector is not in $doc" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The first fenced block of a language under the "Computing user_hash" section.
block() {
  awk -v lang="$1" '
    /^## Computing user_hash/ {in_section=1; next}
    /^## / && in_section {exit}
    in_section && $0 == "```" lang {grab=1; next}
    grab && /^```/ {exit}
    grab {print}
  ' "$doc"
}

fail=0
check() {
  local name=$1; shift
  local got
  got=$("$@" 2>&1 | tail -n1)
  if [ "$got" = "$want" ]; then
    echo "ok   $name"
  else
    echo "FAIL $name: got '$got'" >&2
    fail=1
  fi
}

block js >"$tmp/snippet.js";     check node   node "$tmp/snippet.js"
block python >"$tmp/snippet.py"; check python python3 "$tmp/snippet.py"
block ruby >"$tmp/snippet.rb";   check ruby   ruby "$tmp/snippet.rb"
block php >"$tmp/snippet.php";   check php    php "$tmp/snippet.php"
block sh >"$tmp/snippet.sh";     check shell  bash "$tmp/snippet.sh"
for f in js py rb php sh; do
  [ -s "$tmp/snippet.$f" ] || { echo "FAIL: no .$f snippet found in $doc" >&2; fail=1; }
done
exit $fail
