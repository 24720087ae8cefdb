//! The WebAuthn relying party (webauthn-rs), bound to the server's public origin. Passkey
//! ceremonies always require user verification (webauthn-rs's passkey flows ask for it and
//! refuse assertions without the UV flag).

use webauthn_rs::prelude::Url;
use webauthn_rs::{Webauthn, WebauthnBuilder};

/// A relying party for `origin` (`https://host[:port]`); its id is the origin's host.
pub fn relying_party(origin: &str) -> Result<Webauthn, String> {
    let url = Url::parse(origin).map_err(|e| e.to_string())?;
    if url.scheme() != "https" {
        return Err("must be an https:// origin".into());
    }
    let host = url
        .host_str()
        .ok_or_else(|| "has no host".to_owned())?
        .to_owned();
    WebauthnBuilder::new(&host, &url)
        .and_then(|b| b.rp_name("Interlock").build())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert!(relying_party("https://localhost:8443").is_ok());
        assert!(relying_party("https://app.example.com").is_ok());
        assert!(relying_party("http://localhost:8443").is_err());
        assert!(relying_party("not a url").is_err());
    }
}
