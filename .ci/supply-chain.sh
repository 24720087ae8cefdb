#!/usr/bin/env bash
# Supply-chain gate: cargo-deny (advisories against the offline RustSec snapshot, licences,
# bans, sources), review dates of answered advisories, duplicate crypto/TLS crates, and the
# CycloneDX SBOM. Run from the repository root; ../shared must sit beside it.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
command -v cargo-cyclonedx >/dev/null || cargo install --locked cargo-cyclonedx

shared=../shared
if [ ! -x "$shared/tools/advisory-db-checkout" ]; then
  echo "supply-chain: $shared/tools/advisory-db-checkout is missing; the offline RustSec snapshot is needed" >&2
  exit 1
fi
rm -rf target/advisory-db
mkdir -p target/advisory-db
"$shared/tools/advisory-db-checkout" "$(pwd)/target/advisory-db" >/dev/null

# Every answered advisory carries "review by YYYY-MM-DD"; an expired answer fails the build.
python3 - <<'PY'
import datetime, re, sys
text = open("deny.toml").read()
block = re.search(r"ignore\s*=\s*\[(.*?)\n\]", text, re.S)
today = datetime.date.today()
bad = []
for entry in re.findall(r"\{[^}]*\}", block.group(1) if block else ""):
    m = re.search(r"review by (\d{4}-\d{2}-\d{2})", entry)
    if not m:
        bad.append(f"no 'review by' date: {entry}")
    elif datetime.date.fromisoformat(m.group(1)) < today:
        bad.append(f"review date passed: {entry}")
if bad:
    print("supply-chain: advisory answers need attention:\n  " + "\n  ".join(bad), file=sys.stderr)
    sys.exit(1)
PY

# cargo-deny reads metadata offline: every platform's crates must be in the local cache
# (a build fetches only this platform's).
cargo fetch --locked >/dev/null
cargo deny --offline --locked check --hide-inclusion-graph advisories licenses bans sources

# Duplicate versions of crypto/TLS/HTTP crates must each be explained under [bans].skip.
python3 - <<'PY'
import re, subprocess, sys
watched = re.compile(r"^(rustls|rustls-webpki|aws-lc-rs|aws-lc-sys|ring|tokio-rustls|hyper|hyper-util|h2|reqwest|sha2|sha1|hmac|hkdf|digest|aes|aes-gcm|ed25519|ed25519-dalek|x509-parser|rcgen|subtle|zeroize|getrandom|rand|rand_core|untrusted|crypto-common|block-buffer|cpufeatures)$")
# `cargo tree` follows enabled features on this platform (cargo metadata does not).
tree = subprocess.check_output(["cargo", "tree", "--workspace", "--locked", "-e", "normal,build,dev",
                                "--prefix", "none", "--format", "{p}"], text=True)
versions = {}
for line in tree.splitlines():
    parts = line.split()
    if len(parts) >= 2 and parts[1].startswith("v"):
        versions.setdefault(parts[0], set()).add(parts[1][1:])
skips = re.findall(r'crate = "([^"@]+)@([^"]+)"', open("deny.toml").read().split("deny = [")[0])
bad = []
for name, vs in versions.items():
    if len(vs) > 1 and watched.match(name):
        explained = {v for (n, pre) in skips if n == name for v in vs if v.startswith(pre)}
        if len(vs - explained) > 1:
            bad.append(f"{name}: {sorted(vs)}")
if bad:
    print("supply-chain: duplicate crypto/TLS crates without a reason in deny.toml [bans].skip:\n  " + "\n  ".join(bad), file=sys.stderr)
    sys.exit(1)
print("supply-chain: crypto/TLS duplicates all explained")
PY

# CycloneDX SBOM of the binary's dependency tree.
cargo cyclonedx --format json --spec-version 1.5 --manifest-path crates/cli/Cargo.toml >/dev/null
ls crates/cli/*.cdx.json
echo "supply-chain: ok"
