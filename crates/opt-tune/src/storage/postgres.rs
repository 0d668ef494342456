//! PostgreSQL storage: one study shared by workers on several machines. Every operation runs
//! in a read-committed transaction that first locks the study's row (`SELECT … FOR UPDATE`),
//! so asks, heartbeats and results of all workers are serialized per study, and reads the
//! server's clock, so every worker judges heartbeats by that one clock. Connection settings
//! (passwords, TLS, timeouts) are in [`super::pg_connect`].

use postgres::{Client, IsolationLevel, Transaction};

use super::pg_connect::PgSettings;
use super::{Storage, TransactFn, check_same, may_lock, parse_definition, parse_stored};
use crate::error::{Result, TuneError};
use crate::objective::StudyDef;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS optkit_studies (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS optkit_trials (
    study TEXT NOT NULL REFERENCES optkit_studies(name),
    number BIGINT NOT NULL,
    state TEXT NOT NULL,
    heartbeat DOUBLE PRECISION NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (study, number)
);
CREATE TABLE IF NOT EXISTS optkit_locks (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    holder TEXT NOT NULL,
    taken DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, name)
);";

/// Any number; every optkit worker takes this advisory lock while it creates the tables.
const SCHEMA_LOCK: i64 = 0x6f70_746b_6974;

/// A study database on a PostgreSQL server.
pub struct PostgresStorage {
    settings: PgSettings,
    client: Client,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("url", &self.url())
            .finish()
    }
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://user[:password]@host:port/database[?sslmode=…]`, see
    /// [`PgSettings`]) and creates the tables if needed.
    pub fn open(url: &str) -> Result<Self> {
        Self::connect(PgSettings::parse(url)?)
    }

    fn connect(settings: PgSettings) -> Result<Self> {
        let mut client = settings.connect()?;
        let masked = settings.masked().to_string();
        let fail = |e: postgres::Error| TuneError::storage(&masked, e);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&SCHEMA_LOCK])
            .map_err(fail)?;
        let created = client.batch_execute(SCHEMA).map_err(fail);
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&SCHEMA_LOCK])
            .map_err(fail)?;
        created?;
        Ok(Self { settings, client })
    }

    fn err(&self, e: impl std::fmt::Display) -> TuneError {
        TuneError::storage(self.url(), e)
    }

    /// A read-committed transaction (row locks serialize the workers).
    fn begin(&mut self) -> Result<Transaction<'_>> {
        let url = self.url();
        self.client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .map_err(|e| TuneError::storage(&url, e))
    }
}

/// The server's clock, in Unix seconds.
fn server_now(tx: &mut Transaction<'_>, url: &str) -> Result<f64> {
    tx.query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])
        .map(|r| r.get(0))
        .map_err(|e| TuneError::storage(url, e))
}

fn definition(
    tx: &mut postgres::Transaction<'_>,
    url: &str,
    name: &str,
    lock: bool,
) -> Result<Option<String>> {
    let sql = if lock {
        "SELECT definition FROM optkit_studies WHERE name = $1 FOR UPDATE"
    } else {
        "SELECT definition FROM optkit_studies WHERE name = $1"
    };
    let row = tx
        .query_opt(sql, &[&name])
        .map_err(|e| TuneError::storage(url, e))?;
    Ok(row.map(|r| r.get(0)))
}

impl Storage for PostgresStorage {
    fn url(&self) -> String {
        self.settings.masked().to_string()
    }

    fn open_study(&mut self, name: &str, def: &StudyDef) -> Result<()> {
        let url = self.url();
        let text = serde_json::to_string(def).map_err(|e| self.err(e))?;
        let mut tx = self.begin()?;
        tx.execute(
            "INSERT INTO optkit_studies (name, definition, created) VALUES ($1, $2, extract(epoch FROM clock_timestamp())) ON CONFLICT (name) DO NOTHING",
            &[&name, &text],
        )
        .map_err(|e| TuneError::storage(&url, e))?;
        let stored = definition(&mut tx, &url, name, true)?.unwrap_or_default();
        tx.commit().map_err(|e| TuneError::storage(&url, e))?;
        check_same(name, &url, &parse_definition(&url, name, &stored)?, def)
    }

    fn study_def(&mut self, name: &str) -> Result<Option<StudyDef>> {
        let url = self.url();
        let mut tx = self.begin()?;
        let text = definition(&mut tx, &url, name, false)?;
        tx.commit().map_err(|e| TuneError::storage(&url, e))?;
        text.map(|t| parse_definition(&url, name, &t)).transpose()
    }

    fn studies(&mut self) -> Result<Vec<String>> {
        let rows = self
            .client
            .query("SELECT name FROM optkit_studies ORDER BY name", &[])
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn transact(&mut self, name: &str, f: &mut TransactFn<'_>) -> Result<()> {
        let url = self.url();
        let pg = |e: postgres::Error| TuneError::storage(&url, e);
        let mut tx = self.begin()?;
        if definition(&mut tx, &url, name, true)?.is_none() {
            return Err(TuneError::storage(
                &url,
                format!("no study named '{name}'; open it first"),
            ));
        }
        let now = server_now(&mut tx, &url)?;
        let rows = tx
            .query(
                "SELECT heartbeat, body FROM optkit_trials WHERE study = $1 ORDER BY number",
                &[&name],
            )
            .map_err(pg)?;
        let current = rows
            .iter()
            .map(|r| parse_stored(&url, r.get(0), r.get::<_, &str>(1)))
            .collect::<Result<Vec<_>>>()?;
        for s in f(&current, now)? {
            let body = serde_json::to_string(&s.trial).map_err(|e| TuneError::storage(&url, e))?;
            tx.execute(
                "INSERT INTO optkit_trials (study, number, state, heartbeat, body) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (study, number) DO UPDATE SET state = EXCLUDED.state, heartbeat = EXCLUDED.heartbeat, body = EXCLUDED.body",
                &[&name, &(s.trial.number as i64), &s.trial.state.as_str(), &s.heartbeat, &body],
            )
            .map_err(pg)?;
        }
        tx.commit().map_err(pg)
    }

    fn lock(
        &mut self,
        scope: &str,
        lock: &str,
        holder: &str,
        stale_after_s: f64,
    ) -> Result<Option<String>> {
        let url = self.url();
        let pg = |e: postgres::Error| TuneError::storage(&url, e);
        let mut tx = self.begin()?;
        // The row exists (a free lock is one taken at time 0), so FOR UPDATE serializes.
        tx.execute(
            "INSERT INTO optkit_locks (scope, name, holder, taken) VALUES ($1, $2, '', 0) \
             ON CONFLICT (scope, name) DO NOTHING",
            &[&scope, &lock],
        )
        .map_err(pg)?;
        let row = tx
            .query_one(
                "SELECT holder, taken FROM optkit_locks WHERE scope = $1 AND name = $2 FOR UPDATE",
                &[&scope, &lock],
            )
            .map_err(pg)?;
        let now = server_now(&mut tx, &url)?;
        let (h, taken): (String, f64) = (row.get(0), row.get(1));
        let current = (!h.is_empty()).then_some((h, taken));
        if let Err(other) = may_lock(current, holder, now, stale_after_s) {
            return Ok(Some(other));
        }
        tx.execute(
            "UPDATE optkit_locks SET holder = $3, taken = $4 WHERE scope = $1 AND name = $2",
            &[&scope, &lock, &holder, &now],
        )
        .map_err(pg)?;
        tx.commit().map_err(pg)?;
        Ok(None)
    }

    fn unlock(&mut self, scope: &str, lock: &str, holder: &str) -> Result<()> {
        let url = self.url();
        self.client
            .execute(
                "UPDATE optkit_locks SET holder = '', taken = 0 WHERE scope = $1 AND name = $2 AND holder = $3",
                &[&scope, &lock, &holder],
            )
            .map_err(|e| TuneError::storage(&url, e))?;
        Ok(())
    }

    fn reopen(&self) -> Result<Box<dyn Storage>> {
        Ok(Box::new(Self::connect(self.settings.clone())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mask;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask("postgres://optkit:secret@127.0.0.1:5432/optkit"),
            "postgres://optkit:***@127.0.0.1:5432/optkit"
        );
        assert_eq!(
            mask("postgres://optkit@db/optkit"),
            "postgres://optkit@db/optkit"
        );
        // A password holding '@' or ':' is masked whole.
        assert_eq!(
            mask("postgres://optkit:p@ss:w@rd@db:5432/optkit?sslmode=require"),
            "postgres://optkit:***@db:5432/optkit?sslmode=require"
        );
    }

    #[test]
    fn an_unreachable_server_is_a_clear_error() {
        // Port 1 on loopback: nothing listens there.
        let msg = PostgresStorage::open("postgres://u:pw@127.0.0.1:1/db")
            .err()
            .unwrap()
            .to_string();
        assert!(
            msg.contains("postgres://u:***@127.0.0.1:1/db") && msg.contains("cannot connect"),
            "{msg}"
        );
        assert!(!msg.contains("pw@"), "{msg}");
    }
}
