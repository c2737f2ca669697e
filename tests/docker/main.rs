//! The test binary whose tests start private Docker daemons (`support::Sandbox`, through
//! `scripts/sandbox.sh`): they need root and Docker, so run them with `scripts/test.sh`, which
//! installs what is missing. Each module is one area end to end against real daemons; nextest
//! puts every test of this binary in its `docker` test group (`.config/nextest.toml`).

mod age_docker;
mod conformance;
mod cycle_docker;
mod disk_docker;
mod disk_paths_docker;
mod doctor;
mod faults_docker;
mod gates_docker;
mod hostile_api;
mod podman_api;
mod run_docker;
mod sandbox_smoke;
mod signals_docker;
mod support;
mod swarm3;
mod swarm_docker;
mod tiers_docker;
mod tls_docker;
mod watch_docker;
