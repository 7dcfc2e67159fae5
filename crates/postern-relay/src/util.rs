//! Small helpers: time in the forms mail needs.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An RFC 5322 date-time in UTC, e.g. `Sat, 28 Nov 2026 18:29:27 +0000`.
pub fn rfc5322_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86400;
    let secs = unix_secs % 86400;
    let (y, m, d) = postern_core::civil::civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Runs `fut` to completion on a thread the runtime has given up as a worker, so what it does
/// that blocks — RSA, content inspection, parsing, fsync — never stalls the SMTP sessions and
/// other tasks on the async workers. On a multi-threaded runtime this is `block_in_place`
/// (the worker's other tasks move to another thread first); on a current-thread runtime, where
/// that is not possible, `fut` runs where it is.
pub async fn off_worker<F: std::future::Future>(fut: F) -> F::Output {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(fut))
        }
        _ => fut.await,
    }
}

/// Runs a future and turns a panic in any of its polls into `Err(())`, so one hostile message
/// cannot take a worker down with it. (The future is boxed to poll it pinned without unsafe
/// code.)
pub async fn contain_panic<F: std::future::Future>(fut: F) -> Result<F::Output, ()> {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let mut fut = Box::pin(fut);
    std::future::poll_fn(
        move |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        },
    )
    .await
}

/// Creates `dir` and its missing parents readable by the owner only (0700 on Unix), and makes
/// an existing `dir` so: it holds message bodies, the quarantine or keys. Set explicitly, so
/// the umask the service was started with does not decide.
pub use postern_store::keyfile::private_dir;

/// Options that create a file readable by the owner only (0600 on Unix).
pub fn private_file() -> std::fs::OpenOptions {
    #[allow(unused_mut)]
    let mut o = std::fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Raises the soft limit on open files to the hard limit, once per process: every SMTP session,
/// portal connection, spool file and database connection holds a descriptor, and a distribution's
/// default soft limit (1,024) is below what the connection caps allow in all. Returns the limit
/// in force.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    static ONCE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ONCE.get_or_init(|| {
        let mut l = getrlimit(Resource::Nofile);
        if l.current < l.maximum {
            l.current = l.maximum;
            if let Err(e) = setrlimit(Resource::Nofile, l) {
                tracing::warn!(error = %e, "could not raise the open-file limit");
            }
        }
        getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_890_567),
            "Sat, 28 Nov 2026 18:29:27 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }
}
