//! `interlock version [--sbom]`: the version, and with `--sbom` every crate (name, version,
//! source) the binary was built from, read from Cargo.lock at build time. For a CycloneDX
//! document use `cargo cyclonedx` (docs/supply-chain.md).

const DEPS: &str = include_str!(concat!(env!("OUT_DIR"), "/deps.txt"));

pub fn render(sbom: bool) -> String {
    let mut out = format!("interlock {}\n", env!("CARGO_PKG_VERSION"));
    if sbom {
        out.push_str(DEPS);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbom_lists_the_crypto_stack_and_our_crates() {
        let s = render(true);
        assert!(s.starts_with("interlock "));
        assert!(s.lines().any(|l| l.starts_with("aws-lc-rs ")), "{s}");
        assert!(s.lines().any(|l| l.starts_with("rustls ")));
        assert!(
            s.lines()
                .any(|l| l.starts_with("interlock-crypto ") && l.ends_with("workspace"))
        );
        assert_eq!(render(false).lines().count(), 1);
    }
}
