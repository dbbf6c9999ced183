//! Leases: what protects blobs and unpacked layers that are written but not
//! yet referenced by an image (a pull in progress, a commit before its image
//! record exists) from the garbage collector.
//!
//! Leases live in memory: they protect work of this process, and a process
//! that dies has no work left to protect.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use oci_spec::image::Digest;

#[derive(Default)]
pub(crate) struct Leases {
    next: AtomicU64,
    map: Mutex<HashMap<u64, LeaseState>>,
}

#[derive(Default)]
pub(crate) struct LeaseState {
    pub(crate) blobs: HashSet<Digest>,
    /// Blobs this lease's work created (they were not in the store before);
    /// a failed operation removes them again.
    pub(crate) created_blobs: Vec<Digest>,
    /// Chain ids of committed layer snapshots.
    pub(crate) snapshots: HashSet<Digest>,
    pub(crate) created_snapshots: Vec<Digest>,
}

impl Leases {
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<u64, LeaseState>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn create(self: &Arc<Self>) -> Lease {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, LeaseState::default());
        Lease {
            leases: self.clone(),
            id,
        }
    }

    /// Whether any lease other than `except` holds the blob.
    pub(crate) fn holds_blob(&self, d: &Digest, except: Option<u64>) -> bool {
        self.lock()
            .iter()
            .any(|(id, l)| Some(*id) != except && l.blobs.contains(d))
    }

    pub(crate) fn holds_snapshot(&self, chain: &Digest, except: Option<u64>) -> bool {
        self.lock()
            .iter()
            .any(|(id, l)| Some(*id) != except && l.snapshots.contains(chain))
    }
}

/// Protects the blobs and layer snapshots added to it from [`crate::Store::gc`]
/// until it is dropped. Take one with [`crate::Store::lease`] before a
/// sequence of writes that ends in an image record (or in nothing), and drop
/// it once the record exists.
pub struct Lease {
    leases: Arc<Leases>,
    id: u64,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("id", &self.id).finish()
    }
}

impl Lease {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Protects a blob, whether or not it exists yet.
    pub fn add_blob(&self, digest: &Digest) {
        if let Some(l) = self.leases.lock().get_mut(&self.id) {
            l.blobs.insert(digest.clone());
        }
    }

    /// Protects a committed layer snapshot (by chain id) and, through it,
    /// the layers under it.
    pub fn add_snapshot(&self, chain_id: &Digest) {
        if let Some(l) = self.leases.lock().get_mut(&self.id) {
            l.snapshots.insert(chain_id.clone());
        }
    }

    pub(crate) fn record_created_blob(&self, digest: &Digest) {
        if let Some(l) = self.leases.lock().get_mut(&self.id) {
            l.blobs.insert(digest.clone());
            l.created_blobs.push(digest.clone());
        }
    }

    pub(crate) fn record_created_snapshot(&self, chain: &Digest) {
        if let Some(l) = self.leases.lock().get_mut(&self.id) {
            l.snapshots.insert(chain.clone());
            l.created_snapshots.push(chain.clone());
        }
    }

    pub(crate) fn created(&self) -> (Vec<Digest>, Vec<Digest>) {
        self.leases
            .lock()
            .get(&self.id)
            .map(|l| (l.created_blobs.clone(), l.created_snapshots.clone()))
            .unwrap_or_default()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.leases.lock().remove(&self.id);
    }
}
