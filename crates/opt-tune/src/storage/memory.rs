//! In-memory storage: shared by the threads of one process, gone when it exits.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Storage, Stored, TransactFn, check_same, may_lock};
use crate::error::{Result, TuneError};
use crate::objective::StudyDef;
use crate::trial::now_s;

/// Each study: its definition and its trials.
type Studies = BTreeMap<String, (StudyDef, BTreeMap<u64, Stored>)>;
/// Locks by (scope, name): holder and time taken.
type Locks = BTreeMap<(String, String), (String, f64)>;

/// Studies in memory; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    studies: Arc<Mutex<Studies>>,
    locks: Arc<Mutex<Locks>>,
}

impl MemoryStorage {
    fn guard(&self) -> std::sync::MutexGuard<'_, Studies> {
        // A worker thread that panicked while holding the lock left whole trials behind
        // (writes are applied at the end), so the data is still consistent.
        self.studies.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn missing(name: &str) -> TuneError {
    TuneError::storage("memory", format!("no study named '{name}'; open it first"))
}

impl Storage for MemoryStorage {
    fn url(&self) -> String {
        "memory".into()
    }

    fn open_study(&mut self, name: &str, def: &StudyDef) -> Result<()> {
        let mut studies = self.guard();
        match studies.get(name) {
            Some((stored, _)) => check_same(name, "memory", stored, def),
            None => {
                studies.insert(name.into(), (def.clone(), BTreeMap::new()));
                Ok(())
            }
        }
    }

    fn study_def(&mut self, name: &str) -> Result<Option<StudyDef>> {
        Ok(self.guard().get(name).map(|(d, _)| d.clone()))
    }

    fn studies(&mut self) -> Result<Vec<String>> {
        Ok(self.guard().keys().cloned().collect())
    }

    fn transact(&mut self, name: &str, f: &mut TransactFn<'_>) -> Result<()> {
        let mut studies = self.guard();
        let (_, trials) = studies.get_mut(name).ok_or_else(|| missing(name))?;
        let current: Vec<Stored> = trials.values().cloned().collect();
        for s in f(&current, now_s())? {
            trials.insert(s.trial.number, s);
        }
        Ok(())
    }

    fn lock(
        &mut self,
        scope: &str,
        lock: &str,
        holder: &str,
        stale_after_s: f64,
    ) -> Result<Option<String>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        let key = (scope.to_string(), lock.to_string());
        let now = now_s();
        match may_lock(locks.get(&key).cloned(), holder, now, stale_after_s) {
            Ok(()) => {
                locks.insert(key, (holder.into(), now));
                Ok(None)
            }
            Err(other) => Ok(Some(other)),
        }
    }

    fn unlock(&mut self, scope: &str, lock: &str, holder: &str) -> Result<()> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        let key = (scope.to_string(), lock.to_string());
        if locks.get(&key).is_some_and(|(h, _)| h == holder) {
            locks.remove(&key);
        }
        Ok(())
    }

    fn reopen(&self) -> Result<Box<dyn Storage>> {
        Ok(Box::new(self.clone()))
    }
}
