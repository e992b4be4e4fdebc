//! Spans finished off the request thread.
//!
//! Some instrumentation ends its spans on a thread of its own: `llmtel-reqwest` reads a
//! response body's bytes on a worker, so that the stream reaches the caller at full speed,
//! and records usage and cost and ends the span there. Such work registers a *finisher*
//! here; [`finish_pending_spans`] runs every finisher, and the [`Guard`](crate::Guard) calls
//! it before it flushes or shuts export down, so that those spans are not lost at exit.
//!
//! ```
//! use std::time::Duration;
//! llmtel::register_span_finisher(|_timeout| true); // "nothing pending"
//! assert!(llmtel::finish_pending_spans(Duration::from_secs(1)));
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

type Finisher = Arc<dyn Fn(Duration) -> bool + Send + Sync>;

static FINISHERS: Mutex<Vec<Finisher>> = Mutex::new(Vec::new());

/// Registers `f`, called by [`finish_pending_spans`] with the time left: it must end every
/// span handed to it so far (or give up when the time is out) and say whether it did.
pub fn register_span_finisher(f: impl Fn(Duration) -> bool + Send + Sync + 'static) {
    FINISHERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Arc::new(f));
}

/// Ends every span that registered finishers still hold, waiting up to `timeout` in all;
/// `true` when nothing is left pending.
pub fn finish_pending_spans(timeout: Duration) -> bool {
    // (`Duration::MAX`, "wait as long as it takes", overflowed the deadline: a panic.)
    let deadline = Instant::now().checked_add(timeout);
    let finishers: Vec<Finisher> = FINISHERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    // Every finisher runs, even after one has timed out.
    let mut all = true;
    for f in &finishers {
        let left = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        all &= f(left);
    }
    all
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn waiting_as_long_as_it_takes_does_not_overflow_the_deadline() {
        // `Duration::MAX` made `now + timeout` overflow: a panic in the caller. The finisher
        // is given all the time there is (and has nothing pending: it stays registered).
        let given = std::sync::Arc::new(std::sync::Mutex::new(Duration::ZERO));
        let seen = given.clone();
        super::register_span_finisher(move |left| {
            *seen.lock().unwrap_or_else(|e| e.into_inner()) = left;
            true
        });
        assert!(super::finish_pending_spans(Duration::MAX));
        assert!(*given.lock().unwrap_or_else(|e| e.into_inner()) > Duration::from_secs(3600));
    }
}
