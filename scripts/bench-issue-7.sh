#!/usr/bin/env bash
# Issue 7 benchmark: messenger identity verification, each figure also printed as a ratio
# against one bare HMAC-SHA-256 of the same user id measured in the same run.
# Targets: user_hash verification <= 1 us and JWT verification <= 5 us (median).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p interlock
bin=target/release/interlock
echo "== bench identity (median of ${BATCHES:-201} batches of ${BATCH_SIZE:-2000})"
$bin bench identity --batches "${BATCHES:-201}" --batch-size "${BATCH_SIZE:-2000}"
$bin bench identity --json --batches "${BATCHES:-201}" --batch-size "${BATCH_SIZE:-2000}"
