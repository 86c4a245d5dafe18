//! Solana node errors as the spec's codes (05-chains.md §1.5, §3.11): delivery failures,
//! refusals of `sendTransaction`, and readable transaction errors.

use serde_json::Value;

use super::super::error::ChainError;
use crate::base::error::ErrorCode;

/// Maps a client error: delivery failures are NETWORK_ERROR, the rest RPC_ERROR.
pub(crate) fn map_client(e: solana_client::client_error::ClientError) -> ChainError {
    use solana_client::client_error::ClientErrorKind;
    match e.kind() {
        ClientErrorKind::Reqwest(r) if r.is_connect() => ChainError::new(ErrorCode::NetworkError, e.to_string()),
        _ => ChainError::new(ErrorCode::RpcError, e.to_string()),
    }
}

/// The text a submit error is matched against: the message, the preflight error and its logs.
pub(super) fn error_text(e: &solana_client::client_error::ClientError) -> String {
    use solana_client::client_error::ClientErrorKind;
    use solana_rpc_client_api::request::{RpcError, RpcResponseErrorData};
    match e.kind() {
        ClientErrorKind::RpcError(RpcError::RpcResponseError { message, data, .. }) => {
            let mut t = message.clone();
            if let RpcResponseErrorData::SendTransactionPreflightFailure(r) = data {
                if let Some(err) = &r.err {
                    t.push_str(&format!(" {err:?}"));
                }
                for l in r.logs.iter().flatten() {
                    t.push(' ');
                    t.push_str(l);
                }
            }
            t
        }
        ClientErrorKind::TransactionError(te) => format!("{te:?} {te}"),
        _ => e.to_string(),
    }
}

/// Maps a node's refusal of `sendTransaction` (05-chains.md §3.11); `None` = accepted.
pub(super) fn submit_code(text: &str, ours: bool) -> Option<ErrorCode> {
    let t = text.to_lowercase();
    Some(if t.contains("alreadyprocessed") || t.contains("already been processed") {
        if ours {
            return None;
        }
        ErrorCode::TransactionFailed
    } else if t.contains("blockhashnotfound")
        || t.contains("blockhash not found")
        || t.contains("block height exceeded")
    {
        ErrorCode::SolanaBlockhashExpired
    } else if t.contains("insufficientfeefortransaction") || t.contains("fee too low") {
        ErrorCode::SolanaInsufficientFee
    } else if t.contains("insufficientfunds") || t.contains("insufficient lamports") {
        ErrorCode::InsufficientBalance
    } else if t.contains("accountnotfound") {
        ErrorCode::InvalidAddress
    } else if t.contains("program failed") || t.contains("instructionerror") || t.contains("custom program error") {
        ErrorCode::SolanaProgramError
    } else {
        ErrorCode::TransactionFailed
    })
}

/// A readable form of a JSON transaction error (`{"InstructionError": [2, {"Custom": 1}]}` →
/// `Instruction 2: custom program error 0x1`).
pub(super) fn describe_tx_error(err: &Value) -> String {
    if let Some(ie) = err.get("InstructionError").and_then(Value::as_array) {
        let idx = ie.first().and_then(Value::as_u64).unwrap_or(0);
        let what = match ie.get(1) {
            Some(Value::Object(o)) if o.contains_key("Custom") => {
                format!("custom program error 0x{:x}", o["Custom"].as_u64().unwrap_or(0))
            }
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        return format!("InstructionError: Instruction {idx}: {what}");
    }
    match err {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn submit_errors_map_to_the_spec_codes() {
        assert_eq!(
            submit_code("Transaction simulation failed: Blockhash not found", false),
            Some(ErrorCode::SolanaBlockhashExpired)
        );
        assert_eq!(submit_code("InsufficientFeeForTransaction", false), Some(ErrorCode::SolanaInsufficientFee));
        assert_eq!(
            submit_code(
                "Attempt to debit an account but found no record of a prior credit. InsufficientFundsForFee",
                false
            ),
            Some(ErrorCode::InsufficientBalance)
        );
        assert_eq!(
            submit_code("Error processing Instruction 2: custom program error 0x1", false),
            Some(ErrorCode::SolanaProgramError)
        );
        assert_eq!(submit_code("AlreadyProcessed", true), None);
        assert_eq!(submit_code("AlreadyProcessed", false), Some(ErrorCode::TransactionFailed));
        assert_eq!(submit_code("Transaction simulation failed: something", false), Some(ErrorCode::TransactionFailed));
    }

    #[test]
    fn transaction_errors_read_like_the_cli() {
        assert_eq!(
            describe_tx_error(&json!({"InstructionError": [2, {"Custom": 1}]})),
            "InstructionError: Instruction 2: custom program error 0x1"
        );
    }
}
