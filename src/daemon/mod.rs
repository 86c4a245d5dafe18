//! The running daemon: the start sequence (01-daemon.md §6), the instance lock, logging, signals
//! and the graceful shutdown. It assembles the application (`crate::app::App`) and starts the
//! HTTP server through its one entry, `http::server`; it may call every layer but `cli`, which
//! calls it.

pub(crate) mod lock;
pub(crate) mod logging;
mod start;

pub(crate) use start::{StartError, StartOptions, serve, start};
