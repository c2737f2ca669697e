//! The pure test binary: everything that needs neither a Docker daemon nor root. The config
//! resolution, the gates, the planner, the executor (through a fake engine), the report's
//! renderings and the command line, each in its own module.

mod alerts;
mod cli;
mod config;
mod containerd_store;
mod execute;
mod fixtures;
mod gates;
mod hostile_plan;
mod json_schema;
mod observe;
mod plan;
mod report_schema;
mod swarm_manager;
mod tiers;
mod worker_evidence;
