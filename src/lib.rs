//! pruneguard: gated, conservative Docker image pruning.
//!
//! A functional core in an imperative shell: gather a snapshot (the only I/O before deciding)
//! → pure gates and plan (no engine, no filesystem, no clock: `now` is passed in) → execute →
//! report. Where each concern lives:
//!
//! | layer | modules |
//! | --- | --- |
//! | leaf data, no I/O | [`model`] (what the engine returns and the core reads), [`policy`] (typed policy), [`human`] (formatting) |
//! | pure core (clock, filesystem and process calls denied by clippy.toml) | [`gates`] (verdicts with evidence), [`swarm_manager`] (a manager's judgement of each service), [`plan`] (candidates and kept reasons), [`decision`] (mode, action, why a wait ended, re-check scope) |
//! | settings | [`cli`] (raw flags), [`config`] (file, environment and flags combined once into immutable settings) |
//! | the engine boundary | [`engine`] (the narrow trait and its bollard implementation: the only code that speaks an engine's API) |
//! | gathering and acting | [`snapshot`] (engine + filesystem + clock → snapshot), [`disk`] (statvfs), [`containerd`] (where containerd keeps image data), [`wait`] (waiting for closed gates), [`signals`] (SIGTERM/SIGINT: stop, report, die by the signal), [`execute`] (deleting exactly the plan, re-checking gates) |
//! | telling | [`report`] (text, JSON, metrics; the run's outcome), [`state`] (run lock, `last-run.json`, atomic writes), [`crash_record`] (when each crash loop was first seen), [`logging`] |
//! | commands | [`app`] (wires the calls per command; one pass of gather, decide, act, report), [`watch`] (that pass every interval) and [`metrics_server`] (its metrics over HTTP), [`doctor`] (host checks), [`exit`] (the one mapping to exit codes) |

pub mod app;
pub mod cli;
pub mod config;
pub mod containerd;
pub mod crash_record;
pub mod decision;
pub mod disk;
pub mod doctor;
pub mod engine;
pub mod execute;
pub mod exit;
pub mod gates;
pub mod human;
pub mod logging;
pub mod metrics_server;
pub mod model;
pub mod observe;
pub mod plan;
pub mod policy;
pub mod record;
pub mod report;
pub mod service_ref;
pub mod signals;
pub mod snapshot;
pub mod state;
pub mod swarm_manager;
pub mod tiers;
pub mod wait;
pub mod watch;
pub mod worker_evidence;
pub mod worker_gather;
