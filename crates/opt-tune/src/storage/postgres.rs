//! PostgreSQL storage: one study shared by workers on several machines. Every operation runs
//! in a transaction that first locks the study's row (`SELECT … FOR UPDATE`), so asks,
//! heartbeats and results of all workers are serialized per study.

use postgres::{Client, NoTls};

use super::{Storage, Stored, check_same, parse_definition, parse_stored};
use crate::error::{Result, TuneError};
use crate::objective::StudyDef;
use crate::trial::now_s;

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
);";

/// Any number; every optkit worker takes this advisory lock while it creates the tables.
const SCHEMA_LOCK: i64 = 0x6f70_746b_6974;

/// A study database on a PostgreSQL server.
pub struct PostgresStorage {
    url: String,
    client: Client,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("url", &self.url())
            .finish()
    }
}

/// The URL with its password replaced by `***`.
pub fn mask(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((creds, host)) => match creds.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and creates the
    /// tables if needed.
    pub fn open(url: &str) -> Result<Self> {
        let masked = mask(url);
        let mut client = Client::connect(url, NoTls).map_err(|e| {
            TuneError::storage(
                &masked,
                format!(
                    "cannot connect: {e}; check that the server runs and that host, port, user, \
                     password and database in the URL are right"
                ),
            )
        })?;
        let fail = |e: postgres::Error| TuneError::storage(&masked, e);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&SCHEMA_LOCK])
            .map_err(fail)?;
        let created = client.batch_execute(SCHEMA).map_err(fail);
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&SCHEMA_LOCK])
            .map_err(fail)?;
        created?;
        Ok(Self {
            url: url.to_string(),
            client,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> TuneError {
        TuneError::storage(self.url(), e)
    }
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
        mask(&self.url)
    }

    fn open_study(&mut self, name: &str, def: &StudyDef) -> Result<()> {
        let url = self.url();
        let text = serde_json::to_string(def).map_err(|e| self.err(e))?;
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| TuneError::storage(&url, e))?;
        tx.execute(
            "INSERT INTO optkit_studies (name, definition, created) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
            &[&name, &text, &now_s()],
        )
        .map_err(|e| TuneError::storage(&url, e))?;
        let stored = definition(&mut tx, &url, name, true)?.unwrap_or_default();
        tx.commit().map_err(|e| TuneError::storage(&url, e))?;
        check_same(name, &url, &parse_definition(&url, name, &stored)?, def)
    }

    fn study_def(&mut self, name: &str) -> Result<Option<StudyDef>> {
        let url = self.url();
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| TuneError::storage(&url, e))?;
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

    fn transact(
        &mut self,
        name: &str,
        f: &mut dyn FnMut(&[Stored]) -> Result<Vec<Stored>>,
    ) -> Result<()> {
        let url = self.url();
        let pg = |e: postgres::Error| TuneError::storage(&url, e);
        let mut tx = self.client.transaction().map_err(pg)?;
        if definition(&mut tx, &url, name, true)?.is_none() {
            return Err(TuneError::storage(
                &url,
                format!("no study named '{name}'; open it first"),
            ));
        }
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
        for s in f(&current)? {
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

    fn reopen(&self) -> Result<Box<dyn Storage>> {
        Ok(Box::new(Self::open(&self.url)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
