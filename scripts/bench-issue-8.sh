#!/usr/bin/env bash
# Issue 8 benchmark: what a request under a staff grant costs the embedded store (the grant
# behind the token, the trusted device behind the certificate, and the `staff_access.used`
# activity entry committed before the handler) next to an API-token request's
# authentication, measured in the same run: one at a time and with CONCURRENCY in flight.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p interlock
bin="${CARGO_TARGET_DIR:-target}/release/interlock"
"$bin" bench staff --requests "${REQUESTS:-2000}" --concurrency "${CONCURRENCY:-32}" "$@"
