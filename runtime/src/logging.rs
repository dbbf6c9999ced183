//! Logging in runc's formats, so that containerd's shim and ours can read our
//! `--log` file the way they read runc's: one JSON object per line with `level`,
//! `msg` and `time` (or logrus' `time=… level=… msg=…` text form).

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

enum Sink {
    File(Mutex<File>),
    Stderr,
}

struct RuncLayer {
    sink: Sink,
    format: LogFormat,
    max: Level,
}

/// Sets up the global subscriber. Without `--log`, messages go to stderr.
pub fn init(path: Option<&Path>, format: LogFormat, debug: bool) -> std::io::Result<()> {
    let sink = match path {
        Some(p) => Sink::File(Mutex::new(
            OpenOptions::new().create(true).append(true).open(p)?,
        )),
        None => Sink::Stderr,
    };
    let max = if debug { Level::DEBUG } else { Level::WARN };
    let subscriber = tracing_subscriber::registry().with(RuncLayer { sink, format, max });
    // Only fails if a subscriber is already set, which would be our own earlier call.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
}

/// Writes one error line directly, for the final error of a command.
pub fn error(msg: &str) {
    tracing::error!("{msg}");
}

#[derive(Default)]
struct Fields {
    msg: String,
    extra: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
        } else {
            let _ = write!(self.extra, " {}={:?}", field.name(), value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.msg, "{value:?}");
        } else {
            let _ = write!(self.extra, " {}={:?}", field.name(), value);
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl<S: Subscriber> Layer<S> for RuncLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        // Libraries' warnings (libcgroups lists every controller this host lacks)
        // are noise for a runtime's caller; show them only with --debug.
        let max = if metadata.target().starts_with("berth") || self.max == Level::DEBUG {
            self.max
        } else {
            Level::ERROR
        };
        *metadata.level() <= max
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let msg = format!("{}{}", fields.msg, fields.extra);
        let level = level_name(event.metadata().level());
        let time = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
        let line = match self.format {
            LogFormat::Json => {
                let obj = serde_json::json!({ "level": level, "msg": msg, "time": time });
                format!("{obj}\n")
            }
            LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}\n"),
        };
        match &self.sink {
            Sink::File(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
            Sink::Stderr => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}
