//! Request bodies: the 262144-byte limit and strict JSON parsing (01-daemon.md §8.1 layer 11).
//!
//! Bodies are read lazily, after auth, so an unauthenticated caller cannot make the daemon
//! buffer anything. Parsing reports every failure as 400 `VALIDATION_ERROR` with
//! `details.issues[] = {path, code, message}`; unknown fields are rejected by the request types
//! (`deny_unknown_fields`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::base::error::ErrorCode;
use crate::base::validation::{body_issue, parse_json};

/// Largest accepted body.
pub(crate) const MAX_BODY: u64 = 262_144;

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, warp::Error>> + Send>>;

/// A request body that has not been read yet.
pub(crate) struct Body {
    // Behind a mutex only so that `Body` (and `&Req`) is `Sync`: handlers hold `&Req` across
    // awaits, and the stream is taken out once, before any await.
    stream: std::sync::Mutex<Option<ByteStream>>,
    content_length: Option<u64>,
    content_type: Option<String>,
    /// Set once the body has been read to its end (or there is none).
    done: Arc<AtomicBool>,
    /// How long the whole body may take to arrive once it is read (`[daemon].body_timeout`).
    timeout: Duration,
}

/// Whether a request's body was read to its end, readable after the request itself is gone.
///
/// A response sent before the body was read leaves the rest of it on the connection, so the
/// connection cannot carry another request: hyper closes it after the response. Saying so with
/// `Connection: close` lets every client know before it reuses the socket (issue #22: Python's
/// `http.client` otherwise writes its next request into a closed socket).
#[derive(Clone)]
pub(crate) struct BodyRead(Arc<AtomicBool>);

impl BodyRead {
    /// True when the body was not read to its end.
    pub(crate) fn left_unread(&self) -> bool {
        !self.0.load(Ordering::Acquire)
    }
}

/// The rest of the body is never read: the answer closes the connection ([`BodyRead`]).
pub(crate) fn too_large() -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, format!("Request body exceeds {MAX_BODY} bytes"))
}

fn issue(path: &str, code: &str, message: impl Into<String>) -> ApiError {
    body_issue(path, code, message).into()
}

impl Body {
    /// `framed`: the request announced a body (`Content-Length` above 0, or `Transfer-Encoding`).
    pub(crate) fn new(
        stream: ByteStream,
        content_length: Option<u64>,
        content_type: Option<String>,
        framed: bool,
        timeout: Duration,
    ) -> Body {
        let done = Arc::new(AtomicBool::new(!framed));
        Body { stream: std::sync::Mutex::new(Some(stream)), content_length, content_type, done, timeout }
    }

    /// A handle that tells, after the response, whether this body was read to its end.
    pub(crate) fn read_state(&self) -> BodyRead {
        BodyRead(self.done.clone())
    }

    /// The `Content-Length` the client declared.
    pub(crate) fn declared_len(&self) -> Option<u64> {
        self.content_length
    }

    /// Reads the whole body, refusing more than [`MAX_BODY`] bytes or a body that takes longer
    /// than its timeout to arrive (408 `REQUEST_TIMEOUT`: a slow sender does not hold a handler).
    pub(crate) async fn bytes(&mut self) -> Result<Bytes, ApiError> {
        if self.content_length.is_some_and(|n| n > MAX_BODY) {
            return Err(too_large());
        }
        let taken = self.stream.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut stream) = taken else { return Ok(Bytes::new()) };
        let read = async {
            let mut buf = BytesMut::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| issue("", "invalid_body", format!("cannot read the body: {e}")))?;
                if (buf.len() + chunk.len()) as u64 > MAX_BODY {
                    return Err(too_large());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(buf.freeze())
        };
        let bytes = tokio::time::timeout(self.timeout, read).await.map_err(|_| {
            ApiError::new(
                ErrorCode::RequestTimeout,
                format!("The request body did not arrive within {} s", self.timeout.as_secs()),
            )
        })??;
        self.done.store(true, Ordering::Release);
        Ok(bytes)
    }

    /// Reads and parses a JSON body into `T`. An empty body parses as `{}` (routes whose body is
    /// optional); a non-empty body must be `application/json`.
    pub(crate) async fn json<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let bytes = self.json_bytes().await?;
        Ok(parse_json(if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes })?)
    }

    /// The raw bytes of a JSON body (content type checked), for handlers that parse in stages.
    pub(crate) async fn json_bytes(&mut self) -> Result<Bytes, ApiError> {
        let bytes = self.bytes().await?;
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            let ct = self.content_type.as_deref().unwrap_or("");
            let mime = ct.split(';').next().unwrap_or("").trim();
            if !mime.eq_ignore_ascii_case("application/json") {
                return Err(issue(
                    "",
                    "invalid_content_type",
                    format!("Content-Type must be application/json, got {ct:?}"),
                ));
            }
        }
        Ok(bytes)
    }
}
