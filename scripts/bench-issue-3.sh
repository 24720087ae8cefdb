#!/usr/bin/env bash
# Issue 3 benchmark: the authorization decision (target <= 10 us median), against the same
# decisions made on a HashSet of permission names, measured in the same criterion run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p interlock-domain --bench authorize -- --noplot >/dev/null 2>&1
python3 - <<'PY'
import json, pathlib
base = pathlib.Path("target/criterion/authorize")
def median_ns(name):
    est = json.loads((base / name / "new" / "estimates.json").read_text())
    return est["median"]["point_estimate"]
b = median_ns("baseline_name_set")
for name in ["decide", "decide_from_stored"]:
    m = median_ns(name)
    print(f"{name:22} {m:9.1f} ns per call   {m / b:6.2f}x baseline_name_set ({b:.1f} ns)")
d = median_ns("decide") / 16
print(f"one decision           {d:9.2f} ns           target <= 10000 ns: {'met' if d <= 10000 else 'MISSED'}")
PY
