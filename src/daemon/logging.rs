//! Logging (01-daemon.md §10): `tracing` into a size-rotating file (`log_file`, rotated at
//! `log_max_size`, keeping `log_max_files`), mirrored to stderr in the foreground. Level and
//! rotation are reloadable on SIGHUP. Secrets never reach the log: key types have no `Debug`,
//! and the request logger redacts credentials.

use std::sync::{Arc, Mutex};

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
    let (filter_layer, handle) = reload::Layer::new(filter(config));
    let file_layer = tracing_subscriber::fmt::layer().with_ansi(false).with_target(false).with_writer(file.clone());
    let stderr_layer =
        foreground.then(|| tracing_subscriber::fmt::layer().with_target(false).with_writer(std::io::stderr));
    let installed =
        tracing_subscriber::registry().with(filter_layer).with(file_layer).with(stderr_layer).try_init().is_ok();
    Handle { filter: installed.then_some(handle), file }
}

impl Handle {
    /// Applies `log_level`, `log_max_size` and `log_max_files` from a reloaded config.
    pub(crate) fn reconfigure(&self, config: &Config) {
        if let Some(h) = &self.filter {
            let _ = h.reload(filter(config));
        }
        *self.file.0.lock().unwrap_or_else(|p| p.into_inner()) = rotate(config);
    }
}
