//! The event stream: every change lifecycled makes or sees, in order, to every
//! subscriber (a subscriber that falls behind loses the oldest events).

use std::time::SystemTime;

use berth_proto::lifecycle::v1::{Envelope, envelope::Event};
use tokio::sync::broadcast;

#[derive(Clone)]
pub struct Bus(broadcast::Sender<Envelope>);

impl Default for Bus {
    fn default() -> Self {
        Bus(broadcast::channel(4096).0)
    }
}

pub fn topic(e: &Event) -> &'static str {
    match e {
        Event::ContainerCreate(_) => "/containers/create",
        Event::ContainerUpdate(_) => "/containers/update",
        Event::ContainerDelete(_) => "/containers/delete",
        Event::TaskCreate(_) => "/tasks/create",
        Event::TaskStart(_) => "/tasks/start",
        Event::TaskExit(_) => "/tasks/exit",
        Event::TaskDelete(_) => "/tasks/delete",
        Event::TaskOom(_) => "/tasks/oom",
        Event::TaskPaused(_) => "/tasks/paused",
        Event::TaskResumed(_) => "/tasks/resumed",
        Event::ExecAdded(_) => "/tasks/exec-added",
        Event::ExecStarted(_) => "/tasks/exec-started",
    }
}

impl Bus {
    pub fn publish(&self, namespace: &str, event: Event) {
        let env = Envelope {
            timestamp: Some(crate::timestamp(SystemTime::now())),
            namespace: namespace.to_string(),
            topic: topic(&event).to_string(),
            event: Some(event),
        };
        tracing::debug!(topic = %env.topic, namespace, "event");
        // No subscribers is fine.
        let _ = self.0.send(env);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.0.subscribe()
    }
}

/// A subscriber's filters: `topic==X`, `topic~=PREFIX`, `namespace==N`; an
/// event passes if any filter matches (or none are given).
pub struct Filter(Vec<(String, bool, String)>);

impl Filter {
    pub fn parse(filters: &[String]) -> Result<Filter, String> {
        let mut out = Vec::new();
        for f in filters {
            let (key, prefix, value) = if let Some((k, v)) = f.split_once("~=") {
                (k, true, v)
            } else if let Some((k, v)) = f.split_once("==") {
                (k, false, v)
            } else {
                return Err(format!("filter {f:?}: expected KEY==VALUE or KEY~=PREFIX"));
            };
            let key = key.trim();
            if key != "topic" && key != "namespace" {
                return Err(format!(
                    "filter {f:?}: only topic and namespace can be filtered"
                ));
            }
            out.push((key.to_string(), prefix, value.trim().to_string()));
        }
        Ok(Filter(out))
    }

    pub fn matches(&self, e: &Envelope) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|(k, prefix, v)| {
                let field = if k == "topic" { &e.topic } else { &e.namespace };
                if *prefix {
                    field.starts_with(v.as_str())
                } else {
                    field == v
                }
            })
    }
}
