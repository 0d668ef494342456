//! SQLite storage: one file, the embedded default. Several worker processes on one machine
//! share it: every operation runs in an immediate (write-locking) transaction and waits up to
//! a minute for the lock; the write-ahead log keeps a killed process from leaving a torn
//! database, and `synchronous = FULL` makes every committed transaction survive a power cut
//! (the log is flushed at each commit). The machine's clock is the one clock all its workers
//! share.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Storage, Stored, TransactFn, check_same, may_lock, parse_definition, parse_stored};
use crate::error::{Result, TuneError};
use crate::objective::StudyDef;
use crate::trial::now_s;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS optkit_studies (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS optkit_trials (
    study TEXT NOT NULL REFERENCES optkit_studies(name),
    number INTEGER NOT NULL,
    state TEXT NOT NULL,
    heartbeat REAL NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (study, number)
);
CREATE TABLE IF NOT EXISTS optkit_locks (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    holder TEXT NOT NULL,
    taken REAL NOT NULL,
    PRIMARY KEY (scope, name)
);";

/// SQLite's `synchronous` setting: `FULL` (every commit durable), unless
/// `OPTKIT_SQLITE_SYNCHRONOUS` says `NORMAL` (a commit may be lost at a power cut, never
/// torn; for scratch studies where fsyncs cost too much) or `EXTRA`.
fn synchronous(url: &str) -> Result<&'static str> {
    match std::env::var("OPTKIT_SQLITE_SYNCHRONOUS").as_deref() {
        Err(_) | Ok("FULL") => Ok("FULL"),
        Ok("NORMAL") => Ok("NORMAL"),
        Ok("EXTRA") => Ok("EXTRA"),
        Ok(other) => Err(TuneError::storage(
            url,
            format!("OPTKIT_SQLITE_SYNCHRONOUS={other}: use FULL (the default), NORMAL or EXTRA"),
        )),
    }
}

/// A study database in one SQLite file.
#[derive(Debug)]
pub struct SqliteStorage {
    path: PathBuf,
    conn: Connection,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let url = format!("sqlite://{}", path.display());
        if path.as_os_str().is_empty() {
            return Err(TuneError::storage(
                url,
                "no file given; write sqlite://<file>, e.g. sqlite://runs/study.db",
            ));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(TuneError::storage(
                url,
                format!(
                    "folder {} does not exist; create it or pick another path",
                    parent.display()
                ),
            ));
        }
        let fail = |e: rusqlite::Error| {
            TuneError::storage(
                &url,
                format!("{e}; is it an SQLite database optkit can write?"),
            )
        };
        let conn = Connection::open(&path).map_err(fail)?;
        conn.busy_timeout(Duration::from_secs(60)).map_err(fail)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(fail)?;
        conn.pragma_update(None, "synchronous", synchronous(&url)?)
            .map_err(fail)?;
        conn.execute_batch(SCHEMA).map_err(fail)?;
        Ok(Self { path, conn })
    }

    fn err(&self, e: impl std::fmt::Display) -> TuneError {
        TuneError::storage(self.url(), e)
    }
}

/// Every trial of `study`, by number.
fn load(conn: &Connection, url: &str, study: &str) -> Result<Vec<Stored>> {
    let err = |e: &dyn std::fmt::Display| TuneError::storage(url, e);
    let mut stmt = conn
        .prepare("SELECT heartbeat, body FROM optkit_trials WHERE study = ?1 ORDER BY number")
        .map_err(|e| err(&e))?;
    let rows = stmt
        .query_map(params![study], |r| {
            Ok((r.get::<_, f64>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(|e| err(&e))?;
    rows.map(|row| {
        let (heartbeat, body) = row.map_err(|e| err(&e))?;
        parse_stored(url, heartbeat, &body)
    })
    .collect()
}

/// The stored definition of `study` as JSON text.
fn definition(conn: &Connection, url: &str, study: &str) -> Result<Option<String>> {
    conn.query_row(
        "SELECT definition FROM optkit_studies WHERE name = ?1",
        params![study],
        |r| r.get(0),
    )
    .optional()
    .map_err(|e| TuneError::storage(url, e))
}

impl Storage for SqliteStorage {
    fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    fn open_study(&mut self, name: &str, def: &StudyDef) -> Result<()> {
        let url = self.url();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| TuneError::storage(&url, e))?;
        match definition(&tx, &url, name)? {
            Some(text) => check_same(name, &url, &parse_definition(&url, name, &text)?, def),
            None => {
                let text = serde_json::to_string(def).map_err(|e| TuneError::storage(&url, e))?;
                tx.execute(
                    "INSERT INTO optkit_studies (name, definition, created) VALUES (?1, ?2, ?3)",
                    params![name, text, now_s()],
                )
                .map_err(|e| TuneError::storage(&url, e))?;
                tx.commit().map_err(|e| TuneError::storage(&url, e))
            }
        }
    }

    fn study_def(&mut self, name: &str) -> Result<Option<StudyDef>> {
        let url = self.url();
        definition(&self.conn, &url, name)?
            .map(|t| parse_definition(&url, name, &t))
            .transpose()
    }

    fn studies(&mut self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM optkit_studies ORDER BY name")
            .map_err(|e| self.err(e))?;
        let names = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        names
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(|e| self.err(e))
    }

    fn transact(&mut self, name: &str, f: &mut TransactFn<'_>) -> Result<()> {
        let url = self.url();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| TuneError::storage(&url, e))?;
        if definition(&tx, &url, name)?.is_none() {
            return Err(TuneError::storage(
                &url,
                format!("no study named '{name}'; open it first"),
            ));
        }
        let current = load(&tx, &url, name)?;
        for s in f(&current, now_s())? {
            let body = serde_json::to_string(&s.trial).map_err(|e| TuneError::storage(&url, e))?;
            tx.execute(
                "INSERT OR REPLACE INTO optkit_trials (study, number, state, heartbeat, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, s.trial.number as i64, s.trial.state.as_str(), s.heartbeat, body],
            )
            .map_err(|e| TuneError::storage(&url, e))?;
        }
        tx.commit().map_err(|e| TuneError::storage(&url, e))
    }

    fn lock(
        &mut self,
        scope: &str,
        lock: &str,
        holder: &str,
        stale_after_s: f64,
    ) -> Result<Option<String>> {
        let url = self.url();
        let fail = |e: rusqlite::Error| TuneError::storage(&url, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let current = tx
            .query_row(
                "SELECT holder, taken FROM optkit_locks WHERE scope = ?1 AND name = ?2",
                params![scope, lock],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)),
            )
            .optional()
            .map_err(fail)?;
        let now = now_s();
        if let Err(other) = may_lock(current, holder, now, stale_after_s) {
            return Ok(Some(other));
        }
        tx.execute(
            "INSERT OR REPLACE INTO optkit_locks (scope, name, holder, taken) VALUES (?1, ?2, ?3, ?4)",
            params![scope, lock, holder, now],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(None)
    }

    fn unlock(&mut self, scope: &str, lock: &str, holder: &str) -> Result<()> {
        let url = self.url();
        self.conn
            .execute(
                "DELETE FROM optkit_locks WHERE scope = ?1 AND name = ?2 AND holder = ?3",
                params![scope, lock, holder],
            )
            .map_err(|e| TuneError::storage(&url, e))?;
        Ok(())
    }

    fn reopen(&self) -> Result<Box<dyn Storage>> {
        Ok(Box::new(Self::open(&self.path)?))
    }
}
