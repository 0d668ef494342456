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
pub mod pg_connect;
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

/// The work of one transaction: the study's trials and the storage's clock (Unix seconds)
/// in, the trials to insert or replace out.
pub type TransactFn<'a> = dyn FnMut(&[Stored], f64) -> Result<Vec<Stored>> + 'a;

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

    /// Runs `f` on every trial of study `name` and the storage's clock (Unix seconds: the
    /// database server's for a shared database, so every worker judges time by one clock)
    /// while holding the study exclusively, then inserts or replaces (by trial number) the
    /// trials `f` returns, atomically.
    fn transact(&mut self, name: &str, f: &mut TransactFn<'_>) -> Result<()>;

    /// Takes the lock `lock` of `scope` (any text: a run folder, a study) for `holder`, or
    /// refreshes it when `holder` holds it already; a lock last taken or refreshed more than
    /// `stale_after_s` ago (by the storage's clock) counts as free. Returns `None` when
    /// `holder` holds it now, else the holder.
    fn lock(
        &mut self,
        scope: &str,
        lock: &str,
        holder: &str,
        stale_after_s: f64,
    ) -> Result<Option<String>>;

    /// Releases the lock `lock` of `scope` if `holder` holds it.
    fn unlock(&mut self, scope: &str, lock: &str, holder: &str) -> Result<()>;

    /// Every trial of study `name`, by number.
    fn trials(&mut self, name: &str) -> Result<Vec<Trial>> {
        let mut out = Vec::new();
        self.transact(name, &mut |stored, _| {
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
        mask(url),
        format!(
            "unknown storage scheme '{scheme}'; use sqlite://<file> (one file, shared by the \
             workers of one machine), postgres://user:password@host:port/database (workers on \
             several machines) or memory (this process only)"
        ),
    ))
}

/// Who holds a lock now: `Ok(())` when `holder` may take (or refresh) it, given the current
/// holder and when it last took it, else `Err(current holder)`. Every backend decides with it.
pub(crate) fn may_lock(
    current: Option<(String, f64)>,
    holder: &str,
    now: f64,
    stale_after_s: f64,
) -> std::result::Result<(), String> {
    match current {
        Some((h, taken)) if h != holder && now - taken <= stale_after_s => Err(h),
        _ => Ok(()),
    }
}

/// The URL with its password replaced by `***` (`postgres://user:***@host/db`); every URL
/// optkit prints or stores goes through it.
pub fn mask(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The credentials end at the last '@' before the host (a password may contain '@').
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{}", &rest[at + 1..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
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
pub(crate) mod tests;
