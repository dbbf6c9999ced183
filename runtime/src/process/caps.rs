//! The five capability sets, applied the way runc applies them: the bounding set
//! is cut first (that needs CAP_SETPCAP, which root still has), the others after
//! the switch to the container's user.

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::error::{Error, Result};

fn convert(set: &Option<Capabilities>) -> CapsHashSet {
    set.iter()
        .flatten()
        .filter_map(|c| Capability::from_str(&format!("CAP_{c}")).ok())
        .collect()
}

pub struct Sets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

/// The sets the spec asks for, limited to what this process holds: a capability
/// missing from the host's own bounding set cannot be granted by anyone, so it
/// is left out with a warning instead of failing the start.
pub fn from_spec(spec: Option<&LinuxCapabilities>) -> Sets {
    let held = caps::read(None, CapSet::Bounding).unwrap_or_default();
    let limit = |s: CapsHashSet| -> CapsHashSet {
        let (ok, missing): (HashSet<_>, HashSet<_>) = s.into_iter().partition(|c| held.contains(c));
        if !missing.is_empty() {
            tracing::warn!(
                "capabilities not held by the runtime and left out: {:?}",
                missing
            );
        }
        ok
    };
    match spec {
        None => Sets {
            bounding: CapsHashSet::new(),
            effective: CapsHashSet::new(),
            permitted: CapsHashSet::new(),
            inheritable: CapsHashSet::new(),
            ambient: CapsHashSet::new(),
        },
        Some(c) => Sets {
            bounding: limit(convert(c.bounding())),
            effective: limit(convert(c.effective())),
            permitted: limit(convert(c.permitted())),
            inheritable: limit(convert(c.inheritable())),
            ambient: limit(convert(c.ambient())),
        },
    }
}

fn err(what: &str, e: caps::errors::CapsError) -> Error {
    Error::Invalid(format!("setting {what} capabilities: {e}"))
}

pub fn drop_bounding(sets: &Sets) -> Result<()> {
    let current = caps::read(None, CapSet::Bounding).map_err(|e| err("bounding", e))?;
    for cap in current.difference(&sets.bounding) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(|e| err("bounding", e))?;
    }
    Ok(())
}

/// Sets effective, inheritable and permitted (in an order the kernel accepts
/// whatever the current sets are), then raises the ambient set.
pub fn apply(sets: &Sets) -> Result<()> {
    let permitted_now = caps::read(None, CapSet::Permitted).map_err(|e| err("permitted", e))?;
    // Effective may only hold what is permitted both now and after.
    let eff: CapsHashSet = sets
        .effective
        .intersection(&permitted_now)
        .copied()
        .collect();
    caps::set(None, CapSet::Effective, &eff).map_err(|e| err("effective", e))?;
    caps::set(None, CapSet::Inheritable, &sets.inheritable).map_err(|e| err("inheritable", e))?;
    caps::set(None, CapSet::Permitted, &sets.permitted).map_err(|e| err("permitted", e))?;
    caps::set(None, CapSet::Effective, &sets.effective).map_err(|e| err("effective", e))?;
    // A capability can only be ambient if it is also inheritable and permitted;
    // like runc, report what cannot be raised and go on.
    for cap in &sets.ambient {
        if !sets.inheritable.contains(cap) || !sets.permitted.contains(cap) {
            continue;
        }
        if let Err(e) = caps::raise(None, CapSet::Ambient, *cap) {
            tracing::warn!("ambient capability {cap} not raised: {e}");
        }
    }
    Ok(())
}
