#!/usr/bin/env bash
# Issue 2 benchmarks: every figure is printed as a ratio against a baseline measured in the
# same run on the same machine.
#   ingest: parts/s through the full HTTPS API vs the raw-store and HTTPS floors (embedded SQLite,
#           then PostgreSQL if reachable at $INTERLOCK_BENCH_PG, default postgres://postgres@127.0.0.1:5432/interlock_bench)
#   crypto: field encryption vs raw AES-256-GCM for 1 KiB values
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p interlock
bin=target/release/interlock
seconds=${SECONDS_PER_PHASE:-5}
clients=${CLIENTS:-512}
echo "== bench crypto"
$bin bench crypto
echo "== bench ingest (sqlite, $clients clients, ${seconds}s per phase)"
$bin bench ingest --seconds "$seconds" --clients "$clients"
pg=${INTERLOCK_BENCH_PG:-postgres://postgres@127.0.0.1:5432/interlock_bench}
if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "== bench ingest (postgres)"
  $bin bench ingest --seconds "$seconds" --clients "$clients" --database "$pg"
  psql "${pg%/*}/postgres" -qc "DROP DATABASE IF EXISTS ${pg##*/}_us WITH (FORCE)" >/dev/null 2>&1 || true
fi
