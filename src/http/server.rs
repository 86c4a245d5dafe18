//! The listening socket and connection handling.
//!
//! warp's own runner closes idle keep-alive connections the moment shutdown starts. The spec's
//! shutdown (01-daemon.md §9.1) is finer: stop accepting, keep open connections so a new request
//! on them gets 503 `SERVICE_SHUTTING_DOWN` with `Connection: close`, drain in-flight requests,
//! and only then close what remains. So this module runs its own accept loop (hyper-util's
//! graceful watcher over HTTP/1 connections) and hosts the warp filter as the service.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::TryStreamExt;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use warp::Filter;

use super::body::Body;
use super::{Incoming, State, handle};
use crate::app::App;

/// The peer address, carried to the warp filter as a request extension.
#[derive(Debug, Clone, Copy)]
struct Remote(SocketAddr);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    StopAccepting,
    CloseConnections,
}

/// A running server.
pub(crate) struct Server {
    phase: watch::Sender<Phase>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Shutdown step 2: close the listener; open connections keep being served.
    pub(crate) fn stop_accepting(&self) {
        let _ = self.phase.send(Phase::StopAccepting);
    }

    /// Shutdown step 6: ask open connections to close after their current response, wait up to
    /// 500 ms for them, then return.
    pub(crate) async fn close_connections(self) {
        let _ = self.phase.send(Phase::CloseConnections);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

fn filter(
    state: Arc<State>,
    body_timeout: Duration,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    warp::any()
        .and(warp::ext::optional::<Remote>())
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |remote: Option<Remote>,
                  method: warp::http::Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers: warp::http::HeaderMap,
                  stream| {
                let state = state.clone();
                let content_length =
                    headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
                let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
                let framed = content_length.is_some_and(|n: u64| n > 0) || headers.contains_key("transfer-encoding");
                let stream = boxed_bytes(stream);
                let inc = Incoming {
                    remote: remote.map(|r| r.0),
                    method: method.as_str().to_string(),
                    path: path.as_str().to_string(),
                    query,
                    headers,
                    body: Body::new(stream, content_length, content_type, framed, body_timeout),
                };
                handle(state, inc)
            },
        )
        .recover(|_| async { Ok::<_, Infallible>(warp::reply::Response::new(Vec::<u8>::new().into())) })
        .unify()
}

fn boxed_bytes<S, B>(
    stream: S,
) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, warp::Error>> + Send>>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    Box::pin(stream.map_ok(|mut b| {
        let n = b.remaining();
        b.copy_to_bytes(n)
    }))
}

/// How many client connections may be open, in total and per client IP (issue #22). A
/// connection is counted from accept until hyper is done with it; one beyond either cap is
/// answered at once with 503 `TOO_MANY_CONNECTIONS` and closed, so a flood from one address
/// cannot take the file descriptors everybody else needs.
///
/// The per-IP count is by socket peer, not `X-Forwarded-For`: it is read before any request.
struct Limits {
    total: usize,
    per_ip: usize,
    open: Arc<Mutex<Open>>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; counted until dropped.
struct Slot {
    ip: IpAddr,
    open: Arc<Mutex<Open>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total -= 1;
        if let Some(n) = open.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.by_ip.remove(&self.ip);
            }
        }
    }
}

/// File descriptors kept back from connections: the database, logs, RPC and notification
/// clients, the metrics listener.
const FD_RESERVE: u64 = 256;

impl Limits {
    fn new(d: &crate::runtime::config::DaemonConfig) -> Limits {
        let fds = crate::base::rlimit::raise_nofile();
        let total = (d.max_connections as u64).min(fds.saturating_sub(FD_RESERVE).max(16)) as usize;
        if total < d.max_connections {
            tracing::warn!(
                "[daemon].max_connections = {} is above what the file-descriptor limit allows; using {total}",
                d.max_connections
            );
        }
        Limits { total, per_ip: d.max_connections_per_ip.min(total), open: Arc::default() }
    }

    fn admit(&self, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mine = open.by_ip.get(&ip).copied().unwrap_or(0);
        if open.total >= self.total || mine >= self.per_ip {
            return None;
        }
        open.total += 1;
        *open.by_ip.entry(ip).or_default() += 1;
        Some(Slot { ip, open: self.open.clone() })
    }
}

/// Answers a connection over the caps with 503 `TOO_MANY_CONNECTIONS` without reading its
/// request, then closes it. The write side is shut first and what the client already sent is
/// drained for a moment, so the close does not become a reset that loses the answer.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    crate::runtime::metrics::get().refused_connection();
    let e = crate::http::ApiError::new(
        crate::base::error::ErrorCode::TooManyConnections,
        "Too many open connections; try again shortly",
    );
    let body = super::Out::error(&e, &super::layers::new_request_id()).body;
    let retry = super::status::default_retry_after(e.code).unwrap_or(5);
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: {retry}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let answer = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

/// Binds `host:port` (IPv4 only).
pub(crate) async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind((host, port)).await
}

/// Serves `listener` until [`Server::stop_accepting`] / [`Server::close_connections`]. The one
/// way the daemon starts the HTTP layer.
pub(crate) fn spawn(app: Arc<App>, listener: TcpListener) -> Server {
    let (tx, mut rx) = watch::channel(Phase::Serving);
    let config = app.settings.get();
    let limits = Limits::new(&config.daemon);
    let header_timeout = Duration::from_secs(config.daemon.header_timeout);
    let svc_filter =
        filter(Arc::new(State { app, limiter: Default::default() }), Duration::from_secs(config.daemon.body_timeout));
    let task = tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, addr)) => {
                        let Some(slot) = limits.admit(addr.ip()) else {
                            tokio::spawn(refuse(stream));
                            continue;
                        };
                        let warp_svc = warp::service(svc_filter.clone());
                        let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                            req.extensions_mut().insert(Remote(addr));
                            let mut s = warp_svc.clone();
                            async move { tower_service::Service::call(&mut s, req).await }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(header_timeout)
                            .serve_connection(TokioIo::new(stream), svc);
                        let watched = graceful.watch(conn);
                        tokio::spawn(async move {
                            if let Err(e) = watched.await {
                                tracing::debug!("connection from {addr} ended: {e}");
                            }
                            drop(slot);
                        });
                    }
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                changed = rx.changed() => {
                    if changed.is_err() || *rx.borrow() != Phase::Serving {
                        break;
                    }
                }
            }
        }
        drop(listener);
        while *rx.borrow() != Phase::CloseConnections {
            if rx.changed().await.is_err() {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), graceful.shutdown()).await;
    });
    Server { phase: tx, task }
}

/// The metrics listener (12-operations.md §3): `GET /metrics` on its own port, no auth — it
/// exposes aggregates only — and nothing else. It runs until the process ends.
pub(crate) fn spawn_metrics(app: Arc<App>, listener: TcpListener) -> tokio::task::JoinHandle<()> {
    let scrape = warp::path("metrics").and(warp::path::end()).and(warp::get()).then(move || {
        let app = app.clone();
        async move {
            let body = app.metrics_text().await;
            warp::http::Response::builder()
                .header("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
                .body(body)
                .unwrap_or_default()
        }
    });
    let not_found = warp::any().map(|| {
        warp::http::Response::builder()
            .status(warp::http::StatusCode::NOT_FOUND)
            .body(String::from("not found\n"))
            .unwrap_or_default()
    });
    let routes = scrape.or(not_found).unify();
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let svc = warp::service(routes.clone());
                    let conn = hyper::server::conn::http1::Builder::new().serve_connection(
                        TokioIo::new(stream),
                        hyper::service::service_fn(move |req| {
                            let mut s = svc.clone();
                            async move { tower_service::Service::call(&mut s, req).await }
                        }),
                    );
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
                Err(e) => {
                    tracing::warn!("metrics accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    })
}
