//! pruneguard: gated, conservative Docker image pruning.
//!
//! The flow is a functional core in an imperative shell:
//! [`snapshot::gather`] and the image list (the only I/O before deciding) → pure [`gates::evaluate`] and
//! [`plan::plan`] → [`execute::execute`] → [`report`]. [`app`] wires them per command;
//! [`engine`] is the only code that speaks to Docker.

pub mod app;
pub mod cli;
pub mod config;
pub mod decision;
pub mod disk;
pub mod doctor;
pub mod engine;
pub mod execute;
pub mod exit;
pub mod gates;
pub mod human;
pub mod logging;
pub mod model;
pub mod plan;
pub mod policy;
pub mod report;
pub mod snapshot;
pub mod state;
pub mod wait;
