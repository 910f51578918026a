//! Work that may block, kept off the actor thread: [`off_thread`].
//!
//! A reload reads and validates the config file (a FIFO, a hung network
//! file system, a user name that NSS resolves over the network) and the
//! Notifier reads a `password_file`: each may block for as long as the OS
//! likes. They run on a short-lived thread of their own and the actor awaits
//! the answer with a deadline; past it, the actor goes on with an error and
//! the thread is abandoned (it ends when the call returns, or with the
//! process). Not tokio's blocking pool: dropping the runtime at exit waits
//! for its threads, so one hung read would keep the daemon from exiting.

use std::time::Duration;

/// Why [`off_thread`] has no answer.
#[derive(Debug, thiserror::Error)]
pub enum OffThreadError {
    #[error("took longer than {}s", .0.as_secs_f64())]
    TimedOut(Duration),
    #[error("cannot start a thread: {0}")]
    Spawn(std::io::Error),
    #[error("the work panicked")]
    Lost,
}

/// Runs `work` on a new thread named `name`; its result, or an error once
/// `limit` has passed.
pub async fn off_thread<T: Send + 'static>(
    name: &str,
    limit: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OffThreadError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            // The actor may have stopped waiting: nobody to tell then.
            let _ = tx.send(work());
        })
        .map_err(OffThreadError::Spawn)?;
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(OffThreadError::Lost),
        Err(_) => Err(OffThreadError::TimedOut(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix::test]
    async fn a_call_that_blocks_is_abandoned_at_its_deadline() {
        let quick = off_thread("t", Duration::from_secs(5), || 42).await;
        assert!(matches!(quick, Ok(42)));
        let (_keep, never) = std::sync::mpsc::channel::<()>();
        let hung = off_thread("t", Duration::from_millis(100), move || never.recv()).await;
        assert!(matches!(hung, Err(OffThreadError::TimedOut(_))), "{hung:?}");
    }
}
