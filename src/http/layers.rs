//! Small middleware pieces: request ids, client IP, host guard, CORS, secure headers, and the
//! rate-limit audit row (01-daemon.md §8).

use rand::RngCore;
use waiaas_storage::AuditEventType;
use warp::http::HeaderMap;

use super::{Incoming, Out};
use crate::app::App;
use crate::http::ratelimit::Stage;

/// Security headers added to every response produced from layer 5 inward (no HSTS: loopback).
pub(crate) const SECURE_HEADERS: &[(&str, &str)] = &[
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("X-XSS-Protection", "0"),
    ("Cache-Control", "no-store"),
];

/// Reuses a well-formed `X-Request-ID` (`^[A-Za-z0-9._:-]{1,128}$`), otherwise makes a new one.
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    if let Some(v) = headers.get("x-request-id").and_then(|v| v.to_str().ok())
        && (1..=128).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    {
        return v.to_string();
    }
    new_request_id()
}

/// `req_` + 22 hex characters.
pub(crate) fn new_request_id() -> String {
    let mut bytes = [0u8; 11];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("req_{}", hex::encode(bytes))
}

/// `Authorization` as the request logger may print it: never the token itself.
pub(crate) fn redacted_authorization(headers: &HeaderMap) -> Option<&'static str> {
    let v = headers.get("authorization")?.to_str().ok()?;
    Some(if v.starts_with("Bearer wai_sess_") { "Bearer wai_sess_***" } else { "Bearer ***" })
}

/// The socket address, or the first `X-Forwarded-For` entry when `trust_proxy` is on.
pub(crate) fn client_ip(inc: &Incoming, trust_proxy: bool) -> String {
    if trust_proxy
        && let Some(first) =
            inc.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()).and_then(|v| v.split(',').next())
    {
        let first = first.trim();
        if !first.is_empty() {
            return first.to_string();
        }
    }
    inc.remote.map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

/// Host guard (§8.1 layer 6): present and one of the four loopback spellings, or the
/// authority of `[daemon].public_url` as written (11-owner-console.md §1).
pub(crate) fn host_allowed(host: Option<&str>, port: u16, public_url: &str) -> bool {
    let Some(host) = host else { return false };
    host == "localhost"
        || host == "127.0.0.1"
        || host == format!("localhost:{port}")
        || host == format!("127.0.0.1:{port}")
        || public_url.strip_prefix("https://").is_some_and(|authority| host.eq_ignore_ascii_case(authority))
}

/// Whether `origin` may call the API from a browser (§8.6).
pub(crate) fn origin_allowed(origin: &str, port: u16, extra: &[String]) -> bool {
    let builtin = [
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
        "tauri://localhost".to_string(),
        "http://tauri.localhost".to_string(),
        "https://tauri.localhost".to_string(),
    ];
    builtin.iter().chain(extra.iter()).any(|o| o == origin)
}

pub(crate) fn cors_preflight_headers(out: &mut Out, origin: &str) {
    out.set("Access-Control-Allow-Origin", origin);
    out.set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS");
    out.set(
        "Access-Control-Allow-Headers",
        "Authorization, Content-Type, X-Request-ID, X-Master-Password, Idempotency-Key",
    );
    out.set("Access-Control-Max-Age", "600");
    out.set("Vary", "Origin");
}

pub(crate) fn cors_response_headers(out: &mut Out, origin: &str) {
    out.set("Access-Control-Allow-Origin", origin);
    out.set(
        "Access-Control-Expose-Headers",
        "X-Request-ID, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Idempotent-Replayed",
    );
    out.set("Vary", "Origin");
}

/// Appends `RATE_LIMIT_EXCEEDED` (warning) without delaying the response.
pub(crate) fn audit_rate_limit(app: &std::sync::Arc<App>, key: &str, stage: Stage, ip: &str) {
    let app = app.clone();
    let ev = waiaas_storage::AuditEvent::new(AuditEventType::RateLimitExceeded, "system")
        .severity(waiaas_storage::AuditSeverity::Warning)
        .detail("key", key)
        .detail("stage", stage.as_str())
        .ip(Some(ip.to_string()));
    tokio::spawn(async move {
        let ctx = waiaas_storage::OpCtx::new("system", app.clock.now());
        if let Err(e) = app.db.call(move |s| s.append_audit(ev, &ctx)).await {
            tracing::warn!("cannot audit a rate-limit refusal: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_reused_only_when_well_formed() {
        let mut h = HeaderMap::new();
        assert!(request_id(&h).starts_with("req_") && request_id(&h).len() == 26);
        h.insert("x-request-id", "abc.DEF:1-2_3".parse().unwrap());
        assert_eq!(request_id(&h), "abc.DEF:1-2_3");
        h.insert("x-request-id", "bad id!".parse().unwrap());
        assert_ne!(request_id(&h), "bad id!");
    }

    #[test]
    fn host_guard_and_cors_lists() {
        assert!(host_allowed(Some("127.0.0.1:3100"), 3100, ""));
        assert!(host_allowed(Some("localhost"), 3100, ""));
        assert!(!host_allowed(Some("127.0.0.1:3101"), 3100, ""));
        assert!(!host_allowed(Some("evil.com"), 3100, ""));
        assert!(!host_allowed(None, 3100, ""));
        assert!(host_allowed(Some("wallet.example.test"), 3100, "https://wallet.example.test"));
        assert!(!host_allowed(Some("wallet.example.test:444"), 3100, "https://wallet.example.test"));
        assert!(!host_allowed(Some("evil.com"), 3100, "https://wallet.example.test"));
        assert!(origin_allowed("tauri://localhost", 3100, &[]));
        assert!(origin_allowed("https://app.example", 3100, &["https://app.example".into()]));
        assert!(!origin_allowed("http://evil.com", 3100, &[]));
    }
}
