//! The running daemon: the start sequence (01-daemon.md §6), the instance lock, logging, the
//! background workers and the graceful shutdown. This is where the application is assembled
//! (`crate::app::App`) and the HTTP server started through its one entry, `http::server`.

pub(crate) mod lock;
pub(crate) mod logging;
mod start;

pub(crate) use start::{StartError, StartOptions, serve, start};
