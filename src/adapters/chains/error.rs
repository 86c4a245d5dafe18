//! Chain errors and their retry categories (05-chains.md §1.5).
//!
//! A chain error carries a stable [`ErrorCode`] from the shared vocabulary; its category
//! decides the pipeline's retries, and the API shows it as `details.category`.

use std::fmt;

use serde_json::{Map, Value};

use crate::base::error::{Coded, ErrorCode};

/// How the pipeline recovers from an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    /// Never retried.
    Permanent,
    /// The failing step is retried with backoff.
    Transient,
    /// Start again from the build (once).
    Stale,
}

impl Category {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Category::Permanent => "PERMANENT",
            Category::Transient => "TRANSIENT",
            Category::Stale => "STALE",
        }
    }
}

/// A chain failure with its stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    /// Extra fields for the API error's `details` (e.g. simulation `logs`).
    pub(crate) details: Option<serde_json::Value>,
}

impl ChainError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> ChainError {
        ChainError { code, message: message.into(), details: None }
    }

    pub(crate) fn with_details(mut self, details: serde_json::Value) -> ChainError {
        self.details = Some(details);
        self
    }

    /// The category the spec assigns to the code.
    pub(crate) fn category(&self) -> Category {
        use ErrorCode::*;
        match self.code {
            RpcError | NetworkError | EvmGasTooLow => Category::Transient,
            TransactionExpired
            | SolanaBlockhashExpired
            | SolanaBlockhashStale
            | SolanaInsufficientFee
            | EvmNonceTooLow => Category::Stale,
            _ => Category::Permanent,
        }
    }
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ChainError {}

impl Coded for ChainError {
    fn code(&self) -> ErrorCode {
        self.code
    }

    fn details(&self) -> Map<String, Value> {
        let mut d = Map::new();
        // Registry errors (unsupported or unavailable adapter) are not retry-categorised.
        if !matches!(self.code, ErrorCode::ChainNotSupported | ErrorCode::AdapterNotAvailable) {
            d.insert("category".into(), Value::String(self.category().as_str().into()));
        }
        if let Some(Value::Object(extra)) = &self.details {
            d.extend(extra.clone());
        }
        d
    }
}
