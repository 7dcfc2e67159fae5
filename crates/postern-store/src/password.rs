//! One budget for every password hash the process computes. Argon2id (default parameters) takes
//! about 19 MiB and a core for as long as it runs; whoever can ask for one — a portal sign-in
//! for an unknown address runs a decoy, an SMTP AUTH attempt, an administrator sign-in, a new
//! account password — could otherwise multiply that by the number of requests in flight (120
//! parallel sign-ins once took the relay from 38 MiB to 2.3 GB). So at most [`RUNNING`] hashes
//! run at once in the whole process, at most [`WAITING`] more wait their turn, and anything past
//! that is refused at once ([`Busy`]: 429 on the web, 454 in SMTP) rather than queued without
//! bound. The permits travel into the blocking thread, so a client that disconnects mid-hash
//! does not free a slot its hash still uses.

use std::sync::{Arc, LazyLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

/// Hashes running at once in the process.
pub const RUNNING: usize = 2;
/// Hashes waiting for a turn; more are refused.
pub const WAITING: usize = 16;

/// The budget is spent: try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks at once")]
pub struct Busy;

/// A bounded pool of Argon2 runs. [`PasswordBudget::global`] is the one the relay and the
/// portal share.
#[derive(Debug)]
pub struct PasswordBudget {
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
}

/// A place in the budget: taken before any other work of the request (a lock reservation in
/// the database), spent by [`Admission::run`].
#[derive(Debug)]
pub struct Admission {
    admitted: OwnedSemaphorePermit,
    running: Arc<Semaphore>,
}

static GLOBAL: LazyLock<PasswordBudget> = LazyLock::new(|| PasswordBudget::new(RUNNING, WAITING));

/// A hash of a password nobody has: an unknown name costs what a wrong password costs.
static DECOY: LazyLock<String> = LazyLock::new(|| {
    use argon2::{Argon2, PasswordHasher};
    Argon2::default()
        .hash_password(b"decoy password, never valid")
        .map(|h| h.to_string())
        .unwrap_or_default()
});

impl PasswordBudget {
    /// `running` at once, `waiting` more in line.
    pub fn new(running: usize, waiting: usize) -> PasswordBudget {
        PasswordBudget {
            admitted: Arc::new(Semaphore::new(running + waiting)),
            running: Arc::new(Semaphore::new(running.max(1))),
        }
    }

    /// The process's budget.
    pub fn global() -> &'static PasswordBudget {
        &GLOBAL
    }

    /// A place in line, or [`Busy`] at once when the line is full.
    pub fn admit(&self) -> Result<Admission, Busy> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy)?;
        Ok(Admission {
            admitted,
            running: self.running.clone(),
        })
    }

    /// Checks `password` against a PHC string (`None`: an unknown name, checked against a decoy
    /// and never right).
    pub async fn verify(
        &self,
        phc: Option<String>,
        password: Zeroizing<Vec<u8>>,
    ) -> Result<bool, Busy> {
        self.admit()?.verify(phc, password).await
    }

    /// An Argon2id PHC string for `password` (default parameters, random salt); `None` only if
    /// the hasher fails.
    pub async fn hash(&self, password: Zeroizing<Vec<u8>>) -> Result<Option<String>, Busy> {
        self.admit()?
            .run(move || {
                use argon2::{Argon2, PasswordHasher};
                Argon2::default()
                    .hash_password(&password)
                    .map(|h| h.to_string())
                    .ok()
            })
            .await
    }
}

impl Admission {
    /// Runs `f` (a hash) on a blocking thread once a turn is free.
    pub async fn run<T: Send + 'static>(
        self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let running = self.running.acquire_owned().await.map_err(|_| Busy)?;
        let admitted = self.admitted;
        tokio::task::spawn_blocking(move || {
            let out = f();
            drop((running, admitted));
            out
        })
        .await
        .map_err(|_| Busy)
    }

    /// [`PasswordBudget::verify`] with this place.
    pub async fn verify(
        self,
        phc: Option<String>,
        password: Zeroizing<Vec<u8>>,
    ) -> Result<bool, Busy> {
        self.run(move || verify_now(phc.as_deref(), &password))
            .await
    }
}

/// The check itself, on the calling thread (for callers already off the async workers).
pub fn verify_now(phc: Option<&str>, password: &[u8]) -> bool {
    use argon2::{Argon2, PasswordHash, PasswordVerifier};
    let stored = phc.is_some();
    let phc = phc.unwrap_or(&DECOY);
    let ok = PasswordHash::new(phc)
        .map(|h| Argon2::default().verify_password(password, &h).is_ok())
        .unwrap_or(false);
    ok && stored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_the_line_requests_are_refused_at_once_and_the_rest_run_two_at_a_time() {
        let b = Arc::new(PasswordBudget::new(2, 3));
        let gate = Arc::new(std::sync::Barrier::new(3));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let now = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut admitted = Vec::new();
        for _ in 0..5 {
            admitted.push(b.admit().unwrap());
        }
        assert_eq!(b.admit().unwrap_err(), Busy, "the sixth is refused at once");
        let mut tasks = Vec::new();
        for (i, a) in admitted.into_iter().enumerate() {
            let (gate, peak, now) = (gate.clone(), peak.clone(), now.clone());
            tasks.push(tokio::spawn(a.run(move || {
                use std::sync::atomic::Ordering::SeqCst;
                let n = now.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(n, SeqCst);
                // The first two wait for the test: the others must not start meanwhile.
                if i < 2 {
                    gate.wait();
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
                now.fetch_sub(1, SeqCst);
            })));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(now.load(std::sync::atomic::Ordering::SeqCst), 2);
        tokio::task::spawn_blocking(move || gate.wait())
            .await
            .unwrap();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(b.admit().is_ok(), "places come back");
    }

    #[tokio::test]
    async fn verify_and_hash() {
        let b = PasswordBudget::new(1, 0);
        let h = b
            .hash(Zeroizing::new(b"s3cret s3cret".to_vec()))
            .await
            .unwrap()
            .unwrap();
        assert!(b
            .verify(Some(h.clone()), Zeroizing::new(b"s3cret s3cret".to_vec()))
            .await
            .unwrap());
        assert!(!b
            .verify(Some(h), Zeroizing::new(b"wrong".to_vec()))
            .await
            .unwrap());
        assert!(!b
            .verify(
                None,
                Zeroizing::new(b"decoy password, never valid".to_vec())
            )
            .await
            .unwrap());
    }
}
