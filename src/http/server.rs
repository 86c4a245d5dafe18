//! The listening socket and connection handling.
//!
//! warp's own runner closes idle keep-alive connections the moment shutdown starts. The spec's
//! shutdown (01-daemon.md §9.1) is finer: stop accepting, keep open connections so a new request
//! on them gets 503 `SERVICE_SHUTTING_DOWN` with `Connection: close`, drain in-flight requests,
//! and only then close what remains. So this module runs its own accept loop (hyper-util's
//! graceful watcher over HTTP/1 connections) and hosts the warp filter as the service.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
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

fn filter(state: Arc<State>) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
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
                    body: Body::new(stream, content_length, content_type, framed),
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

/// Binds `host:port` (IPv4 only).
pub(crate) async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind((host, port)).await
}

/// Serves `listener` until [`Server::stop_accepting`] / [`Server::close_connections`]. The one
/// way the daemon starts the HTTP layer.
pub(crate) fn spawn(app: Arc<App>, listener: TcpListener) -> Server {
    let (tx, mut rx) = watch::channel(Phase::Serving);
    let svc_filter = filter(Arc::new(State { app, limiter: Default::default() }));
    let task = tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, addr)) => {
                        let warp_svc = warp::service(svc_filter.clone());
                        let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                            req.extensions_mut().insert(Remote(addr));
                            let mut s = warp_svc.clone();
                            async move { tower_service::Service::call(&mut s, req).await }
                        });
                        let conn = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), svc);
                        let watched = graceful.watch(conn);
                        tokio::spawn(async move {
                            if let Err(e) = watched.await {
                                tracing::debug!("connection from {addr} ended: {e}");
                            }
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
