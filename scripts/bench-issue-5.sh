#!/usr/bin/env bash
# Issue 5 benchmark: the retention sweep on the embedded store, each figure next to a
# baseline measured in the same run.
# - no-op: a sweep that finds nothing among CONTACTS contacts (target < 50 ms), next to a
#   counting scan of those contacts (what it would pay without its indexes);
# - expiry: EXPIRE visitors past nine months deleted by the sweep (target >= 20,000/s), next
#   to BASELINE of them deleted one by one (one transaction per visitor);
# - expiry with content: EXPIRE_CONTENT visitors that each own a conversation, a message and
#   an event.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p interlock
bin="${CARGO_TARGET_DIR:-target}/release/interlock"
"$bin" bench retention --contacts "${CONTACTS:-1000000}" --expire "${EXPIRE:-100000}" \
  --expire-content "${EXPIRE_CONTENT:-20000}" --baseline "${BASELINE:-200}" "$@"
