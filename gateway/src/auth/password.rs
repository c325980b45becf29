//! Password hashing with argon2id (OWASP's 2024 parameters: 19 MiB, 2 passes, 1 lane).
//!
//! What it does: hashes and verifies on a fixed pool of two threads per core (each call costs
//! ~tens of milliseconds of one core, which must not stall the WebSocket tasks). Fixed, not
//! tokio's blocking pool: each hash takes 19 MiB, and a burst of log-ins spread over hundreds
//! of blocking threads would run that many at once and leave the allocator holding an arena
//! of 19 MiB per thread (measured: ≈0.5 GB of RSS after 200 sign-ups). Jobs queue in a bounded
//! channel; a request abandoned mid-hash leaves its job to finish on the pool, so the number
//! running never exceeds the pool. What it does not do: rate limiting (the HTTP edge limits
//! log-in attempts per address) or password policy beyond length (checked at the edge).

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// Jobs waiting for a hashing thread; senders wait when it is full.
const QUEUE: usize = 1024;

fn pool() -> &'static tokio::sync::mpsc::Sender<Job> {
    static POOL: OnceLock<tokio::sync::mpsc::Sender<Job>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (tx, rx) = tokio::sync::mpsc::channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..2 * cores {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("wagu-argon2-{i}"))
                .spawn(move || {
                    loop {
                        // One worker waits on the channel at a time; the others on the lock.
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).blocking_recv();
                        let Some(job) = job else { return };
                        // A panicking job must not take a worker with it.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .expect("spawn a password-hashing thread");
        }
        tx
    })
}

/// Runs `f` on the hashing pool.
async fn on_pool<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool()
        .send(Box::new(move || {
            let _ = tx.send(f());
        }))
        .await
        .map_err(|_| anyhow::anyhow!("the password-hashing pool stopped"))?;
    rx.await
        .map_err(|_| anyhow::anyhow!("the password-hashing job failed"))
}

fn argon() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) of a password.
pub async fn hash(password: String) -> anyhow::Result<String> {
    on_pool(move || {
        argon()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await?
}

/// Whether `password` matches `phc`. A malformed stored hash is an error, not a mismatch.
pub async fn verify(password: String, phc: String) -> anyhow::Result<bool> {
    on_pool(move || {
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

    /// Abandoned requests leave their hash to the fixed pool, which keeps answering.
    #[tokio::test]
    async fn abandoned_hashes_stay_on_the_fixed_pool() {
        // Hashing runs on the pool's named threads, not on tokio's growing blocking pool.
        let on = super::on_pool(|| std::thread::current().name().map(String::from))
            .await
            .unwrap();
        assert!(on.is_some_and(|n| n.starts_with("wagu-argon2-")));
        let phc = super::hash("correct horse".into()).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let phc = phc.clone();
            tasks.push(tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_millis(1),
                    super::verify("correct horse".into(), phc),
                )
                .await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // The abandoned jobs ran out on the pool; it still answers.
        assert!(super::verify("correct horse".into(), phc).await.unwrap());
    }
}
