//! Logging (01-daemon.md §10, 12-operations.md §5): `tracing` into a size-rotating file
//! (`log_file`, rotated at `log_max_size`, keeping `log_max_files`), mirrored to stderr in the
//! foreground, as text or as one JSON object per line (`log_format`). Level, rotation and format
//! are reloadable on SIGHUP. Secrets never reach the log: key types have no `Debug`, and the
//! request logger redacts credentials.
//!
//! A request runs inside a `request` span carrying its `requestId`; the JSON format writes that
//! id on every line logged inside the request.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::runtime::config::Config;

/// The rotating file behind a lock that SIGHUP can swap; a `MakeWriter` for the fmt layer.
#[derive(Clone)]
struct LogFile(Arc<Mutex<FileRotate<AppendCount>>>);

/// One locked write to the log file.
struct LogGuard<'a>(std::sync::MutexGuard<'a, FileRotate<AppendCount>>);

impl std::io::Write for LogGuard<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = LogGuard<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        LogGuard(self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Reload handles for SIGHUP.
#[derive(Clone)]
pub(crate) struct Handle {
    filter: Option<reload::Handle<EnvFilter, Registry>>,
    file: LogFile,
    json: Arc<AtomicBool>,
}

/// The request id a `request` span carries, kept in the span's extensions.
struct RequestId(String);

/// Collects an event's (or a span's) fields: `message` apart, the rest as JSON values.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    rest: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match (field.name(), value) {
            ("message", Value::String(m)) => self.message = Some(m),
            (name, value) => {
                self.rest.insert(name.to_string(), value);
            }
        }
    }
}

/// `log_format = "json"`: one object per line — `timestamp` (RFC 3339 UTC), `level`, `target`,
/// `message`, `requestId` inside a request, and the event's own fields.
struct JsonLayer {
    file: LogFile,
    stderr: bool,
    on: Arc<AtomicBool>,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for JsonLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        if let (Some(Value::String(rid)), Some(span)) = (f.rest.remove("requestId"), ctx.span(id)) {
            span.extensions_mut().insert(RequestId(rid));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        line.insert("message".into(), f.message.unwrap_or_default().into());
        let request = ctx.event_scope(event).and_then(|scope| {
            scope.from_root().find_map(|span| span.extensions().get::<RequestId>().map(|r| r.0.clone()))
        });
        if let Some(rid) = request {
            line.insert("requestId".into(), rid.into());
        }
        for (k, v) in f.rest {
            line.entry(k).or_insert(v);
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let _ = self.file.0.lock().unwrap_or_else(|p| p.into_inner()).write_all(text.as_bytes());
        if self.stderr {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }
}

fn rotate(config: &Config) -> FileRotate<AppendCount> {
    FileRotate::new(
        &config.daemon.log_file,
        AppendCount::new(config.daemon.log_max_files),
        ContentLimit::Bytes(config.daemon.log_max_size as usize),
        Compression::None,
        Some({
            let mut o = std::fs::OpenOptions::new();
            o.read(true).create(true).append(true);
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            o
        }),
    )
}

fn filter(config: &Config) -> EnvFilter {
    // Our own crates at the configured level; noisy dependencies one step quieter.
    EnvFilter::new(format!("warn,waiaas={0},waiaas_storage={0},waiaas_backends={0}", config.daemon.log_level.as_str()))
}

/// Installs the global subscriber. A second call in one process (tests) keeps the first one.
pub(crate) fn init(config: &Config, foreground: bool) -> Handle {
    if let Some(dir) = config.daemon.log_file.parent() {
        let _ = waiaas_backends::fsutil::create_private_dir(dir);
    }
    let file = LogFile(Arc::new(Mutex::new(rotate(config))));
    let json = Arc::new(AtomicBool::new(config.daemon.log_json));
    let (filter_layer, handle) = reload::Layer::new(filter(config));
    // The text layers stand down while JSON is on (and the JSON layer while it is off), so a
    // SIGHUP can switch formats by flipping one flag.
    let text = |on: &Arc<AtomicBool>| {
        let on = on.clone();
        filter_fn(move |_| !on.load(Ordering::Relaxed))
    };
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_target(false)
        .with_writer(file.clone())
        .with_filter(text(&json));
    let stderr_layer = foreground.then(|| {
        tracing_subscriber::fmt::layer().with_target(false).with_writer(std::io::stderr).with_filter(text(&json))
    });
    let json_layer = JsonLayer { file: file.clone(), stderr: foreground, on: json.clone() };
    let installed = tracing_subscriber::registry()
        .with(filter_layer)
        .with(file_layer)
        .with(stderr_layer)
        .with(json_layer)
        .try_init()
        .is_ok();
    Handle { filter: installed.then_some(handle), file, json }
}

impl Handle {
    /// Applies `log_level`, `log_format`, `log_max_size` and `log_max_files` from a reloaded
    /// config.
    pub(crate) fn reconfigure(&self, config: &Config) {
        if let Some(h) = &self.filter {
            let _ = h.reload(filter(config));
        }
        self.json.store(config.daemon.log_json, Ordering::Relaxed);
        *self.file.0.lock().unwrap_or_else(|p| p.into_inner()) = rotate(config);
    }
}
