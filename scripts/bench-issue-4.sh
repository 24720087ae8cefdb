#!/usr/bin/env bash
# Issue 4 benchmark: the activity log, each figure printed next to a floor measured in the
# same run on the same machine.
# - append: entries/s through the real path (canonical encoding, leaf hash, sealing, chaining
#   in the group-commit writer), units of BATCH entries, against the same rows written straight
#   into the same table with the same commit size (target: >= 50,000 entries/s embedded);
# - verify export: `verify_export` on one core over an export of those entries, in MB/s, against
#   one SHA-256 pass over the same bytes (target: >= 500 MB/s);
# - verify stored: the data-folder check (read, open, re-encode, hash), for reference.
# Set DATABASE=postgres://… to run against PostgreSQL too.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p interlock
bin=target/release/interlock
entries=${ENTRIES:-200000}
batch=${BATCH:-500}
echo "== bench activity (embedded SQLite, $entries entries, units of $batch)"
$bin bench activity --entries "$entries" --batch "$batch"
$bin bench activity --json --entries "$entries" --batch "$batch"
if [ -n "${DATABASE:-}" ]; then
  echo "== bench activity (PostgreSQL)"
  $bin bench activity --database "$DATABASE" --entries "$entries" --batch "$batch"
fi
echo "== criterion: export verification vs SHA-256 (MB/s)"
cargo bench -q -p interlock-crypto --bench audit_verify 2>/dev/null | grep -E "time:|thrpt:|^audit" || true
