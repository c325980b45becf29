//! Access and refresh tokens.
//!
//! Access tokens are HS256 JWTs (`sub` = account id, `name`, `iat`, `exp`, `iss` = "wagu"),
//! verified with the shared key alone: any gateway node accepts them with no session lookup,
//! so a client may reconnect anywhere (the sticky-session problem of the app Wagu replaces).
//! They live `auth.access_ttl_secs` (15 minutes by default), which bounds how long a revoked
//! session keeps access.
//!
//! Refresh tokens are 256 random bits, stored only as a SHA-256 in the records store, rotated
//! on every use; presenting a spent one revokes its whole family (it was stolen or replayed).
//!
//! What it does not do: key rotation with several live keys (one key; rotating it signs
//! everyone out after at most one access lifetime), asymmetric keys for third parties.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wagu_engine::sessions::random_token;
use wagu_proto::records::AccountId;

const ISSUER: &str = "wagu";

/// What an access token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub name: String,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
    /// Random per token: two tokens issued in the same second still differ.
    #[serde(default)]
    pub jti: String,
}

impl Claims {
    pub fn account(&self) -> AccountId {
        AccountId(self.sub.clone())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("the access token has expired; refresh it")]
    Expired,
    #[error("the access token is not valid")]
    Invalid,
}

/// Signs and verifies access tokens; makes refresh tokens.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
}

impl Tokens {
    pub fn new(secret: &[u8], access_ttl_secs: u64, refresh_ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        // Nodes' clocks agree to well under this; a token never lives longer than TTL + 5 s.
        validation.leeway = 5;
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl_secs,
            refresh_ttl_secs,
        }
    }

    /// A signed access token issued at `now` (unix seconds), and its expiry.
    pub fn issue(&self, account: &AccountId, name: &str, now: u64) -> (String, u64) {
        let claims = Claims {
            sub: account.0.clone(),
            name: name.to_string(),
            iat: now,
            exp: now + self.access_ttl_secs,
            iss: ISSUER.into(),
            jti: random_id(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail");
        (token, claims.exp)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        // Tokens are small; a huge one is garbage, refused before any parsing.
        if token.len() > 2048 {
            return Err(TokenError::Invalid);
        }
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(TokenError::Expired),
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

/// A new refresh token (what the client keeps) and its hash (what the store keeps).
pub fn new_refresh() -> (String, String) {
    let token = format!("wr_{}", random_token(32));
    let hash = hash_refresh(&token);
    (token, hash)
}

/// Hex SHA-256 of a refresh token: a leaked store holds nothing a client can present.
pub fn hash_refresh(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Lower-case hex SHA-256: refresh-token hashes, idempotent request fingerprints.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 128 random bits, URL-safe: ids of accounts, posts and refresh families.
pub fn random_id() -> String {
    random_token(16)
}

/// The token key: `auth.token_secret` when set, else a random key created once in
/// `data_dir/auth.key` (owner-only) so tokens outlive restarts of a single node.
pub async fn load_secret(
    configured: Option<&str>,
    data_dir: &std::path::Path,
) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = configured {
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("auth.key");
    match tokio::fs::read_to_string(&path).await {
        Ok(s) if s.trim().len() >= 32 => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => anyhow::bail!("{} is shorter than 32 characters", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
    let key = random_token(32);
    let tmp = data_dir.join("auth.key.tmp");
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(key.as_bytes())?;
        f.sync_all()?;
    }
    tokio::fs::rename(&tmp, &path).await?;
    tracing::info!(path = %path.display(), "created the access-token key (set auth.token_secret to share one across nodes)");
    Ok(key.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn tokens() -> Tokens {
        Tokens::new(b"0123456789abcdef0123456789abcdef", 900, 3600)
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn tokens_verify_expire_and_refuse_forgeries() {
        let t = tokens();
        let id = AccountId("acc1".into());
        let (tok, exp) = t.issue(&id, "민지", now());
        let c = t.verify(&tok).unwrap();
        assert_eq!(
            (c.account(), c.name.as_str(), c.exp),
            (id.clone(), "민지", exp)
        );
        // Issued an hour ago with a 15-minute life: expired.
        let (old, _) = t.issue(&id, "민지", now() - 3600);
        assert_eq!(t.verify(&old), Err(TokenError::Expired));
        // Another key's token, a tampered payload, garbage, an oversized token.
        let other = Tokens::new(b"another key another key another k", 900, 3600);
        assert_eq!(other.verify(&tok), Err(TokenError::Invalid));
        let mut parts: Vec<&str> = tok.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            format!(
                r#"{{"sub":"admin","name":"x","iat":1,"exp":{},"iss":"wagu"}}"#,
                now() + 99
            )
            .as_bytes(),
        );
        parts[1] = &forged;
        assert_eq!(t.verify(&parts.join(".")), Err(TokenError::Invalid));
        assert_eq!(t.verify("not.a.jwt"), Err(TokenError::Invalid));
        assert_eq!(t.verify(&"a".repeat(5000)), Err(TokenError::Invalid));
        // "alg": "none" is never accepted.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert_eq!(t.verify(&none), Err(TokenError::Invalid));
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, ha) = new_refresh();
        let (b, hb) = new_refresh();
        assert_ne!(a, b);
        assert_eq!(hash_refresh(&a), ha);
        assert_ne!(ha, hb);
        assert_eq!(ha.len(), 64);
        assert!(!ha.contains(&a[3..]));
    }

    #[tokio::test]
    async fn the_generated_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = load_secret(None, dir.path()).await.unwrap();
        let k2 = load_secret(None, dir.path()).await.unwrap();
        assert_eq!(k1, k2);
        assert!(k1.len() >= 32);
        let k3 = load_secret(Some("configured-secret-configured-secret"), dir.path())
            .await
            .unwrap();
        assert_eq!(k3, b"configured-secret-configured-secret");
    }
}
