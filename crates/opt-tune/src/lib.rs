//! opt-tune: hyperparameter and compression search with studies kept in a database.
//!
//! - [`space`]: search spaces from TOML (floats uniform or log, integers with a step,
//!   categorical choices), checked before any trial runs.
//! - [`sampler`]: grid, random, Halton (quasi-random) and TPE (independent or multivariate),
//!   each a pure function of (seed, trial number, history), so sequential studies reproduce.
//! - [`pruner`]: early stopping from intermediate values: the median rule, ASHA and Hyperband;
//!   they watch one objective, so they also work in multi-objective studies.
//! - [`objective`], [`pareto`]: one or several objectives, constraints, the best trial or the
//!   Pareto front of feasible trials.
//! - [`storage`]: in-memory and SQLite studies shared by several workers, with heartbeats:
//!   a trial whose worker died is failed and re-queued.
//!
//! The search core needs no burn tensors.
//!
//! ```
//! use opt_tune::objective::{Direction, Objective, StudyDef};
//! use opt_tune::sampler::SamplerConfig;
//! use opt_tune::space::SearchSpace;
//! use opt_tune::study::{Outcome, Study, WorkerConfig};
//!
//! let space = SearchSpace::from_toml("x = { float = [-5.0, 5.0] }", "space").unwrap();
//! let def = StudyDef {
//!     space,
//!     objectives: vec![Objective { metric: "y".into(), direction: Direction::Minimize }],
//!     constraints: vec![],
//!     watch: 0,
//! };
//! let sampler = SamplerConfig::default().build(&def, "sampler").unwrap();
//! let storage = opt_tune::storage::open("memory").unwrap();
//! let mut study = Study::open(storage, "demo", def, sampler, None, WorkerConfig::default()).unwrap();
//! study
//!     .optimize(30, |trial, _| {
//!         let x = trial.params["x"].as_f64().unwrap();
//!         Outcome::Complete([("y".to_string(), (x - 1.0).powi(2))].into())
//!     })
//!     .unwrap();
//! let best = &study.front().unwrap()[0];
//! assert!(best.values[0] < 0.5);
//! ```

pub mod bench;
pub mod config;
pub mod error;
pub mod lease;
pub mod objective;
pub mod pareto;
pub mod pruner;
pub mod sampler;
pub mod space;
pub mod storage;
pub mod study;
pub mod trial;

pub use config::{CheckedTune, TuneConfig};
pub use error::{Result, TuneError};
