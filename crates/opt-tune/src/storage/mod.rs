//! Study storage: where trials live, so several workers can share a study and a study survives
//! the process that ran it.
//!
//! A backend only provides an exclusive transaction over one study's trials
//! ([`Storage::transact`]); asking for a trial, heartbeats, reports and results are written
//! once on top of it ([`ops`]), so every backend has the same semantics:
//! - `ask` first fails every running trial whose heartbeat is older than `stale_after_s` and
//!   re-queues its parameters as a new waiting trial, then claims the oldest waiting trial,
//!   and only then asks the sampler, all in one transaction: no trial is lost or handed out
//!   twice, however many workers ask at once;
//! - a worker writes only trials it holds (state running, worker id its own); a trial taken
//!   from it is reported as [`crate::TuneError::LostTrial`].
//!
//! URLs: `memory` (this process only), `sqlite://<path>` (one file, the embedded default,
//! several processes on one machine), `postgres://user:password@host:port/database` (workers
//! on several machines).

mod memory;
pub mod ops;
mod postgres;
mod sqlite;

pub use self::postgres::PostgresStorage;
pub use memory::MemoryStorage;
pub use sqlite::SqliteStorage;

use crate::error::{Result, TuneError};
use crate::objective::StudyDef;
use crate::trial::Trial;

/// A trial as stored, with the time of its holder's last heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The trial.
    pub trial: Trial,
    /// Unix time (s) of the last heartbeat of a running trial.
    pub heartbeat: f64,
}

/// A place where studies are kept.
pub trait Storage: Send {
    /// The URL this storage was opened from (passwords masked).
    fn url(&self) -> String;

    /// Creates study `name` with `def`, or checks that the stored definition is the same.
    fn open_study(&mut self, name: &str, def: &StudyDef) -> Result<()>;

    /// The stored definition of study `name`, if it exists.
    fn study_def(&mut self, name: &str) -> Result<Option<StudyDef>>;

    /// The names of the stored studies.
    fn studies(&mut self) -> Result<Vec<String>>;

    /// Runs `f` on every trial of study `name` while holding the study exclusively, then
    /// inserts or replaces (by trial number) the trials `f` returns, atomically.
    fn transact(
        &mut self,
        name: &str,
        f: &mut dyn FnMut(&[Stored]) -> Result<Vec<Stored>>,
    ) -> Result<()>;

    /// Every trial of study `name`, by number.
    fn trials(&mut self, name: &str) -> Result<Vec<Trial>> {
        let mut out = Vec::new();
        self.transact(name, &mut |stored| {
            out = stored.iter().map(|s| s.trial.clone()).collect();
            Ok(Vec::new())
        })?;
        Ok(out)
    }

    /// Another connection to the same storage (a heartbeat thread uses one).
    fn reopen(&self) -> Result<Box<dyn Storage>>;
}

/// Opens a storage from its URL: `memory`, `sqlite://<path>`, `postgres://…`.
pub fn open(url: &str) -> Result<Box<dyn Storage>> {
    if url == "memory" || url == "memory://" {
        return Ok(Box::new(MemoryStorage::default()));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(Box::new(SqliteStorage::open(path)?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Box::new(PostgresStorage::open(url)?));
    }
    let scheme = url.split("://").next().unwrap_or(url);
    Err(TuneError::storage(
        url,
        format!(
            "unknown storage scheme '{scheme}'; use sqlite://<file> (one file, shared by the \
             workers of one machine), postgres://user:password@host:port/database (workers on \
             several machines) or memory (this process only)"
        ),
    ))
}

/// A study definition as stored (JSON text); the error names the study.
pub(crate) fn parse_definition(url: &str, name: &str, text: &str) -> Result<StudyDef> {
    serde_json::from_str(text).map_err(|e| {
        TuneError::storage(
            url,
            format!("study '{name}' has an unreadable definition: {e}"),
        )
    })
}

/// A trial row as stored (heartbeat and JSON body).
pub(crate) fn parse_stored(url: &str, heartbeat: f64, body: &str) -> Result<Stored> {
    let trial = serde_json::from_str(body)
        .map_err(|e| TuneError::storage(url, format!("a stored trial is unreadable: {e}")))?;
    Ok(Stored { trial, heartbeat })
}

/// Compares a stored definition with the one asked for; the error says what differs.
pub(crate) fn check_same(name: &str, url: &str, stored: &StudyDef, asked: &StudyDef) -> Result<()> {
    fn json<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }
    let what = if stored.space != asked.space {
        Some(format!(
            "another search space (stored {}, asked {})",
            json(&stored.space),
            json(&asked.space)
        ))
    } else if stored.objectives != asked.objectives {
        Some(format!(
            "other objectives (stored {}, asked {})",
            json(&stored.objectives),
            json(&asked.objectives)
        ))
    } else if stored.constraints != asked.constraints {
        Some(format!(
            "other constraints (stored {}, asked {})",
            json(&stored.constraints),
            json(&asked.constraints)
        ))
    } else if stored.watch != asked.watch {
        Some(format!(
            "another watched objective (stored {}, asked {})",
            stored.watch, asked.watch
        ))
    } else {
        None
    };
    match what {
        Some(what) => Err(TuneError::StudyMismatch {
            name: name.into(),
            storage: url.into(),
            what,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
