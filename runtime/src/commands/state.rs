//! `state`: the runtime-spec state of a container, as JSON.

use crate::cli::{GlobalOpts, IdArg};
use crate::container::Container;
use crate::error::Result;

pub fn run(g: &GlobalOpts, a: &IdArg) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    let v = c.oci_state(c.status());
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    Ok(0)
}
