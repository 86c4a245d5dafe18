//! Chain errors and their retry categories (05-chains.md §1.5).

use std::fmt;

use crate::error::ErrorCode;

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
}

impl ChainError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> ChainError {
        ChainError { code, message: message.into() }
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

    /// Classifies a transport-level failure: delivery failures are `NETWORK_ERROR`, everything
    /// else the node answered is `RPC_ERROR`.
    pub(crate) fn transport(message: impl fmt::Display, delivered: bool) -> ChainError {
        let code = if delivered { ErrorCode::RpcError } else { ErrorCode::NetworkError };
        ChainError::new(code, message.to_string())
    }
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl From<ChainError> for crate::error::ApiError {
    fn from(e: ChainError) -> Self {
        let category = e.category();
        crate::error::ApiError::new(e.code, e.message).detail("category", category.as_str())
    }
}
