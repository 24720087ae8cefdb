#!/usr/bin/env bash
# Issue 6 benchmark: erasing one data subject on the embedded store (SQLite), in a small and
# a large workspace measured in the same run.
# - each erased subject owns a conversation with PARTS messages (target: unreadable in
#   < 100 ms for 10,000);
# - the small workspace holds SMALL_CONTACTS other contacts, the large one LARGE_PARTS other
#   messages: the printed large/small ratio should stay near 1 (the erasure grows with the
#   subject's own data, not with the workspace).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p interlock
bin="${CARGO_TARGET_DIR:-target}/release/interlock"
"$bin" bench erasure --parts "${PARTS:-10000}" --small-contacts "${SMALL_CONTACTS:-10000}" \
  --large-parts "${LARGE_PARTS:-1000000}" --large-contacts "${LARGE_CONTACTS:-1000}" \
  --subjects "${SUBJECTS:-5}" "$@"
