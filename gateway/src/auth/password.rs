//! Password hashing with argon2id (OWASP's 2024 parameters: 19 MiB, 2 passes, 1 lane).
//!
//! What it does: hashes and verifies on tokio's blocking pool (each call costs ~tens of
//! milliseconds of one core, which must not stall the WebSocket tasks), at most two per core
//! at once: each takes 19 MiB, and without a cap a burst of log-ins from many addresses would
//! queue hundreds of blocking threads and gigabytes of memory. What it does not do:
//! rate limiting (the HTTP edge limits log-in attempts per address) or password policy beyond
//! length (checked at the edge).

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;

/// Hashes in flight, process-wide.
fn permits() -> std::sync::Arc<tokio::sync::Semaphore> {
    static SEM: OnceLock<std::sync::Arc<tokio::sync::Semaphore>> = OnceLock::new();
    SEM.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::sync::Arc::new(tokio::sync::Semaphore::new(2 * cores))
    })
    .clone()
}

fn argon() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) of a password.
pub async fn hash(password: String) -> anyhow::Result<String> {
    // The permit moves into the blocking job: a request abandoned mid-hash must not free its
    // slot while argon2 still runs.
    let permit = permits().acquire_owned().await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        argon()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await?
}

/// Whether `password` matches `phc`. A malformed stored hash is an error, not a mismatch.
pub async fn verify(password: String, phc: String) -> anyhow::Result<bool> {
    let permit = permits().acquire_owned().await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        Ok(argon()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await?
}

/// A hash to verify against when the email is unknown, so a log-in attempt takes as long
/// whether or not the account exists (no account enumeration by timing).
pub async fn decoy() -> String {
    static DECOY: OnceLock<String> = OnceLock::new();
    if let Some(d) = DECOY.get() {
        return d.clone();
    }
    let h = hash("decoy password that matches nothing".into())
        .await
        .expect("argon2 hashes a constant");
    DECOY.get_or_init(|| h).clone()
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_verify_and_differ_by_salt() {
        let a = super::hash("correct horse".into()).await.unwrap();
        let b = super::hash("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(
            super::verify("correct horse".into(), a.clone())
                .await
                .unwrap()
        );
        assert!(!super::verify("wrong horse".into(), a).await.unwrap());
        assert!(super::verify("x".into(), "not a phc".into()).await.is_err());
    }
}
