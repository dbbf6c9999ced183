//! A container's record: the lock an operation holds while it works on the
//! container, and a copy of the record as the last holder that changed it
//! left it, which listings read without waiting.
//!
//! A start holds the lock while it makes the network namespace, runs the
//! CNI plugins and makes the task, and a start whose log server does not
//! answer holds it until the dial gives up: a `ps`, `info`, `system df` or
//! a network's inspect that waited for every lock would wait for that
//! start. dockerd reads those from its view of the containers, replicated
//! at each change; the copy here is that view.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::container::Container;

pub struct Record {
    live: tokio::sync::Mutex<Container>,
    seen: std::sync::Mutex<Arc<Container>>,
}

impl Record {
    pub fn new(c: Container) -> Self {
        Record {
            seen: std::sync::Mutex::new(Arc::new(c.clone())),
            live: tokio::sync::Mutex::new(c),
        }
    }

    /// The record, for an operation: waits for the one that holds it.
    pub async fn lock(&self) -> Guard<'_> {
        Guard {
            live: self.live.lock().await,
            seen: &self.seen,
            changed: false,
        }
    }

    pub fn try_lock(&self) -> Result<Guard<'_>, tokio::sync::TryLockError> {
        Ok(Guard {
            live: self.live.try_lock()?,
            seen: &self.seen,
            changed: false,
        })
    }

    /// The record as the last change left it (an operation in progress
    /// shows what it had changed by its last release, as dockerd's view).
    pub fn seen(&self) -> Arc<Container> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The record held; a holder that took it mutably leaves its copy for the
/// listings when it lets go.
pub struct Guard<'a> {
    live: tokio::sync::MutexGuard<'a, Container>,
    seen: &'a std::sync::Mutex<Arc<Container>>,
    changed: bool,
}

impl Guard<'_> {
    /// Writes the record (see [`Container::save`]) and shows it to the
    /// listings at once, while the holder goes on: a removal's "Removal In
    /// Progress", a start's steps. dockerd's checkpoint writes its disk,
    /// then its view, the same way.
    pub fn save(&self) -> std::io::Result<()> {
        self.live.save()?;
        self.publish();
        Ok(())
    }

    fn publish(&self) {
        let copy = Arc::new(self.live.clone());
        *self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = copy;
    }
}

impl Deref for Guard<'_> {
    type Target = Container;
    fn deref(&self) -> &Container {
        &self.live
    }
}

impl DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut Container {
        self.changed = true;
        &mut self.live
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.changed {
            self.publish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str) -> Container {
        in_dir(id, std::path::Path::new("/nonexistent"))
    }

    fn in_dir(id: &str, dir: &std::path::Path) -> Container {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": id, "path": "sh", "args": [], "image_id": "", "image_ref": "",
            "created": {"secs_since_epoch": 0, "nanos_since_epoch": 0},
            "config": {}, "host_config": {}, "networking": {},
            "state": serde_json::to_value(super::super::container::State::default())
                .expect("a state"),
            "restart_count": 0, "mounts": [], "runtime": "runc", "dir": dir,
        }))
        .expect("a container record")
    }

    #[tokio::test]
    async fn a_listing_sees_the_last_release_not_the_holder() {
        let r = Record::new(container("a"));
        let mut held = r.lock().await;
        held.name = "changed".into();
        // While held: the copy is what was there before, read at once.
        assert_ne!(r.seen().name, "changed");
        assert!(r.try_lock().is_err());
        drop(held);
        assert_eq!(r.seen().name, "changed");
    }

    #[tokio::test]
    async fn a_reader_leaves_the_copy_as_it_was() {
        let r = Record::new(container("a"));
        let before = r.seen();
        {
            let g = r.lock().await;
            assert_eq!(g.id, "a");
        }
        // Not copied again: nothing was taken mutably.
        assert!(Arc::ptr_eq(&before, &r.seen()));
    }

    #[tokio::test]
    async fn a_save_shows_the_record_before_the_holder_lets_go() {
        let dir = tempfile::tempdir().expect("a directory");
        let r = Record::new(in_dir("a", dir.path()));
        let mut held = r.lock().await;
        held.name = "removing".into();
        held.save().expect("saved");
        assert_eq!(r.seen().name, "removing");
        assert!(dir.path().join("config.v2.json").exists());
    }
}
