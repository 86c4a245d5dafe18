//! Input validation shared by every entry point: the `VALIDATION_ERROR` shape of 09-api.md §2
//! (`details.issues[] = {path, code, message}`) and strict JSON parsing that names the failing
//! path. Request bodies, stored requests being rebuilt, CLI files and config-like JSON (policy
//! rules, channel configs) all report problems the same way through [`Invalid`].

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::base::error::{Coded, ErrorCode};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issue {
    /// `a.b[0].c`; empty for the whole input.
    pub(crate) path: String,
    /// `required`, `invalid_type`, `unrecognized_keys`, `invalid_value`, …
    pub(crate) code: String,
    pub(crate) message: String,
}

/// Input that was refused before anything was written. Usually `VALIDATION_ERROR`; a few
/// request shapes have codes of their own (`BATCH_NOT_SUPPORTED`, `BATCH_SIZE_EXCEEDED`,
/// `INVALID_RULES`, `INVALID_CHANNEL_CONFIG`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Invalid {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) issues: Vec<Issue>,
}

impl Invalid {
    /// A single-issue `VALIDATION_ERROR`.
    pub(crate) fn field(path: &str, code: &str, message: impl Into<String>) -> Invalid {
        let message = message.into();
        Invalid {
            code: ErrorCode::ValidationError,
            message: format!("Validation failed: {message}"),
            issues: vec![Issue { path: path.to_string(), code: code.to_string(), message }],
        }
    }

    /// `VALIDATION_ERROR` with `code` `invalid_value`.
    pub(crate) fn value(path: &str, message: impl Into<String>) -> Invalid {
        Invalid::field(path, "invalid_value", message)
    }

    /// A refusal with its own code and no field issues.
    pub(crate) fn with_code(code: ErrorCode, message: impl Into<String>) -> Invalid {
        Invalid { code, message: message.into(), issues: Vec::new() }
    }
}

impl Invalid {
    /// The same issues with `prefix` put in front of every path (a nested document).
    pub(crate) fn under(mut self, prefix: &str) -> Invalid {
        for i in &mut self.issues {
            i.path = match (prefix.is_empty(), i.path.is_empty()) {
                (true, _) => i.path.clone(),
                (false, true) => prefix.to_string(),
                (false, false) if i.path.starts_with('[') => format!("{prefix}{}", i.path),
                (false, false) => format!("{prefix}.{}", i.path),
            };
        }
        self
    }
}

impl Coded for Invalid {
    fn code(&self) -> ErrorCode {
        self.code
    }

    fn details(&self) -> Map<String, Value> {
        let mut d = Map::new();
        if !self.issues.is_empty() {
            let issues: Vec<Value> =
                self.issues.iter().map(|i| json!({"path": i.path, "code": i.code, "message": i.message})).collect();
            d.insert("issues".into(), Value::Array(issues));
        }
        d
    }
}

/// Parses JSON into `T`, reporting the failing path and the kind of failure.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Invalid> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let inner = e.into_inner();
        let msg = inner.to_string();
        let code = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "invalid_json",
            serde_json::error::Category::Io => "invalid_body",
            serde_json::error::Category::Data if msg.starts_with("unknown field") => "unrecognized_keys",
            serde_json::error::Category::Data if msg.starts_with("missing field") => "required",
            serde_json::error::Category::Data if msg.starts_with("invalid type") => "invalid_type",
            serde_json::error::Category::Data => "invalid_value",
        };
        body_issue(&path, code, msg)
    })
}

/// Parses a JSON value (already decoded) into `T` with the same reporting as [`parse_json`].
pub(crate) fn from_value<T: DeserializeOwned>(v: &Value) -> Result<T, Invalid> {
    parse_json(&serde_json::to_vec(v).unwrap_or_default())
}

/// A request-body problem (`Invalid request body: …`).
pub(crate) fn body_issue(path: &str, code: &str, message: impl Into<String>) -> Invalid {
    let message = message.into();
    Invalid {
        code: ErrorCode::ValidationError,
        message: format!("Invalid request body: {message}"),
        issues: vec![Issue { path: path.to_string(), code: code.to_string(), message }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct T {
        advance_seconds: u64,
        inner: Option<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: Vec<u8>,
    }

    fn issue_of(json: &str) -> Value {
        let e = parse_json::<T>(json.as_bytes()).unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError);
        e.details()["issues"][0].clone()
    }

    #[test]
    fn issues_name_the_path_and_kind() {
        assert_eq!(issue_of(r#"{"advanceSeconds": 1, "extra": 2}"#)["code"], "unrecognized_keys");
        assert_eq!(issue_of(r#"{}"#)["code"], "required");
        let i = issue_of(r#"{"advanceSeconds": 1, "inner": {"a": [1, "x"]}}"#);
        assert_eq!((i["path"].as_str(), i["code"].as_str()), (Some("inner.a[1]"), Some("invalid_type")));
        assert_eq!(issue_of("{not json")["code"], "invalid_json");
        assert_eq!(issue_of(r#"{"advanceSeconds": -1}"#)["path"], "advanceSeconds");
    }
}
