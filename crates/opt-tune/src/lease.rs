//! Holding something in a shared storage while working: a background thread that beats
//! (a trial's heartbeat, a lock's refresh) until stopped, and [`Lease`], a lock held for as
//! long as the value lives, so that of several workers exactly one does a piece of work at a
//! time (writing a run's results, for example). A holder that dies stops refreshing; after
//! `stale_after_s` (by the storage's clock) the lock is free again.

use std::sync::mpsc;
use std::time::Duration;

use crate::error::Result;
use crate::storage::Storage;

/// A thread that calls `beat` every `every` until stopped or until `beat` returns `false`.
pub(crate) struct Beating {
    stop: mpsc::Sender<()>,
    handle: std::thread::JoinHandle<()>,
}

impl Beating {
    pub(crate) fn start(every: Duration, mut beat: impl FnMut() -> bool + Send + 'static) -> Self {
        let (stop, rx) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                if !beat() {
                    return;
                }
            }
        });
        Self { stop, handle }
    }

    pub(crate) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.join();
    }
}

/// A lock of a storage held by this worker until dropped (see the module documentation).
pub struct Lease {
    storage: Box<dyn Storage>,
    scope: String,
    name: String,
    holder: String,
    beating: Option<Beating>,
}

impl Lease {
    /// Takes the lock `name` of `scope` for `holder`, waiting while another live holder has
    /// it (`waiting` is told who, at each check), then refreshes it in the background every
    /// quarter of `stale_after_s`.
    ///
    /// # Errors
    /// The storage's errors.
    pub fn acquire(
        mut storage: Box<dyn Storage>,
        scope: &str,
        name: &str,
        holder: &str,
        stale_after_s: f64,
        mut waiting: impl FnMut(&str),
    ) -> Result<Self> {
        let every = Duration::from_secs_f64((stale_after_s / 4.0).clamp(0.05, 15.0));
        while let Some(other) = storage.lock(scope, name, holder, stale_after_s)? {
            waiting(&other);
            std::thread::sleep(every.min(Duration::from_millis(500)));
        }
        let mut beat = storage.reopen()?;
        let (s, n, h) = (scope.to_string(), name.to_string(), holder.to_string());
        let beating = Beating::start(every, move || match beat.lock(&s, &n, &h, stale_after_s) {
            Ok(None) => true,
            Ok(Some(other)) => {
                tracing::warn!(lock = %n, scope = %s, "lock lost to {other} (this worker was silent past stale_after_s)");
                false
            }
            Err(e) => {
                tracing::warn!(lock = %n, "refreshing the lock failed, retrying: {e}");
                true
            }
        });
        Ok(Self {
            storage,
            scope: scope.into(),
            name: name.into(),
            holder: holder.into(),
            beating: Some(beating),
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(b) = self.beating.take() {
            b.stop();
        }
        if let Err(e) = self.storage.unlock(&self.scope, &self.name, &self.holder) {
            tracing::warn!(lock = %self.name, "releasing the lock: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Two workers wanting the same lock take turns: the second starts its work only after
    /// the first dropped its lease.
    #[test]
    fn workers_take_turns() {
        let url = crate::storage::tests::sqlite_url("lease");
        let log = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..3)
            .map(|w| {
                let (url, log) = (url.clone(), log.clone());
                std::thread::spawn(move || {
                    let storage = crate::storage::open(&url).unwrap();
                    let _lease =
                        Lease::acquire(storage, "run:/x", "writer", &format!("w{w}"), 5.0, |_| {})
                            .unwrap();
                    log.lock().unwrap().push(format!("start {w}"));
                    std::thread::sleep(Duration::from_millis(100));
                    log.lock().unwrap().push(format!("end {w}"));
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let log = log.lock().unwrap();
        for pair in log.chunks(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(
                a.starts_with("start") && b == &a.replace("start", "end"),
                "{log:?}"
            );
        }
    }
}
