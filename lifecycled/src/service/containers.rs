use std::sync::Arc;
use std::time::SystemTime;

use berth_proto::lifecycle::v1 as api;
use berth_proto::lifecycle::v1::containers_server::Containers;
use berth_proto::lifecycle::v1::envelope::Event;
use tonic::{Request, Response, Status};

use crate::events::Bus;
use crate::images::{blocking, status};
use crate::namespace;
use crate::store::{self, MountRecord, Record, Store, StoreError};
use crate::tasks::Tasks;

pub struct Service {
    pub store: Arc<Store>,
    pub images: imagestore::Store,
    pub tasks: Arc<Tasks>,
    pub events: Bus,
}

fn store_err(e: StoreError) -> Status {
    match e {
        StoreError::Exists(_) => Status::already_exists(e.to_string()),
        StoreError::NotFound(_) => Status::not_found(e.to_string()),
        e => Status::internal(format!(
            "{e}: {}",
            std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default()
        )),
    }
}

fn event(r: &Record) -> api::ContainerEvent {
    api::ContainerEvent {
        id: r.id.clone(),
        image: r.image.clone(),
        labels: r.labels.clone().into_iter().collect(),
    }
}

#[tonic::async_trait]
impl Containers for Service {
    async fn create(
        &self,
        req: Request<api::CreateContainerRequest>,
    ) -> Result<Response<api::Container>, Status> {
        let ns = namespace::of(&req)?;
        let c = req
            .into_inner()
            .container
            .ok_or_else(|| Status::invalid_argument("container is missing"))?;
        namespace::validate_id("container", &c.id)?;
        let spec: serde_json::Value = serde_json::from_slice(&c.spec).map_err(|e| {
            Status::invalid_argument(format!("container {}: spec is not valid JSON: {e}", c.id))
        })?;
        if !spec.is_object() || !spec["process"].is_object() {
            return Err(Status::invalid_argument(format!(
                "container {}: spec must be an OCI runtime spec with a process",
                c.id
            )));
        }
        if c.rootfs.is_empty()
            && c.snapshot_key.is_empty()
            && spec["root"]["path"]
                .as_str()
                .is_none_or(|p| !p.starts_with('/'))
        {
            return Err(Status::invalid_argument(format!(
                "container {}: give rootfs mounts, a snapshot, or an absolute root.path in the spec",
                c.id
            )));
        }
        // An unknown runtime fails now, not at the first start.
        let runtime = self.tasks.runtime_entry(&c.runtime)?.name;
        let now = SystemTime::now();
        let r = Record {
            id: c.id,
            labels: c.labels.into_iter().collect(),
            image: c.image,
            runtime,
            spec: spec.to_string(),
            rootfs: c
                .rootfs
                .into_iter()
                .map(|m| MountRecord {
                    r#type: m.r#type,
                    source: m.source,
                    target: m.target,
                    options: m.options,
                })
                .collect(),
            snapshot_key: c.snapshot_key,
            created_at: now,
            updated_at: now,
            extensions: Default::default(),
        };
        if self.store.get(&ns, &r.id).is_ok() {
            return Err(Status::already_exists(format!(
                "container {} already exists",
                r.id
            )));
        }
        // A snapshot of the image is the container's writable rootfs.
        let prepared = if !r.snapshot_key.is_empty() && r.rootfs.is_empty() {
            let images = self.images.clone();
            let (ns2, key, image) = (ns.clone(), r.snapshot_key.clone(), r.image.clone());
            blocking(move || {
                let parent = if image.is_empty() {
                    None
                } else {
                    images.unpack(&ns2, &image).map_err(status)?
                };
                images.prepare(&ns2, &key, parent.as_ref()).map_err(status)
            })
            .await?;
            true
        } else {
            false
        };
        let r = match self.store.create(&ns, r.clone()) {
            Ok(r) => r,
            Err(e) => {
                if prepared && let Err(e) = self.images.remove(&ns, &r.snapshot_key) {
                    tracing::warn!("removing snapshot {}: {}", r.snapshot_key, e.chain());
                }
                return Err(store_err(e));
            }
        };
        self.events.publish(&ns, Event::ContainerCreate(event(&r)));
        Ok(Response::new(r.to_api()))
    }

    async fn get(
        &self,
        req: Request<api::ContainerRequest>,
    ) -> Result<Response<api::Container>, Status> {
        let ns = namespace::of(&req)?;
        let r = self
            .store
            .get(&ns, &req.into_inner().id)
            .map_err(store_err)?;
        Ok(Response::new(r.to_api()))
    }

    async fn list(
        &self,
        req: Request<api::ListContainersRequest>,
    ) -> Result<Response<api::ListContainersResponse>, Status> {
        let ns = namespace::of(&req)?;
        let filters = req.into_inner().filters;
        let mut containers = Vec::new();
        for r in self.store.list(&ns) {
            if store::matches(&r, &filters).map_err(Status::invalid_argument)? {
                containers.push(r.to_api());
            }
        }
        Ok(Response::new(api::ListContainersResponse { containers }))
    }

    async fn update(
        &self,
        req: Request<api::UpdateContainerRequest>,
    ) -> Result<Response<api::Container>, Status> {
        let ns = namespace::of(&req)?;
        let u = req.into_inner();
        let spec = if u.spec.is_empty() {
            None
        } else {
            let v: serde_json::Value = serde_json::from_slice(&u.spec).map_err(|e| {
                Status::invalid_argument(format!("container {}: spec is not valid JSON: {e}", u.id))
            })?;
            Some(v.to_string())
        };
        let only_spec = spec.is_some() && u.labels.is_empty();
        let r = self
            .store
            .update(&ns, &u.id, |r| {
                if let Some(s) = spec {
                    r.spec = s;
                }
                if only_spec {
                    return;
                }
                if !u.merge_labels {
                    r.labels.clear();
                }
                for (k, v) in u.labels {
                    if v.is_empty() {
                        r.labels.remove(&k);
                    } else {
                        r.labels.insert(k, v);
                    }
                }
            })
            .map_err(store_err)?;
        self.events.publish(&ns, Event::ContainerUpdate(event(&r)));
        Ok(Response::new(r.to_api()))
    }

    async fn delete(&self, req: Request<api::ContainerRequest>) -> Result<Response<()>, Status> {
        let ns = namespace::of(&req)?;
        let id = req.into_inner().id;
        if self.tasks.has_task(&ns, &id) {
            return Err(Status::failed_precondition(format!(
                "container {id} has a task: delete the task first"
            )));
        }
        let r = self.store.delete(&ns, &id).map_err(store_err)?;
        if !r.snapshot_key.is_empty() && r.rootfs.is_empty() {
            let images = self.images.clone();
            let key = r.snapshot_key.clone();
            let ns2 = ns.clone();
            let res = blocking(move || match images.remove(&ns2, &key) {
                Ok(()) | Err(imagestore::Error::SnapshotNotFound { .. }) => Ok(()),
                Err(e) => Err(status(e)),
            })
            .await;
            if let Err(e) = res {
                // The record is gone either way; what is left is disk space,
                // and the warning says whose.
                tracing::warn!("removing the snapshot of container {id}: {}", e.message());
            }
        }
        self.events.publish(&ns, Event::ContainerDelete(event(&r)));
        Ok(Response::new(()))
    }
}
