//! The error value handlers return: a stable code plus this occurrence's message, details and
//! extra headers. Any domain error ([`Coded`]) converts into it with `?`; internal errors are
//! logged here and reach the client only as a generic 500.

use serde_json::{Map, Value};

use crate::base::error::{Coded, ErrorCode};
use crate::base::validation::Invalid;

/// An API error.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    // Rarely set; boxed so `Result<_, ApiError>` stays small.
    extra: Option<Box<Extra>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Extra {
    details: Option<Map<String, Value>>,
    hint: Option<String>,
    retry_after: Option<u64>,
    headers: Vec<(&'static str, String)>,
}

impl<E: Coded> From<E> for ApiError {
    fn from(e: E) -> ApiError {
        let code = e.code();
        if code == ErrorCode::InternalError {
            tracing::error!("internal error: {e}");
            return ApiError::internal();
        }
        let mut api = ApiError::new(code, e.to_string());
        let details = e.details();
        if !details.is_empty() {
            api.extra().details = Some(details);
        }
        if let Some(secs) = e.retry_after() {
            api = api.retry_after(secs);
        }
        api
    }
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), extra: None }
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Adds one `details` field.
    pub(crate) fn detail(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.extra().details.get_or_insert_with(Map::new).insert(key.to_string(), value.into());
        self
    }

    /// Sets `Retry-After` (seconds).
    pub(crate) fn retry_after(mut self, secs: u64) -> ApiError {
        self.extra().retry_after = Some(secs);
        self
    }

    /// Adds a response header (e.g. `Allow` on 405).
    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> ApiError {
        self.extra().headers.push((name, value.into()));
        self
    }

    pub(crate) fn details(&self) -> Option<&Map<String, Value>> {
        self.extra.as_ref().and_then(|e| e.details.as_ref())
    }

    /// This occurrence's hint, else the code's default hint.
    pub(crate) fn hint_text(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.hint.as_deref()).or(super::status::hint(self.code))
    }

    pub(crate) fn retry_after_secs(&self) -> Option<u64> {
        self.extra.as_ref().and_then(|e| e.retry_after)
    }

    pub(crate) fn headers(&self) -> &[(&'static str, String)] {
        self.extra.as_ref().map(|e| e.headers.as_slice()).unwrap_or(&[])
    }

    /// 500 with no internals in the body; the cause is logged by the caller with the request id.
    pub(crate) fn internal() -> ApiError {
        ApiError::new(ErrorCode::InternalError, "Internal server error")
    }

    /// A single-issue validation error (query strings, path parameters).
    pub(crate) fn validation(path: &str, code: &str, message: impl Into<String>) -> ApiError {
        Invalid::field(path, code, message).into()
    }
}
