//! Records the exact dependency versions the binary is built from (from the workspace's
//! Cargo.lock) so `interlock version --sbom` can tell an operator what is inside.

use std::fmt::Write;

fn main() {
    let lock = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock");
    println!("cargo:rerun-if-changed={lock}");
    // A missing lock file must fail the build, not yield an empty dependency list.
    let text = match std::fs::read_to_string(lock) {
        Ok(t) => t,
        Err(e) => panic!("cannot read {lock}: {e}"),
    };
    let mut rows = Vec::new();
    for block in text.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|r| r.trim().strip_prefix('='))
                    .map(|v| v.trim().trim_matches('"').to_owned())
            })
        };
        if let (Some(name), Some(version)) = (field("name "), field("version ")) {
            let source = field("source ").unwrap_or_else(|| "workspace".to_owned());
            let source = source.split('+').next().unwrap_or("").to_owned();
            rows.push((name, version, source));
        }
    }
    rows.sort();
    let mut out = String::new();
    for (n, v, s) in rows {
        let _ = writeln!(out, "{n} {v} {s}");
    }
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("deps.txt");
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo:warning=cannot write {}: {e}", dest.display());
    }
}
