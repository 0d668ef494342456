//! In-memory storage: shared by the threads of one process, gone when it exits.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Storage, Stored, check_same};
use crate::error::{Result, TuneError};
use crate::objective::StudyDef;

type Studies = BTreeMap<String, (StudyDef, BTreeMap<u64, Stored>)>;

/// Studies in memory; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    studies: Arc<Mutex<Studies>>,
}

impl MemoryStorage {
    fn lock(&self) -> std::sync::MutexGuard<'_, Studies> {
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
        let mut studies = self.lock();
        match studies.get(name) {
            Some((stored, _)) => check_same(name, "memory", stored, def),
            None => {
                studies.insert(name.into(), (def.clone(), BTreeMap::new()));
                Ok(())
            }
        }
    }

    fn study_def(&mut self, name: &str) -> Result<Option<StudyDef>> {
        Ok(self.lock().get(name).map(|(d, _)| d.clone()))
    }

    fn studies(&mut self) -> Result<Vec<String>> {
        Ok(self.lock().keys().cloned().collect())
    }

    fn transact(
        &mut self,
        name: &str,
        f: &mut dyn FnMut(&[Stored]) -> Result<Vec<Stored>>,
    ) -> Result<()> {
        let mut studies = self.lock();
        let (_, trials) = studies.get_mut(name).ok_or_else(|| missing(name))?;
        let current: Vec<Stored> = trials.values().cloned().collect();
        for s in f(&current)? {
            trials.insert(s.trial.number, s);
        }
        Ok(())
    }

    fn reopen(&self) -> Result<Box<dyn Storage>> {
        Ok(Box::new(self.clone()))
    }
}
