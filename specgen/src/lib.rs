//! Docker's defaults for the OCI runtime spec, shared by the engine (which
//! builds specs) and the runtime's tests (which run them).

pub mod defaults;
pub mod seccomp;
