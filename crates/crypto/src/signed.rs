//! Signed documents: deletion receipts, erasure notices to sub-processors and other statements a
//! region makes that someone must be able to check offline.
//!
//! A document is a JSON object. Its signature is Ed25519 (the region's activity-log signing
//! key, the one whose public key `GET /v1/activity-logs/public-key` serves) over
//!
//! ```text
//! "interlock.signed.v1\n" || type || "\n" || canonical JSON of the document
//! ```
//!
//! where `type` names what the document is (`interlock.deletion_receipt.v1`, …) so a signature
//! made for one kind of document can never be passed off as another, and canonical JSON is
//! compact with object keys sorted by their bytes (the activity log's canonical form). The
//! wire form is `{"type", "document", "key_id", "signature"}` with the signature in standard
//! base64.

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use interlock_domain::activity::write_canonical;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::audit::{AuditPublicKey, AuditSigningKey};

const LABEL: &[u8] = b"interlock.signed.v1\n";

/// A signed JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedDocument {
    #[serde(rename = "type")]
    pub kind: String,
    pub document: Map<String, Value>,
    pub key_id: String,
    pub signature: String,
}

/// Why a signed document was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignedDocumentError {
    #[error("the document is a {found}, not a {expected}")]
    WrongType { expected: String, found: String },
    #[error("the document is signed by key {found}, not by the expected key {expected}")]
    WrongKey { expected: String, found: String },
    #[error("the signature is not the standard base64 of 64 bytes")]
    MalformedSignature,
    #[error("the signature does not verify (the document was altered, or signed by another key)")]
    BadSignature,
}

fn message(kind: &str, document: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(LABEL);
    out.extend_from_slice(kind.as_bytes());
    out.push(b'\n');
    write_canonical(&Value::Object(document.clone()), &mut out);
    out
}

impl AuditSigningKey {
    /// Sign `document` as a document of type `kind`.
    pub fn sign_document(&self, kind: &str, document: Map<String, Value>) -> SignedDocument {
        let sig = self.pair.sign(&message(kind, &document));
        SignedDocument {
            kind: kind.to_owned(),
            document,
            key_id: self.public_key().key_id(),
            signature: BASE64.encode(sig.as_ref()),
        }
    }
}

impl AuditPublicKey {
    /// Check that `signed` is a document of type `kind` signed by this key; returns the
    /// document.
    pub fn verify_document<'a>(
        &self,
        signed: &'a SignedDocument,
        kind: &str,
    ) -> Result<&'a Map<String, Value>, SignedDocumentError> {
        if signed.kind != kind {
            return Err(SignedDocumentError::WrongType {
                expected: kind.to_owned(),
                found: signed.kind.chars().take(64).collect(),
            });
        }
        let expected = self.key_id();
        if signed.key_id != expected {
            return Err(SignedDocumentError::WrongKey {
                expected,
                found: signed.key_id.chars().take(16).collect(),
            });
        }
        let sig = BASE64
            .decode(&signed.signature)
            .map_err(|_| SignedDocumentError::MalformedSignature)?;
        if sig.len() != 64 {
            return Err(SignedDocumentError::MalformedSignature);
        }
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&message(&signed.kind, &signed.document), &sig)
            .map_err(|_| SignedDocumentError::BadSignature)?;
        Ok(&signed.document)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn doc() -> Map<String, Value> {
        let Value::Object(m) = serde_json::json!({"request_id": "dr_1", "counts": {"contacts": 1}})
        else {
            unreachable!()
        };
        m
    }

    #[test]
    fn round_trip_and_key_order_does_not_matter() {
        let key = AuditSigningKey::generate().unwrap();
        let signed = key.sign_document("interlock.test.v1", doc());
        let json = serde_json::to_string(&signed).unwrap();
        let back: SignedDocument = serde_json::from_str(&json).unwrap();
        assert_eq!(
            key.public_key()
                .verify_document(&back, "interlock.test.v1")
                .unwrap(),
            &doc()
        );
        // The same document with its keys written in another order still verifies.
        let reordered = r#"{"counts":{"contacts":1},"request_id":"dr_1"}"#;
        let mut other = back.clone();
        other.document = serde_json::from_str(reordered).unwrap();
        assert!(
            key.public_key()
                .verify_document(&other, "interlock.test.v1")
                .is_ok()
        );
    }

    #[test]
    fn altered_retyped_or_foreign_documents_are_refused() {
        let key = AuditSigningKey::generate().unwrap();
        let signed = key.sign_document("interlock.test.v1", doc());
        let mut altered = signed.clone();
        altered
            .document
            .insert("request_id".into(), Value::from("dr_2"));
        assert_eq!(
            key.public_key()
                .verify_document(&altered, "interlock.test.v1"),
            Err(SignedDocumentError::BadSignature)
        );
        assert!(matches!(
            key.public_key()
                .verify_document(&signed, "interlock.other.v1"),
            Err(SignedDocumentError::WrongType { .. })
        ));
        let mut retyped = signed.clone();
        retyped.kind = "interlock.other.v1".into();
        assert_eq!(
            key.public_key()
                .verify_document(&retyped, "interlock.other.v1"),
            Err(SignedDocumentError::BadSignature)
        );
        let other = AuditSigningKey::generate().unwrap();
        assert!(matches!(
            other
                .public_key()
                .verify_document(&signed, "interlock.test.v1"),
            Err(SignedDocumentError::WrongKey { .. })
        ));
        let mut garbled = signed;
        garbled.signature = "AAAA".into();
        assert_eq!(
            key.public_key()
                .verify_document(&garbled, "interlock.test.v1"),
            Err(SignedDocumentError::MalformedSignature)
        );
    }
}
