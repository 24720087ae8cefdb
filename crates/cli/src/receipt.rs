//! `interlock receipt verify FILE --public-key FILE`: check a signed deletion receipt offline
//! (an erasure's or a workspace deletion's), with the region's public key as
//! `GET /v1/activity-logs/public-key` serves it (PEM).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use interlock_crypto::{AuditPublicKey, SignedDocument};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The receipt: the JSON `receipt` object of the API's answer (`{"type", "document",
    /// "key_id", "signature"}`), or a whole answer that holds one under `receipt`.
    pub file: PathBuf,
    /// The region's Ed25519 public key, PEM (`public_key_pem` of
    /// `GET /v1/activity-logs/public-key`).
    #[arg(long)]
    pub public_key: PathBuf,
}

/// The receipt in `text`: the object itself, or the `receipt` member of an API answer.
fn parse(text: &str) -> Result<SignedDocument> {
    let value: serde_json::Value = serde_json::from_str(text).context("the file is not JSON")?;
    let inner = value.get("receipt").cloned().unwrap_or(value);
    serde_json::from_value(inner)
        .context("not a signed receipt (expected type, document, key_id and signature)")
}

pub fn verify(args: &VerifyArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let pem = std::fs::read_to_string(&args.public_key)
        .with_context(|| format!("reading {}", args.public_key.display()))?;
    let key = AuditPublicKey::from_pem(&pem).context("the public key")?;
    let receipt = parse(&text)?;
    let doc = match key.verify_document(&receipt, interlock_storage::cell::RECEIPT_TYPE) {
        Ok(d) => d,
        Err(e) => bail!("receipt NOT valid: {e}"),
    };
    let field = |k: &str| doc.get(k).and_then(|v| v.as_str()).unwrap_or("-");
    println!(
        "receipt valid: {} {} of workspace {} (region {}), signed by key {}",
        field("receipt_id"),
        field("kind"),
        field("workspace_id"),
        field("region"),
        receipt.key_id
    );
    if let Some(subject) = doc.get("subject").and_then(|v| v.as_str()) {
        println!("subject: {subject}");
    }
    if let Some(deleted) = doc.get("deleted").and_then(|v| v.as_object()) {
        let counts: Vec<String> = deleted.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("deleted: {}", counts.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reads_a_bare_receipt_or_an_answer_holding_one() {
        let key = interlock_crypto::AuditSigningKey::generate().unwrap();
        let mut doc = serde_json::Map::new();
        doc.insert("kind".into(), "erasure".into());
        let signed = key.sign_document(interlock_storage::cell::RECEIPT_TYPE, doc);
        let bare = serde_json::to_string(&signed).unwrap();
        assert_eq!(parse(&bare).unwrap(), signed);
        let answer = serde_json::json!({"id": "ct_x", "deleted": true, "receipt": signed});
        assert_eq!(parse(&answer.to_string()).unwrap(), signed);
        assert!(parse("{\"id\": 1}").is_err());
        assert!(parse("not json").is_err());
    }
}
