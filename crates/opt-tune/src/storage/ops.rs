//! The storage operations every backend shares, written once over [`Storage::transact`].

use super::{Storage, Stored};
use crate::error::{Result, TuneError};
use crate::space::Params;
use crate::trial::{Trial, TrialState};

/// Who asks and how long a silent worker is trusted.
#[derive(Debug, Clone)]
pub struct AskOptions<'a> {
    /// The asking worker's id (unique per process and thread).
    pub worker: &'a str,
    /// A running trial whose heartbeat is older than this is failed and re-queued.
    pub stale_after_s: f64,
    /// Stop handing out new trials once the study holds this many (re-runs not counted).
    pub max_trials: Option<u64>,
    /// A trial whose worker stopped this many times (its runs killed or silent each time) is
    /// failed for good instead of re-queued again.
    pub max_stops: u32,
}

/// How many times the parameters of `t` have stopped their worker so far: `t` itself and the
/// earlier runs it re-queues (`retry_of` links, each of which failed by going silent).
fn stops(trials: &[Trial], t: &Trial) -> u32 {
    let mut n = 1;
    let mut at = t.retry_of;
    while let Some(k) = at {
        match trials.iter().find(|x| x.number == k) {
            Some(x) if n < 1000 => {
                n += 1;
                at = x.retry_of;
            }
            _ => break,
        }
    }
    n
}

/// The number of trials that count against a budget: re-queued failures are replaced by
/// their re-run, so they do not count twice.
pub fn counted(trials: &[Trial]) -> u64 {
    trials
        .iter()
        .filter(|t| !trials.iter().any(|o| o.retry_of == Some(t.number)))
        .count() as u64
}

/// Takes the next trial for `opts.worker` (see the module documentation of [`super`]);
/// `propose(history, number)` is the sampler. `None`: the budget is spent or the sampler has
/// nothing left.
pub fn ask(
    storage: &mut dyn Storage,
    study: &str,
    opts: &AskOptions<'_>,
    propose: &mut dyn FnMut(&[Trial], u64) -> Option<Params>,
) -> Result<Option<Trial>> {
    let mut taken = None;
    storage.transact(study, &mut |stored, now| {
        let mut writes = Vec::new();
        let mut trials: Vec<Trial> = stored.iter().map(|s| s.trial.clone()).collect();
        let mut next = trials.iter().map(|t| t.number + 1).max().unwrap_or(0);
        for s in stored {
            let t = &s.trial;
            if t.state == TrialState::Running && now - s.heartbeat > opts.stale_after_s {
                let mut dead = t.clone();
                dead.state = TrialState::Failed;
                dead.finished = Some(now);
                let stopped = stops(&trials, t);
                let silent = format!(
                    "worker {} stopped sending heartbeats ({:.0} s without one)",
                    t.worker.as_deref().unwrap_or("?"),
                    now - s.heartbeat
                );
                let requeue = stopped < opts.max_stops;
                dead.message = Some(if requeue {
                    format!("{silent}; re-queued as trial {next}")
                } else {
                    format!(
                        "{silent}; its parameters stopped a worker {stopped} times, so it is \
                         failed for good, not re-queued (a trial that kills its process, for \
                         example out of memory, would otherwise run forever)"
                    )
                });
                tracing::warn!(
                    trial = t.number,
                    "{}",
                    dead.message.as_deref().unwrap_or_default()
                );
                let at = trials
                    .iter()
                    .position(|x| x.number == t.number)
                    .expect("listed");
                trials[at] = dead.clone();
                writes.push(Stored {
                    trial: dead,
                    heartbeat: s.heartbeat,
                });
                if requeue {
                    let mut again = Trial::new(next, TrialState::Waiting, t.params.clone());
                    again.retry_of = Some(t.number);
                    next += 1;
                    trials.push(again.clone());
                    writes.push(Stored {
                        trial: again,
                        heartbeat: 0.0,
                    });
                }
            }
        }
        let waiting = trials
            .iter()
            .filter(|t| t.state == TrialState::Waiting)
            .min_by_key(|t| t.number)
            .cloned();
        let claim = match waiting {
            Some(t) => Some(t),
            None if opts.max_trials.is_some_and(|m| counted(&trials) >= m) => None,
            None => propose(&trials, next).map(|p| Trial::new(next, TrialState::Waiting, p)),
        };
        if let Some(mut t) = claim {
            t.state = TrialState::Running;
            t.worker = Some(opts.worker.to_string());
            t.started = Some(now);
            writes.retain(|w| w.trial.number != t.number);
            writes.push(Stored {
                trial: t.clone(),
                heartbeat: now,
            });
            taken = Some(t);
        }
        Ok(writes)
    })?;
    Ok(taken)
}

/// The stored trial `number` if `worker` holds it (running, its worker id), else
/// [`TuneError::LostTrial`] with the state found.
fn held<'s>(stored: &'s [Stored], study: &str, number: u64, worker: &str) -> Result<&'s Stored> {
    match stored.iter().find(|s| s.trial.number == number) {
        Some(s)
            if s.trial.state == TrialState::Running
                && s.trial.worker.as_deref() == Some(worker) =>
        {
            Ok(s)
        }
        other => Err(TuneError::LostTrial {
            study: study.into(),
            number,
            state: other.map_or("missing".into(), |s| s.trial.state.to_string()),
        }),
    }
}

/// Writes `trial` (intermediate values, or its end) if `worker` still holds it; refreshes the
/// heartbeat.
pub fn save_held(
    storage: &mut dyn Storage,
    study: &str,
    trial: &Trial,
    worker: &str,
) -> Result<()> {
    storage.transact(study, &mut |stored, now| {
        held(stored, study, trial.number, worker)?;
        Ok(vec![Stored {
            trial: trial.clone(),
            heartbeat: now,
        }])
    })
}

/// Refreshes the heartbeat of a trial `worker` holds.
pub fn heartbeat(storage: &mut dyn Storage, study: &str, number: u64, worker: &str) -> Result<()> {
    storage.transact(study, &mut |stored, now| {
        let s = held(stored, study, number, worker)?;
        Ok(vec![Stored {
            trial: s.trial.clone(),
            heartbeat: now,
        }])
    })
}

/// Queues `params` as a waiting trial (run before any new proposal); returns its number.
pub fn enqueue(storage: &mut dyn Storage, study: &str, params: Params) -> Result<u64> {
    let mut number = 0;
    storage.transact(study, &mut |stored, _| {
        number = stored.iter().map(|s| s.trial.number + 1).max().unwrap_or(0);
        Ok(vec![Stored {
            trial: Trial::new(number, TrialState::Waiting, params.clone()),
            heartbeat: 0.0,
        }])
    })?;
    Ok(number)
}
