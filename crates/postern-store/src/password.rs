//! One budget for every password hash the process computes. Argon2id (default parameters) takes
//! about 19 MiB and a core for as long as it runs; whoever can ask for one — a portal sign-in
//! for an unknown address runs a decoy, an SMTP AUTH attempt, an administrator sign-in, a new
//! account password — could otherwise multiply that by the number of requests in flight (120
//! parallel sign-ins once took the relay from 38 MiB to 2.3 GB). So at most [`RUNNING`] hashes
//! run at once in the whole process, at most [`WAITING`] more wait their turn, and anything past
//! that is refused at once ([`Busy`]: 429 on the web, 454 in SMTP) rather than queued without
//! bound. A place is given back when its hash ends, so a client that disconnects mid-hash does
//! not free a slot its hash still uses.
//!
//! The hashes run on [`RUNNING`] threads of their own, each with one Argon2 memory area it keeps
//! and wipes after every run ([`Hasher`]). Hashing on the runtime's blocking threads, as before,
//! freed 19 MiB per run on whichever thread ran it; glibc then raises its mmap threshold and
//! keeps such blocks in that thread's arena, so a sign-in flood left 100–240 MB resident with
//! only two hashes ever running at once (and 55 MB with the threshold pinned). Two long-lived
//! areas make the memory a constant: 2 × 19 MiB, whatever arrives.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::{Zeroize, Zeroizing};

/// Hashes running at once in the process (each on its own thread).
pub const RUNNING: usize = 2;
/// Hashes waiting for a turn; more are refused.
pub const WAITING: usize = 16;
/// The most memory a stored hash may ask for (KiB): a hash made with more (not by us: ours use
/// the defaults, 19 MiB) is refused as unreadable rather than growing a worker's area.
pub const MAX_MEMORY_KIB: u32 = 256 * 1024;
/// The most passes a stored hash may ask for (ours: 2): more would hold a hashing thread, and
/// the place of everyone waiting, for as long as the hash's author chose.
pub const MAX_PASSES: u32 = 16;
/// The most lanes a stored hash may ask for (ours: 1; the hashing threads compute them one
/// after another).
pub const MAX_LANES: u32 = 8;

/// The budget is spent: try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks at once")]
pub struct Busy;

/// One job for a hashing thread.
type Job = Box<dyn FnOnce(&mut Hasher) + Send>;

/// A bounded pool of Argon2 runs. [`PasswordBudget::global`] is the one the relay and the
/// portal share.
#[derive(Debug)]
pub struct PasswordBudget {
    admitted: Arc<Semaphore>,
    jobs: Sender<Job>,
}

/// A place in the budget: taken before any other work of the request (a lock reservation in
/// the database), spent by [`Admission::run`].
#[derive(Debug)]
pub struct Admission {
    admitted: OwnedSemaphorePermit,
    jobs: Sender<Job>,
}

static GLOBAL: LazyLock<PasswordBudget> = LazyLock::new(|| PasswordBudget::new(RUNNING, WAITING));

/// A hash of a password nobody has: an unknown name costs what a wrong password costs.
static DECOY: OnceLock<String> = OnceLock::new();
const DECOY_PASSWORD: &[u8] = b"decoy password, never valid";

impl PasswordBudget {
    /// `running` threads hashing, `waiting` more jobs in line. The threads end when the budget
    /// is dropped.
    pub fn new(running: usize, waiting: usize) -> PasswordBudget {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..running.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("postern-argon2-{n}"))
                .spawn(move || work(&queue));
            if let Err(e) = spawned {
                tracing::error!("cannot start a password hashing thread: {e}");
            }
        }
        PasswordBudget {
            admitted: Arc::new(Semaphore::new(running.max(1) + waiting)),
            jobs,
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
            jobs: self.jobs.clone(),
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
        self.admit()?.run(move |h| h.hash(&password)).await
    }
}

/// A hashing thread: jobs one after another with one memory area, until the budget is gone.
fn work(queue: &Mutex<Receiver<Job>>) {
    let mut hasher = Hasher::new();
    // Made before the first job, so no sign-in pays for two hashes.
    hasher.decoy();
    loop {
        // The lock is held only to take a job, never while hashing.
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { return };
        // A job that panics loses its answer (its caller hears Busy), not the thread.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut hasher))).is_err() {
            hasher.wipe();
        }
    }
}

impl Admission {
    /// Runs `f` (a hash, with the hashing thread's [`Hasher`]) once a thread is free. The place
    /// is given back when `f` ends, whether or not anyone still waits for the answer.
    pub async fn run<T: Send + 'static>(
        self,
        f: impl FnOnce(&mut Hasher) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let admitted = self.admitted;
        let job: Job = Box::new(move |h| {
            let out = f(h);
            h.wipe();
            drop(admitted);
            let _ = tx.send(out);
        });
        self.jobs.send(job).map_err(|_| Busy)?;
        rx.await.map_err(|_| Busy)
    }

    /// [`PasswordBudget::verify`] with this place.
    pub async fn verify(
        self,
        phc: Option<String>,
        password: Zeroizing<Vec<u8>>,
    ) -> Result<bool, Busy> {
        self.run(move |h| h.verify(phc.as_deref(), &password)).await
    }
}

/// Argon2 with a memory area of its own, kept between runs and wiped after each. Jobs given to
/// the budget get the hashing thread's; a command-line tool may make one.
pub struct Hasher {
    memory: Vec<Block>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hasher({} KiB)", self.memory.len())
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new()
    }
}

impl Hasher {
    /// A hasher whose area is allocated at its first run.
    pub fn new() -> Hasher {
        Hasher { memory: Vec::new() }
    }

    /// `blocks` of the area (grown once to what the parameters ask, within [`MAX_MEMORY_KIB`]).
    fn blocks(&mut self, blocks: usize) -> Option<&mut [Block]> {
        if blocks > MAX_MEMORY_KIB as usize {
            return None;
        }
        if self.memory.len() < blocks {
            self.memory.resize(blocks, Block::new());
        }
        self.memory.get_mut(..blocks)
    }

    /// Nothing derived from the last password stays in the area.
    fn wipe(&mut self) {
        self.memory.iter_mut().for_each(Zeroize::zeroize);
    }

    /// Checks `password` against a PHC string (`None`: an unknown name, checked against a decoy
    /// and never right). A string that is not an Argon2 hash, or asks for more than
    /// [`MAX_MEMORY_KIB`], never matches.
    pub fn verify(&mut self, phc: Option<&str>, password: &[u8]) -> bool {
        let stored = phc.is_some();
        let phc = match phc {
            Some(phc) => phc,
            None => self.decoy(),
        };
        let right = self.matches(phc, password);
        self.wipe();
        right && stored
    }

    /// The decoy hash, made by the first hasher that needs it: with a fixed salt, so it never
    /// depends on the random source (an empty decoy would answer unknown names at once).
    fn decoy(&mut self) -> &'static str {
        if let Some(d) = DECOY.get() {
            return d;
        }
        let made = self.make_with_salt(DECOY_PASSWORD, *b"postern-decoy-16");
        self.wipe();
        DECOY.get_or_init(|| made.unwrap_or_default())
    }

    fn matches(&mut self, phc: &str, password: &[u8]) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
            return false;
        };
        let version = match hash.version.map(Version::try_from).transpose() {
            Ok(v) => v.unwrap_or_default(),
            Err(_) => return false,
        };
        let Ok(params) = Params::try_from(&hash) else {
            return false;
        };
        if params.t_cost() > MAX_PASSES || params.p_cost() > MAX_LANES {
            tracing::warn!(
                "a stored password hash asks for more passes or lanes than allowed; refused"
            );
            return false;
        }
        let mut out = Zeroizing::new(vec![0u8; expected.len()]);
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let Some(blocks) = self.blocks(params.block_count()) else {
            tracing::warn!("a stored password hash asks for more memory than allowed; refused");
            return false;
        };
        if argon2
            .hash_password_into_with_memory(password, salt.as_ref(), &mut out, blocks)
            .is_err()
        {
            return false;
        }
        // Output's comparison takes the same time wherever the bytes differ.
        Output::new(&out).is_ok_and(|computed| &computed == expected)
    }

    /// An Argon2id PHC string for `password` (default parameters, a random 16-byte salt);
    /// `None` only if the hasher or the random source fails.
    pub fn hash(&mut self, password: &[u8]) -> Option<String> {
        let made = self.make(password);
        self.wipe();
        made
    }

    fn make(&mut self, password: &[u8]) -> Option<String> {
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).ok()?;
        self.make_with_salt(password, salt)
    }

    fn make_with_salt(&mut self, password: &[u8], salt: [u8; 16]) -> Option<String> {
        let params = Params::default();
        let mut out = Zeroizing::new([0u8; Params::DEFAULT_OUTPUT_LEN]);
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let blocks = self.blocks(params.block_count())?;
        argon2
            .hash_password_into_with_memory(password, &salt, &mut out[..], blocks)
            .ok()?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).ok()?,
            salt: Some(Salt::new(&salt).ok()?),
            hash: Some(Output::new(&out[..]).ok()?),
        };
        Some(phc.to_string())
    }
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
            tasks.push(tokio::spawn(a.run(move |_| {
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
        // The threads make the decoy hash first (seconds in a debug build).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while now.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the first two never ran"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
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

    #[test]
    fn hashes_made_by_the_argon2_crate_with_other_parameters_verify_and_greedy_ones_do_not() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let mut h = Hasher::new();
        // The usual PHC string, as `hash-password` of older releases and other tools wrote it.
        let usual = Argon2::default()
            .hash_password(b"pw one")
            .unwrap()
            .to_string();
        assert!(h.verify(Some(&usual), b"pw one"));
        assert!(!h.verify(Some(&usual), b"pw two"));
        // Argon2i, version 0x10, smaller memory, a longer output: read from the string.
        let params = Params::new(8 * 1024, 3, 1, Some(40)).unwrap();
        let other = Argon2::new(Algorithm::Argon2i, Version::V0x10, params)
            .hash_password(b"pw three")
            .unwrap()
            .to_string();
        assert!(h.verify(Some(&other), b"pw three"));
        assert!(!h.verify(Some(&other), b"pw one"));
        // Ours are read by the crate's own verifier.
        let ours = h.hash(b"pw four").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"pw four", &parsed)
            .is_ok());
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        // Too many passes or lanes: refused unread (it would hold a hashing thread).
        let slow = usual.replace("t=2,", "t=1000000,");
        assert!(!h.verify(Some(&slow), b"pw one"));
        let wide = usual.replace("p=1$", "p=64$");
        assert!(!h.verify(Some(&wide), b"pw one"));
        // A stored hash asking for 1 GiB is refused without allocating it; the area is still
        // the one the earlier hashes used.
        let before = h.memory.len();
        let greedy = usual.replace("m=19456", "m=1048576");
        assert!(!h.verify(Some(&greedy), b"pw one"));
        assert_eq!(h.memory.len(), before);
        assert!(before <= 19 * 1024);
        // Not a hash, or a truncated one: never right, never a panic.
        for junk in [
            "",
            "$argon2id$",
            "plain text",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA",
        ] {
            assert!(!h.verify(Some(junk), b"pw one"), "{junk}");
        }
        // Wiped after each run.
        h.verify(Some(&usual), b"pw one");
        let zero = format!("{:?}", Block::new());
        assert!(h.memory.iter().all(|b| format!("{b:?}") == zero));
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
