//! A managed plugin's record as Docker's API shows it (`types.Plugin`):
//! the config its author wrote in `config.json`, and the settings a user
//! changed with `docker plugin set`.
//!
//! Plugin authors write `config.json` in any letter case (`entrypoint`,
//! `propagatedMount`), as Go's JSON decoder matches field names without
//! regard to case; the keys are folded to lower case before decoding, and
//! the record is written back with Docker's names.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `docker plugin inspect`: the whole record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plugin {
    #[serde(rename(serialize = "Config", deserialize = "config"))]
    pub config: Config,
    #[serde(rename(serialize = "Enabled", deserialize = "enabled"), default)]
    pub enabled: bool,
    #[serde(rename(serialize = "Id", deserialize = "id"))]
    pub id: String,
    #[serde(rename(serialize = "Name", deserialize = "name"))]
    pub name: String,
    #[serde(
        rename(serialize = "PluginReference", deserialize = "pluginreference"),
        default
    )]
    pub reference: String,
    #[serde(rename(serialize = "Settings", deserialize = "settings"))]
    pub settings: Settings,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Config {
    #[serde(rename(serialize = "Args", deserialize = "args"), default)]
    pub args: Args,
    #[serde(
        rename(serialize = "Description", deserialize = "description"),
        default
    )]
    pub description: String,
    #[serde(
        rename(serialize = "DockerVersion", deserialize = "dockerversion"),
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_version: String,
    #[serde(
        rename(serialize = "Documentation", deserialize = "documentation"),
        default
    )]
    pub documentation: String,
    #[serde(rename(serialize = "Entrypoint", deserialize = "entrypoint"), default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename(serialize = "Env", deserialize = "env"), default)]
    pub env: Option<Vec<Env>>,
    #[serde(rename(serialize = "Interface", deserialize = "interface"), default)]
    pub interface: Interface,
    #[serde(rename(serialize = "IpcHost", deserialize = "ipchost"), default)]
    pub ipc_host: bool,
    #[serde(rename(serialize = "Linux", deserialize = "linux"), default)]
    pub linux: Linux,
    #[serde(rename(serialize = "Mounts", deserialize = "mounts"), default)]
    pub mounts: Option<Vec<Mount>>,
    #[serde(rename(serialize = "Network", deserialize = "network"), default)]
    pub network: Network,
    #[serde(rename(serialize = "PidHost", deserialize = "pidhost"), default)]
    pub pid_host: bool,
    #[serde(
        rename(serialize = "PropagatedMount", deserialize = "propagatedmount"),
        default
    )]
    pub propagated_mount: String,
    #[serde(rename(serialize = "User", deserialize = "user"), default)]
    pub user: User,
    #[serde(rename(serialize = "WorkDir", deserialize = "workdir"), default)]
    pub work_dir: String,
    #[serde(
        rename(serialize = "rootfs", deserialize = "rootfs"),
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rootfs: Option<RootFs>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Args {
    #[serde(
        rename(serialize = "Description", deserialize = "description"),
        default
    )]
    pub description: String,
    #[serde(rename(serialize = "Name", deserialize = "name"), default)]
    pub name: String,
    #[serde(rename(serialize = "Settable", deserialize = "settable"), default)]
    pub settable: Option<Vec<String>>,
    #[serde(rename(serialize = "Value", deserialize = "value"), default)]
    pub value: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Env {
    #[serde(
        rename(serialize = "Description", deserialize = "description"),
        default
    )]
    pub description: String,
    #[serde(rename(serialize = "Name", deserialize = "name"), default)]
    pub name: String,
    #[serde(rename(serialize = "Settable", deserialize = "settable"), default)]
    pub settable: Option<Vec<String>>,
    #[serde(rename(serialize = "Value", deserialize = "value"), default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Interface {
    #[serde(
        rename(serialize = "ProtocolScheme", deserialize = "protocolscheme"),
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub protocol_scheme: String,
    #[serde(rename(serialize = "Socket", deserialize = "socket"), default)]
    pub socket: String,
    /// `prefix.capability/version`, e.g. `docker.volumedriver/1.0`.
    #[serde(rename(serialize = "Types", deserialize = "types"), default)]
    pub types: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Linux {
    #[serde(
        rename(serialize = "AllowAllDevices", deserialize = "allowalldevices"),
        default
    )]
    pub allow_all_devices: bool,
    #[serde(
        rename(serialize = "Capabilities", deserialize = "capabilities"),
        default
    )]
    pub capabilities: Option<Vec<String>>,
    #[serde(rename(serialize = "Devices", deserialize = "devices"), default)]
    pub devices: Option<Vec<Device>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Device {
    #[serde(
        rename(serialize = "Description", deserialize = "description"),
        default
    )]
    pub description: String,
    #[serde(rename(serialize = "Name", deserialize = "name"), default)]
    pub name: String,
    #[serde(rename(serialize = "Path", deserialize = "path"), default)]
    pub path: Option<String>,
    #[serde(rename(serialize = "Settable", deserialize = "settable"), default)]
    pub settable: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Mount {
    #[serde(
        rename(serialize = "Description", deserialize = "description"),
        default
    )]
    pub description: String,
    #[serde(
        rename(serialize = "Destination", deserialize = "destination"),
        default
    )]
    pub destination: String,
    #[serde(rename(serialize = "Name", deserialize = "name"), default)]
    pub name: String,
    #[serde(rename(serialize = "Options", deserialize = "options"), default)]
    pub options: Option<Vec<String>>,
    #[serde(rename(serialize = "Settable", deserialize = "settable"), default)]
    pub settable: Option<Vec<String>>,
    #[serde(rename(serialize = "Source", deserialize = "source"), default)]
    pub source: Option<String>,
    #[serde(rename(serialize = "Type", deserialize = "type"), default)]
    pub typ: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Network {
    #[serde(rename(serialize = "Type", deserialize = "type"), default)]
    pub typ: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct User {
    #[serde(
        rename(serialize = "UID", deserialize = "uid"),
        default,
        skip_serializing_if = "is_zero"
    )]
    pub uid: u32,
    #[serde(
        rename(serialize = "GID", deserialize = "gid"),
        default,
        skip_serializing_if = "is_zero"
    )]
    pub gid: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RootFs {
    #[serde(rename = "diff_ids", default)]
    pub diff_ids: Vec<String>,
    #[serde(rename = "type", default)]
    pub typ: String,
}

/// What `docker plugin set` changes; the config's values until then.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Settings {
    #[serde(rename(serialize = "Args", deserialize = "args"), default)]
    pub args: Vec<String>,
    #[serde(rename(serialize = "Devices", deserialize = "devices"), default)]
    pub devices: Vec<Device>,
    #[serde(rename(serialize = "Env", deserialize = "env"), default)]
    pub env: Vec<String>,
    #[serde(rename(serialize = "Mounts", deserialize = "mounts"), default)]
    pub mounts: Vec<Mount>,
}

/// One capability of `Interface.Types`.
#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceType {
    pub prefix: String,
    pub capability: String,
    pub version: String,
}

impl InterfaceType {
    pub fn parse(s: &str) -> Result<InterfaceType, String> {
        let bad = || format!("{s:?} is not a plugin interface type");
        let (prefix, rest) = s.split_once('.').ok_or_else(bad)?;
        let (capability, version) = rest.split_once('/').ok_or_else(bad)?;
        Ok(InterfaceType {
            prefix: prefix.to_string(),
            capability: capability.to_string(),
            version: version.to_string(),
        })
    }
}

/// Folds every object key to lower case, as Go's decoder matches them.
fn fold_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), fold_keys(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(fold_keys).collect()),
        other => other,
    }
}

impl Config {
    /// A plugin's `config.json` as its author wrote it.
    pub fn parse(raw: &[u8]) -> Result<Config, String> {
        let v: Value = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
        if !v.is_object() {
            return Err("the config is not a JSON object".into());
        }
        let c: Config = serde_json::from_value(fold_keys(v)).map_err(|e| e.to_string())?;
        for t in c.interface.types.iter().flatten() {
            InterfaceType::parse(t)?;
        }
        // Joined to the plugin's socket directory on the host (where the
        // engine removes a stale one): a file name, never a path.
        let s = &c.interface.socket;
        if s.contains(['/', '\0']) || s == "." || s == ".." {
            return Err(format!(
                "the interface socket {s:?} is not a file name in /run/docker/plugins"
            ));
        }
        Ok(c)
    }

    pub fn types(&self) -> Vec<InterfaceType> {
        self.interface
            .types
            .iter()
            .flatten()
            .filter_map(|t| InterfaceType::parse(t).ok())
            .collect()
    }
}

impl Plugin {
    /// A record read back from the store (written with Docker's names).
    pub fn load(raw: &[u8]) -> Result<Plugin, String> {
        let v: Value = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
        serde_json::from_value(fold_keys(v)).map_err(|e| e.to_string())
    }

    /// The settings a new plugin starts with: the config's values.
    pub fn initial_settings(c: &Config) -> Settings {
        Settings {
            args: c.args.value.clone().unwrap_or_default(),
            devices: c.linux.devices.clone().unwrap_or_default(),
            env: c
                .env
                .iter()
                .flatten()
                .filter_map(|e| e.value.as_ref().map(|v| format!("{}={v}", e.name)))
                .collect(),
            mounts: c.mounts.clone().unwrap_or_default(),
        }
    }

    /// `docker plugin set NAME[.FIELD]=VALUE …`, in dockerd's words; all or
    /// nothing (the record is only changed when every setting applies).
    pub fn set(&mut self, args: &[String]) -> Result<(), String> {
        if self.enabled {
            return Err("cannot set on an active plugin, disable plugin before setting".into());
        }
        let mut next = self.clone();
        for raw in args {
            let mut s = Settable::parse(raw)?;
            next.apply(&mut s)?;
        }
        *self = next;
        Ok(())
    }

    fn apply(&mut self, s: &mut Settable) -> Result<(), String> {
        let c = &mut self.config;
        if let Some(env) = c.env.iter().flatten().find(|e| e.name == s.name) {
            s.check(&["value"], env.settable.as_deref())?;
            let entry = format!("{}={}", s.name, s.value);
            let prefix = format!("{}=", s.name);
            match self
                .settings
                .env
                .iter_mut()
                .find(|e| e.starts_with(&prefix))
            {
                Some(e) => *e = entry,
                None => self.settings.env.push(entry),
            }
            return Ok(());
        }
        if let Some(i) = c.mounts.iter().flatten().position(|m| m.name == s.name) {
            let m = &c.mounts.as_ref().expect("found in it")[i];
            s.check(&["source"], m.settable.as_deref())?;
            if m.source.is_none() {
                return Err("Plugin config has no mount source".into());
            }
            for m in c.mounts.iter_mut().flatten() {
                if m.name == s.name {
                    m.source = Some(s.value.clone());
                }
            }
            for m in &mut self.settings.mounts {
                if m.name == s.name {
                    m.source = Some(s.value.clone());
                }
            }
            return Ok(());
        }
        if let Some(i) = c
            .linux
            .devices
            .iter()
            .flatten()
            .position(|d| d.name == s.name)
        {
            let d = &c.linux.devices.as_ref().expect("found in it")[i];
            s.check(&["path"], d.settable.as_deref())?;
            if d.path.is_none() {
                return Err("Plugin config has no device path".into());
            }
            for d in c.linux.devices.iter_mut().flatten() {
                if d.name == s.name {
                    d.path = Some(s.value.clone());
                }
            }
            for d in &mut self.settings.devices {
                if d.name == s.name {
                    d.path = Some(s.value.clone());
                }
            }
            return Ok(());
        }
        if !c.args.name.is_empty() && c.args.name == s.name {
            s.check(&["value"], c.args.settable.as_deref())?;
            self.settings.args = s.value.split(' ').map(String::from).collect();
            return Ok(());
        }
        Err(format!(
            "setting {:?} not found in the plugin configuration",
            s.name
        ))
    }
}

/// One `NAME[.FIELD]=VALUE` of a set.
#[derive(Debug, PartialEq)]
struct Settable {
    name: String,
    field: String,
    value: String,
}

impl Settable {
    fn parse(raw: &str) -> Result<Settable, String> {
        let (key, value) = raw.split_once('=').unwrap_or((raw, ""));
        if key.is_empty() {
            return Err("invalid format, must be <name>[.<field>][=<value>]".into());
        }
        let (name, field) = key.split_once('.').unwrap_or((key, ""));
        Ok(Settable {
            name: name.to_string(),
            field: field.to_string(),
            value: value.to_string(),
        })
    }

    fn pretty(&self) -> String {
        if self.field.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.name, self.field)
        }
    }

    /// Whether the config lets this field be set: a field left out means
    /// the only settable one.
    fn check(&mut self, allowed: &[&str], settable: Option<&[String]>) -> Result<(), String> {
        let settable = settable.unwrap_or_default();
        if self.field.is_empty() {
            match settable {
                [one] => self.field = one.clone(),
                [] => {}
                _ => return Err("multiple fields are settable, one must be specified".into()),
            }
        }
        if allowed.contains(&self.field.as_str()) && settable.contains(&self.field) {
            Ok(())
        } else {
            Err(format!("{:?} is not settable", self.pretty()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMMY: &str = r#"{
        "description": "Dummy",
        "entrypoint": ["/dummy"],
        "network": {"type": "host"},
        "interface": {"types": ["docker.volumedriver/1.0"], "socket": "dummy.sock"},
        "env": [{"name": "DEBUG", "settable": ["value"], "value": "0"}, {"name": "FIXED", "value": "x"}],
        "mounts": [{"name": "data", "source": "/var/x", "destination": "/x", "type": "bind",
                    "options": ["rbind"], "settable": ["source"]}],
        "Args": {"Name": "args", "Settable": ["value"], "Value": ["--a"]}
    }"#;

    fn plugin() -> Plugin {
        let config = Config::parse(DUMMY.as_bytes()).unwrap();
        Plugin {
            settings: Plugin::initial_settings(&config),
            config,
            enabled: false,
            id: "0".repeat(64),
            name: "dummy:latest".into(),
            reference: "dummy:latest".into(),
        }
    }

    #[test]
    fn config_keys_match_in_any_case_and_print_as_docker_names_them() {
        let p = plugin();
        assert_eq!(p.config.entrypoint, Some(vec!["/dummy".to_string()]));
        assert_eq!(p.config.args.value, Some(vec!["--a".to_string()]));
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["Config"]["Interface"]["Socket"], "dummy.sock");
        assert_eq!(v["Config"]["Linux"]["Capabilities"], Value::Null);
        assert_eq!(v["Config"]["User"], serde_json::json!({}));
        assert_eq!(
            v["Settings"]["Env"],
            serde_json::json!(["DEBUG=0", "FIXED=x"])
        );
        assert_eq!(v["Settings"]["Devices"], serde_json::json!([]));
        // What is written is read back the same.
        assert_eq!(Plugin::load(v.to_string().as_bytes()).unwrap(), p);
    }

    #[test]
    fn a_config_that_is_not_the_shape_is_refused() {
        assert!(Config::parse(b"{").is_err());
        assert!(Config::parse(b"[]").is_err());
        assert!(Config::parse(br#"{"entrypoint": "/x"}"#).is_err());
        assert!(Config::parse(br#"{"interface": {"types": ["volumedriver"]}}"#).is_err());
        for socket in ["../../etc/x", "/run/x.sock", ".."] {
            let raw = format!(r#"{{"interface": {{"socket": "{socket}"}}}}"#);
            assert!(Config::parse(raw.as_bytes()).is_err(), "{socket}");
        }
    }

    #[test]
    fn set_changes_what_the_config_lets_change_in_dockerds_words() {
        let mut p = plugin();
        p.set(&["DEBUG=1".into(), "args=x y".into(), "data=/srv".into()])
            .unwrap();
        assert_eq!(p.settings.env, vec!["DEBUG=1", "FIXED=x"]);
        assert_eq!(p.settings.args, vec!["x", "y"]);
        assert_eq!(p.settings.mounts[0].source.as_deref(), Some("/srv"));
        p.set(&["DEBUG.value=2".into(), "DEBUG".into()]).unwrap();
        assert_eq!(p.settings.env[0], "DEBUG=");
        let err = |p: &mut Plugin, a: &str| p.set(&[a.to_string()]).unwrap_err();
        assert_eq!(err(&mut p, "FIXED=1"), "\"FIXED\" is not settable");
        assert_eq!(
            err(&mut p, "data.destination=/y"),
            "\"data.destination\" is not settable"
        );
        assert_eq!(
            err(&mut p, "NOPE=1"),
            "setting \"NOPE\" not found in the plugin configuration"
        );
        assert_eq!(
            err(&mut p, "=1"),
            "invalid format, must be <name>[.<field>][=<value>]"
        );
        // All or nothing.
        let before = p.clone();
        assert!(p.set(&["DEBUG=9".into(), "NOPE=1".into()]).is_err());
        assert_eq!(p, before);
        p.enabled = true;
        assert_eq!(
            err(&mut p, "DEBUG=1"),
            "cannot set on an active plugin, disable plugin before setting"
        );
    }

    #[test]
    fn interface_types_are_prefix_capability_version() {
        let t = InterfaceType::parse("docker.volumedriver/1.0").unwrap();
        assert_eq!(t.capability, "volumedriver");
        assert_eq!(t.version, "1.0");
        assert!(InterfaceType::parse("docker/volumedriver").is_err());
    }
}
