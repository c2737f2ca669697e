//! Swarm services and tasks, as the manager's API lists them: bollard's types, plus each
//! service's `PreviousSpec` image (read raw, bollard's `Service` has none).

use std::collections::HashMap;

use bollard::query_parameters::{ListServicesOptionsBuilder, ListTasksOptions};

use super::{DockerEngine, real_date, sorted};
use crate::engine::EngineError;
use crate::model::{Service, SwarmCluster, Task};

impl DockerEngine {
    /// Each service's `PreviousSpec` image by service ID (bollard's `Service` has no
    /// `PreviousSpec`, so `/services` is read once more, as plain JSON).
    pub(super) async fn previous_images(&self) -> Result<HashMap<String, String>, EngineError> {
        #[derive(serde::Deserialize)]
        struct RawService {
            #[serde(rename = "ID", default)]
            id: String,
            #[serde(rename = "PreviousSpec", default)]
            previous_spec: Option<serde_json::Value>,
        }
        let path = format!("/v{}/services", self.docker.client_version());
        let (status, body) = self
            .timed("GET /services", self.raw.get(&path))
            .await?
            .map_err(self.fail("GET /services"))?;
        if status != 200 {
            return Err(EngineError::Api {
                engine: self.speaker(),
                operation: "GET /services",
                status,
                message: String::from_utf8_lossy(&body).trim().to_string(),
            });
        }
        let services: Vec<RawService> =
            serde_json::from_slice(&body).map_err(|error| EngineError::Protocol {
                engine: self.speaker(),
                operation: "GET /services",
                message: error.to_string(),
            })?;
        Ok(services
            .into_iter()
            .filter_map(|service| {
                let image = service
                    .previous_spec?
                    .pointer("/TaskTemplate/ContainerSpec/Image")?
                    .as_str()?
                    .to_string();
                Some((service.id, image)).filter(|(_, image)| !image.is_empty())
            })
            .collect())
    }

    /// Services (with each one's previous spec image) and tasks (all, or as `tasks` filters
    /// them).
    pub(super) async fn services_and_tasks(
        &self,
        tasks: Option<ListTasksOptions>,
    ) -> Result<SwarmCluster, EngineError> {
        let services = self
            .timed(
                "GET /services",
                self.docker.list_services(Some(
                    ListServicesOptionsBuilder::default().status(true).build(),
                )),
            )
            .await?
            .map_err(self.fail("GET /services"))?;
        let tasks = self
            .timed("GET /tasks", self.docker.list_tasks(tasks))
            .await?
            .map_err(self.fail("GET /tasks"))?;
        let mut previous = self.previous_images().await?;
        Ok(SwarmCluster {
            services: services
                .into_iter()
                .map(|service| {
                    let spec = service.spec.unwrap_or_default();
                    let update = service.update_status.unwrap_or_default();
                    let id = service.id.unwrap_or_default();
                    Service {
                        image: spec
                            .task_template
                            .as_ref()
                            .and_then(|template| template.container_spec.as_ref())
                            .and_then(|container| container.image.clone())
                            .filter(|image| !image.is_empty()),
                        previous_image: previous.remove(&id),
                        id,
                        name: spec.name.unwrap_or_default(),
                        labels: sorted(spec.labels),
                        update_state: update
                            .state
                            .map(|state| state.to_string())
                            .filter(|state| !state.is_empty()),
                        update_started_at: update.started_at.and_then(real_date),
                        update_message: update.message.unwrap_or_default(),
                    }
                })
                .collect(),
            tasks: tasks
                .into_iter()
                .map(|task| {
                    let status = task.status.unwrap_or_default();
                    Task {
                        id: task.id.unwrap_or_default(),
                        service_id: task.service_id.unwrap_or_default(),
                        slot: task.slot,
                        node_id: task.node_id.filter(|node| !node.is_empty()),
                        desired_state: task
                            .desired_state
                            .map(|state| state.to_string())
                            .unwrap_or_default(),
                        state: status
                            .state
                            .map(|state| state.to_string())
                            .unwrap_or_default(),
                        created_at: task.created_at.and_then(real_date),
                        state_changed_at: status.timestamp.and_then(real_date),
                        message: status
                            .err
                            .filter(|err| !err.is_empty())
                            .or(status.message)
                            .unwrap_or_default(),
                    }
                })
                .collect(),
        })
    }
}
