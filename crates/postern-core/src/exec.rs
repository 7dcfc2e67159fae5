//! Running the gateway's futures without an async runtime: a thread-per-connection server
//! (as mailin-embedded users write) calls [`block_on`] on the calling thread. The backends and
//! the built-in inspection compute synchronously; a key source that does network I/O on tokio
//! (postern-trust's) needs a tokio runtime instead.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// Wakes the thread that waits on the future.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this thread, parked while it waits (no spinning).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_future_woken_from_another_thread_completes() {
        let (tx, rx) = std::sync::mpsc::channel::<Waker>();
        // Another thread wakes the future a little later, as an I/O driver would.
        let waker = std::thread::spawn(move || {
            let w = rx.recv().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            w.wake();
        });
        let mut polled = false;
        let got = block_on(std::future::poll_fn(|cx| {
            if polled {
                return Poll::Ready(7);
            }
            polled = true;
            tx.send(cx.waker().clone()).unwrap();
            Poll::Pending
        }));
        assert_eq!(got, 7);
        waker.join().unwrap();
    }
}
