//! Docker's authorization plugins (`authorization-plugins` in daemon.json,
//! `--authorization-plugin`): each is asked about every API call before
//! its handler runs (`AuthZPlugin.AuthZReq`) and about its answer after
//! (`AuthZPlugin.AuthZRes`); any one that does not allow refuses the call.
//! A plugin is a managed one with the `docker.authz/1.0` interface, enabled,
//! or a legacy one on the host that implements `authz` (see `api::authz`
//! for the calls themselves).

use std::sync::Arc;

use super::client::Addr;
use crate::daemon::{Daemon, Live};

/// What a legacy authorization plugin says it implements.
pub const IMPLEMENTS: &str = "authz";

/// Whether a managed plugin is an authorization plugin.
fn judges(p: &super::Plugin) -> bool {
    p.config.types().iter().any(|t| t.capability == IMPLEMENTS)
}

impl Daemon {
    /// Where the authorization plugin `name` answers, or why it cannot be
    /// asked (the call it was to judge is then refused).
    pub async fn authz_plugin(&self, name: &str) -> Result<Addr, String> {
        self.plugin_serving(name, IMPLEMENTS, IMPLEMENTS)
            .await
            .map(|(addr, _)| addr)
    }

    /// Whether each of `names` is an authorization plugin the engine can
    /// find (an enabled managed one, or a legacy one's socket or spec): a
    /// start or reload that names one it cannot find is refused, as
    /// dockerd refuses it, rather than refusing every call after (the call
    /// that would enable a disabled one too).
    pub fn check_authz_plugins(&self, names: &[String]) -> Result<(), String> {
        for name in names {
            if let Ok(e) = self.plugins.find(name) {
                let p = e.get();
                if !judges(&p) {
                    return Err(format!(
                        "authorization plugin {name}: plugin {:?} does not implement \"authz\"",
                        p.name
                    ));
                }
                if !p.enabled {
                    return Err(format!(
                        "authorization plugin {name}: plugin {:?} found but disabled",
                        p.name
                    ));
                }
                continue;
            }
            match self.plugins.legacy.locate(name) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(format!(
                        "authorization plugin {name}: plugin {name:?} not found (neither a managed plugin nor a socket or spec in the plugin directories)"
                    ));
                }
                Err(why) => return Err(format!("authorization plugin {name}: {why}")),
            }
        }
        Ok(())
    }

    /// Takes a plugin being disabled out of the authorization chain until
    /// the configuration is read again, as dockerd's disable does.
    pub fn drop_authz_plugin(&self, plugin_name: &str) {
        let live = self.live();
        let kept: Vec<String> = live
            .authorization_plugins
            .iter()
            .filter(|n| {
                self.plugins
                    .find(n)
                    .map_or(true, |e| e.get().name != plugin_name)
            })
            .cloned()
            .collect();
        if kept.len() != live.authorization_plugins.len() {
            let mut next: Live = (*live).clone();
            next.authorization_plugins = kept;
            self.set_live(Arc::new(next));
        }
    }
}
