//! A study: a definition, a sampler, an optional early-stopping rule and a storage, driven by
//! ask / report / tell, or by [`Study::optimize`] with an objective function.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Result, TuneError};
use crate::lease::Beating;
use crate::objective::StudyDef;
use crate::pareto;
use crate::pruner::Pruner;
use crate::sampler::Sampler;
use crate::storage::Storage;
use crate::storage::ops::{self, AskOptions};
use crate::trial::{Trial, TrialState, now_s};

/// How a trial ended, as the objective tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Finished: every metric it measured, by name (objectives and constraint metrics among
    /// them).
    Complete(BTreeMap<String, f64>),
    /// Stopped by the early-stopping rule.
    Pruned,
    /// Failed, with the reason.
    Failed(String),
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's id (stored with the trials it holds).
    pub worker: String,
    /// Seconds without a heartbeat after which a running trial counts as dead.
    pub stale_after_s: f64,
    /// Seconds between heartbeats while a trial runs.
    pub heartbeat_s: f64,
    /// A trial whose worker stopped this many times (killed, or silent past
    /// `stale_after_s`) is failed for good instead of re-queued again.
    pub max_stops: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        let thread = format!("{:?}", std::thread::current().id()).replace(['(', ')'], "");
        Self {
            worker: format!("{}:{thread}", process_name()),
            stale_after_s: 60.0,
            heartbeat_s: 5.0,
            max_stops: 3,
        }
    }
}

/// This process among the workers of a shared storage: `<host>:<pid>` (`$HOSTNAME`, else
/// `host`). Trials and locks store it as their holder.
pub fn process_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!("{host}:{}", std::process::id())
}

/// One study as seen by one worker.
pub struct Study {
    name: String,
    def: StudyDef,
    storage: Box<dyn Storage>,
    sampler: Box<dyn Sampler>,
    pruner: Option<Box<dyn Pruner>>,
    worker: WorkerConfig,
}

impl Study {
    /// Opens study `name` in `storage` (created if new; refused if stored with another
    /// definition).
    pub fn open(
        mut storage: Box<dyn Storage>,
        name: &str,
        def: StudyDef,
        sampler: Box<dyn Sampler>,
        pruner: Option<Box<dyn Pruner>>,
        worker: WorkerConfig,
    ) -> Result<Self> {
        def.check("tune")?;
        storage.open_study(name, &def)?;
        Ok(Self {
            name: name.into(),
            def,
            storage,
            sampler,
            pruner,
            worker,
        })
    }

    /// The study's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its definition.
    pub fn def(&self) -> &StudyDef {
        &self.def
    }

    /// The storage's URL.
    pub fn storage_url(&self) -> String {
        self.storage.url()
    }

    /// Takes the next trial (re-queued, enqueued or newly sampled); `None` when the study holds
    /// `max_trials` trials or the sampler is exhausted.
    pub fn ask(&mut self, max_trials: Option<u64>) -> Result<Option<Trial>> {
        let opts = AskOptions {
            worker: &self.worker.worker,
            stale_after_s: self.worker.stale_after_s,
            max_trials,
            max_stops: self.worker.max_stops,
        };
        let (sampler, def) = (&self.sampler, &self.def);
        ops::ask(
            self.storage.as_mut(),
            &self.name,
            &opts,
            &mut |history, number| sampler.propose(def, history, number),
        )
    }

    /// Records `value` of the watched objective at `step` and says whether the trial should
    /// stop now (the early-stopping rule, judged against every trial in the storage).
    pub fn report(&mut self, trial: &mut Trial, step: u32, value: f64) -> Result<bool> {
        trial.intermediate.retain(|(s, _)| *s != step);
        trial.intermediate.push((step, value));
        trial.intermediate.sort_by_key(|(s, _)| *s);
        ops::save_held(
            self.storage.as_mut(),
            &self.name,
            trial,
            &self.worker.worker,
        )?;
        let Some(pruner) = &self.pruner else {
            return Ok(value.is_nan());
        };
        let all = self.storage.trials(&self.name)?;
        Ok(pruner.should_prune(&self.def, trial, &all))
    }

    /// Ends `trial` with `outcome`; returns it as stored. Objective values are read from the
    /// metrics; a missing or non-finite objective fails the trial (the study goes on).
    pub fn tell(&mut self, mut trial: Trial, outcome: Outcome) -> Result<Trial> {
        trial.finished = Some(now_s());
        match outcome {
            Outcome::Complete(metrics) => {
                let values: std::result::Result<Vec<f64>, String> = self
                    .def
                    .objectives
                    .iter()
                    .map(|o| match metrics.get(&o.metric) {
                        Some(v) if v.is_finite() => Ok(*v),
                        Some(v) => Err(format!("diverged: {} = {v}", o.metric)),
                        None => Err(format!(
                            "the trial returned no '{}' (it returned {})",
                            o.metric,
                            metrics.keys().cloned().collect::<Vec<_>>().join(", ")
                        )),
                    })
                    .collect();
                match values {
                    Ok(values) => {
                        trial.state = TrialState::Complete;
                        trial.values = values;
                        trial.violations = self
                            .def
                            .constraints
                            .iter()
                            .map(|c| {
                                c.violation(metrics.get(&c.metric).copied().unwrap_or(f64::NAN))
                            })
                            .collect();
                    }
                    Err(why) => {
                        trial.state = TrialState::Failed;
                        trial.message = Some(why);
                    }
                }
                trial.metrics = metrics;
            }
            Outcome::Pruned => trial.state = TrialState::Pruned,
            Outcome::Failed(why) => {
                trial.state = TrialState::Failed;
                trial.message = Some(why);
            }
        }
        // Written only if this worker still holds it (the stored copy is still running).
        ops::save_held(
            self.storage.as_mut(),
            &self.name,
            &trial,
            &self.worker.worker,
        )?;
        Ok(trial)
    }

    /// Every trial of the study, by number.
    pub fn trials(&mut self) -> Result<Vec<Trial>> {
        self.storage.trials(&self.name)
    }

    /// The best trial (one objective) or the Pareto front (several), feasible complete trials
    /// only.
    pub fn front(&mut self) -> Result<Vec<Trial>> {
        let trials = self.trials()?;
        Ok(pareto::front(&self.def, &trials)
            .into_iter()
            .cloned()
            .collect())
    }

    /// Runs trials until the study holds `max_trials` (counted over every worker) or the
    /// sampler is exhausted. `objective` gets the trial and a reporter for intermediate values;
    /// a heartbeat thread keeps the trial alive while it runs. A trial taken from this worker
    /// meanwhile (re-queued because the worker was paused or silent past `stale_after_s`) is
    /// logged and dropped, and the worker goes on with the next one. Returns the trials this
    /// worker finished.
    pub fn optimize<F>(&mut self, max_trials: u64, mut objective: F) -> Result<Vec<Trial>>
    where
        F: FnMut(&Trial, &mut Reporter<'_>) -> Outcome,
    {
        let mut done = Vec::new();
        while let Some(trial) = self.ask(Some(max_trials))? {
            let beat = Heartbeat::start(
                self.storage.reopen()?,
                &self.name,
                trial.number,
                &self.worker,
            );
            let mut reporter = Reporter {
                study: self,
                trial: trial.clone(),
                error: None,
            };
            let outcome = objective(&trial, &mut reporter);
            let Reporter {
                trial: reported,
                error,
                ..
            } = reporter;
            beat.stop();
            let finished = match error {
                Some(e) => Err(e),
                None => self.tell(reported, outcome),
            };
            match finished {
                Ok(finished) => {
                    tracing::info!(
                        study = %self.name,
                        trial = finished.number,
                        state = %finished.state,
                        values = ?finished.values,
                        "trial finished"
                    );
                    done.push(finished);
                }
                Err(e @ TuneError::LostTrial { .. }) => {
                    tracing::warn!(
                        study = %self.name,
                        trial = trial.number,
                        "{e}; its result is dropped and this worker takes the next trial"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

/// Handed to an objective function: reports intermediate values and says when to stop.
pub struct Reporter<'a> {
    study: &'a mut Study,
    trial: Trial,
    error: Option<TuneError>,
}

impl Reporter<'_> {
    /// Records `value` at `step`; `true` means the trial should stop (return
    /// [`Outcome::Pruned`]). A storage error also stops it and is returned by `optimize`.
    pub fn report(&mut self, step: u32, value: f64) -> bool {
        match self.study.report(&mut self.trial, step, value) {
            Ok(stop) => stop,
            Err(e) => {
                self.error = Some(e);
                true
            }
        }
    }

    /// The trial as reported so far.
    pub fn trial(&self) -> &Trial {
        &self.trial
    }
}

/// A thread that refreshes a trial's heartbeat until stopped.
struct Heartbeat(Beating);

impl Heartbeat {
    fn start(
        mut storage: Box<dyn Storage>,
        study: &str,
        number: u64,
        worker: &WorkerConfig,
    ) -> Self {
        let (study, id) = (study.to_string(), worker.worker.clone());
        // A failed heartbeat (a busy or briefly unreachable database) is retried at the next
        // beat; only a trial that is no longer this worker's ends the beating.
        Self(Beating::start(
            Duration::from_secs_f64(worker.heartbeat_s),
            move || match ops::heartbeat(storage.as_mut(), &study, number, &id) {
                Ok(()) => true,
                Err(e @ TuneError::LostTrial { .. }) => {
                    tracing::warn!("heartbeat of trial {number}: {e}");
                    false
                }
                Err(e) => {
                    tracing::warn!("heartbeat of trial {number} failed, retrying: {e}");
                    true
                }
            },
        ))
    }

    fn stop(self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::{Direction, Objective};
    use crate::pruner::{EarlyStoppingConfig, EarlyStoppingKind};
    use crate::sampler::SamplerConfig;
    use crate::space::SearchSpace;

    fn study(objectives: Vec<Objective>, stopping: EarlyStoppingKind) -> Study {
        let def = StudyDef {
            space: SearchSpace::from_toml("x = { float = [0.0, 1.0] }", "space").unwrap(),
            objectives,
            constraints: vec![],
            watch: 0,
        };
        let sampler = SamplerConfig {
            seed: 1,
            ..Default::default()
        }
        .build(&def, "s")
        .unwrap();
        let cfg = EarlyStoppingConfig {
            kind: stopping,
            startup_trials: 2,
            ..Default::default()
        };
        let pruner = cfg.build("e").unwrap();
        let storage = crate::storage::open("memory").unwrap();
        Study::open(storage, "t", def, sampler, pruner, WorkerConfig::default()).unwrap()
    }

    fn maximize(metric: &str) -> Objective {
        Objective {
            metric: metric.into(),
            direction: Direction::Maximize,
        }
    }

    #[test]
    fn a_diverged_or_incomplete_trial_fails_and_the_study_goes_on() {
        let mut s = study(vec![maximize("accuracy")], EarlyStoppingKind::None);
        let done = s
            .optimize(6, |t, _| match t.number {
                1 => Outcome::Complete(BTreeMap::from([("accuracy".into(), f64::NAN)])),
                2 => Outcome::Complete(BTreeMap::from([("loss".into(), 0.1)])),
                _ => Outcome::Complete(BTreeMap::from([(
                    "accuracy".into(),
                    t.params["x"].as_f64().unwrap(),
                )])),
            })
            .unwrap();
        assert_eq!(done.len(), 6);
        assert_eq!(done[1].state, TrialState::Failed);
        assert!(
            done[1]
                .message
                .as_deref()
                .unwrap()
                .contains("diverged: accuracy = NaN")
        );
        assert!(
            done[2]
                .message
                .as_deref()
                .unwrap()
                .contains("returned no 'accuracy' (it returned loss)")
        );
        assert_eq!(
            done.iter()
                .filter(|t| t.state == TrialState::Complete)
                .count(),
            4
        );
        assert_eq!(s.front().unwrap().len(), 1);
    }

    #[test]
    fn early_stopping_runs_in_a_multi_objective_study() {
        let objectives = vec![
            maximize("accuracy"),
            Objective {
                metric: "latency_ms".into(),
                direction: Direction::Minimize,
            },
        ];
        let mut s = study(objectives, EarlyStoppingKind::Median);
        let done = s
            .optimize(12, |t, r| {
                // Learning curves ordered by x: low x is worse at every step.
                let x = t.params["x"].as_f64().unwrap();
                for step in 1..=5 {
                    if r.report(step, x * f64::from(step) / 5.0) {
                        return Outcome::Pruned;
                    }
                }
                Outcome::Complete(BTreeMap::from([
                    ("accuracy".into(), x),
                    ("latency_ms".into(), x * x),
                ]))
            })
            .unwrap();
        let pruned = done
            .iter()
            .filter(|t| t.state == TrialState::Pruned)
            .count();
        assert!(pruned >= 2, "{done:?}");
        for t in done.iter().filter(|t| t.state == TrialState::Pruned) {
            assert!(t.intermediate.len() < 5);
        }
        assert!(!s.front().unwrap().is_empty());
    }
}
