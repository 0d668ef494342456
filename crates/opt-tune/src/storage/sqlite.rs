//! SQLite storage: one file, the embedded default. Several worker processes on one machine
//! share it: every operation runs in an immediate (write-locking) transaction and waits up to
//! a minute for the lock; the write-ahead log keeps a killed process from leaving a torn
//! database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Storage, Stored, check_same, parse_definition, parse_stored};
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
);";

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
        conn.pragma_update(None, "synchronous", "NORMAL")
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

    fn transact(
        &mut self,
        name: &str,
        f: &mut dyn FnMut(&[Stored]) -> Result<Vec<Stored>>,
    ) -> Result<()> {
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
        for s in f(&current)? {
            let body = serde_json::to_string(&s.trial).map_err(|e| TuneError::storage(&url, e))?;
            tx.execute(
                "INSERT OR REPLACE INTO optkit_trials (study, number, state, heartbeat, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, s.trial.number as i64, s.trial.state.as_str(), s.heartbeat, body],
            )
            .map_err(|e| TuneError::storage(&url, e))?;
        }
        tx.commit().map_err(|e| TuneError::storage(&url, e))
    }

    fn reopen(&self) -> Result<Box<dyn Storage>> {
        Ok(Box::new(Self::open(&self.path)?))
    }
}
