//! The HTTP API on warp (01-daemon.md §8): the only folder that knows HTTP on the server side
//! (status codes, the error envelope, warp/hyper, request bodies). It may call `app` and every
//! layer below; handlers turn requests into typed calls on the services and their typed
//! outcomes into responses.
//!
//! One warp filter extracts each request and hands it to [`handle`], which applies the
//! middleware layers of §8.1 in their fixed order as plain sequential code — request id, logger,
//! shutdown guard, global rate limit, secure headers, host guard, CORS, kill-switch guard, auth,
//! session rate limit, body limit and JSON parsing — then dispatches to the route's handler.
//! Writing the order as straight-line code keeps it visible and testable; each layer only
//! decorates the responses produced *after* it, exactly as nested middleware would.

pub(crate) mod auth;
pub(crate) mod body;
pub(crate) mod console;
pub(crate) mod error;
pub(crate) mod handlers;
mod layers;
pub(crate) mod openapi;
mod openapi_schemas;
pub(crate) mod query;
pub(crate) mod ratelimit;
pub(crate) mod routes;
pub(crate) mod server;
pub(crate) mod status;
pub(crate) mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use warp::http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::app::App;
use crate::base::error::ErrorCode;
use crate::domain::auth::SessionContext;
use body::Body;
pub(crate) use error::ApiError;
use ratelimit::{RateLimiter, Stage, Verdict};
use routes::{Matched, Routing};

/// What the server shares between requests: the application and the HTTP-only state.
pub(crate) struct State {
    pub(crate) app: Arc<App>,
    pub(crate) limiter: RateLimiter,
}

/// What the auth layer established about the caller.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    Anonymous,
    Master,
    Session(Box<SessionContext>),
    Owner(crate::domain::auth::owner::Owner),
    /// Master password and an owner signature (a LOCKED owner change).
    MasterAndOwner(crate::domain::auth::owner::Owner),
    /// A read-only owner-console token (11-owner-console.md §3.2).
    OwnerToken(crate::domain::auth::owner::Owner),
}

impl Caller {
    /// The audit actor string (04-auth.md §1).
    pub(crate) fn actor(&self) -> String {
        match self {
            Caller::Anonymous => "system".into(),
            Caller::Master => "admin".into(),
            Caller::Session(s) => format!("agent:{}", s.agent.id),
            Caller::Owner(o) => format!("owner:{}", o.address),
            Caller::MasterAndOwner(o) => format!("owner:{}+admin", o.address),
            Caller::OwnerToken(o) => format!("owner:{}", o.address),
        }
    }

    /// The session, for session-authenticated routes.
    pub(crate) fn session(&self) -> Option<&SessionContext> {
        match self {
            Caller::Session(s) => Some(s),
            _ => None,
        }
    }
}

/// A request as handlers see it.
pub(crate) struct Req {
    pub(crate) id: String,
    pub(crate) query: String,
    pub(crate) headers: HeaderMap,
    pub(crate) ip: String,
    pub(crate) matched: Matched,
    pub(crate) caller: Caller,
    pub(crate) body: Body,
}

impl Req {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Query parameters (URL-decoded).
    pub(crate) fn query_params(&self) -> Vec<(String, String)> {
        url_decode_pairs(&self.query)
    }

    /// The audit context of this request: its actor, client IP and daemon time.
    pub(crate) fn ctx(&self, app: &App) -> waiaas_storage::OpCtx {
        waiaas_storage::OpCtx { actor: self.caller.actor(), ip: Some(self.ip.clone()), now: app.clock.now() }
    }

    /// The authenticated session (session-authenticated routes only).
    pub(crate) fn session(&self) -> Result<&SessionContext, ApiError> {
        self.caller.session().ok_or_else(ApiError::internal)
    }

    /// A path parameter.
    pub(crate) fn param(&self, name: &str) -> &str {
        self.matched.param(name).unwrap_or_default()
    }
}

fn url_decode_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A successful handler result.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub(crate) fn ok(body: Value) -> Reply {
        Reply { status: 200, body, headers: Vec::new() }
    }

    pub(crate) fn created(body: Value) -> Reply {
        Reply { status: 201, body, headers: Vec::new() }
    }
}

/// A response under construction; layers add headers as it travels outward.
pub(crate) struct Out {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(String, String)>,
    /// The stage-2 limiter decorated this response (its values win over stage 1).
    pub(crate) session_limited: bool,
}

impl Out {
    fn json(status: u16, body: &Value) -> Out {
        Out { status, body: serde_json::to_vec(body).unwrap_or_default(), headers: Vec::new(), session_limited: false }
    }

    pub(crate) fn empty(status: u16) -> Out {
        Out { status, body: Vec::new(), headers: Vec::new(), session_limited: false }
    }

    pub(crate) fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(h) => h.1 = value,
            None => self.headers.push((name.to_string(), value)),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    pub(crate) fn from_reply(r: Reply) -> Out {
        let mut out = Out::json(r.status, &r.body);
        for (n, v) in r.headers {
            out.set(n, v);
        }
        out
    }

    /// The flat error envelope (09-api.md §2).
    pub(crate) fn error(e: &ApiError, request_id: &str) -> Out {
        let mut body = json!({
            "code": e.code.as_str(),
            "message": e.message,
            "requestId": request_id,
            "retryable": status::retryable(e.code),
        });
        if let Some(h) = e.hint_text() {
            body["hint"] = Value::String(h.to_string());
        }
        if let Some(d) = e.details() {
            body["details"] = Value::Object(d.clone());
        }
        let mut out = Out::json(status::status(e.code), &body);
        if let Some(secs) = e.retry_after_secs().or_else(|| status::default_retry_after(e.code)) {
            out.set("Retry-After", secs.to_string());
        }
        for (n, v) in e.headers() {
            out.set(n, v.clone());
        }
        out
    }

    fn rate_headers(&mut self, v: &Verdict) {
        self.set("X-RateLimit-Limit", v.limit.to_string());
        self.set("X-RateLimit-Remaining", v.remaining.to_string());
        self.set("X-RateLimit-Reset", v.reset.to_string());
    }
}

fn rate_limited(stage: Stage, v: &Verdict) -> ApiError {
    ApiError::new(ErrorCode::RateLimitExceeded, format!("Rate limit exceeded ({} requests per minute)", v.limit))
        .detail("limit", v.limit)
        .detail("window", "1m")
        .detail("retryAfter", v.retry_after)
        .detail("stage", stage.as_str())
        .retry_after(v.retry_after)
}

/// Incoming request parts, as extracted by the warp filter.
pub(crate) struct Incoming {
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Body,
}

/// Entry point for every request: layers 1–2 (request id, logger) and the final response. The
/// request runs in a `request` span carrying its id, so every line it logs names it.
pub(crate) async fn handle(state: Arc<State>, inc: Incoming) -> warp::reply::Response {
    let id = layers::request_id(&inc.headers);
    // At ERROR level so the span exists whatever log_level filters out: a warning logged inside
    // the request still names it.
    let span = tracing::error_span!("request", requestId = %id);
    tracing::Instrument::instrument(handle_in_span(state, inc, id), span).await
}

async fn handle_in_span(state: Arc<State>, inc: Incoming, id: String) -> warp::reply::Response {
    let app = &state.app;
    let started = Instant::now();
    let route = match routes::route_request(&inc.method, &inc.path, app.settings.dev_mode, app.settings.console) {
        routes::Routing::Found(m) => m.route.path,
        _ => "unmatched",
    };
    let _in_flight = app.shutdown.enter();
    let method = inc.method.clone();
    let path = inc.path.clone();
    let auth_hint = layers::redacted_authorization(&inc.headers);
    let body_read = inc.body.read_state();
    let mut out = pipeline(&state, &id, inc).await;
    if body_read.left_unread() {
        out.set("Connection", "close");
    }
    out.set("X-Request-ID", id.clone());
    if app.settings.dev_mode {
        out.set("X-WAIaaS-Dev-Mode", "true");
    }
    // The console's files carry their own type; empty 204/304/308 answers carry none.
    if !out.body.is_empty() && !out.has("Content-Type") {
        out.set("Content-Type", "application/json");
    }
    let took = started.elapsed();
    crate::runtime::metrics::get().http(
        route,
        crate::runtime::metrics::method_label(&method),
        out.status,
        took.as_secs_f64(),
    );
    let ms = took.as_millis();
    match auth_hint {
        Some(a) => tracing::info!("{id} {method} {path} {} {ms}ms auth={a}", out.status),
        None => tracing::info!("{id} {method} {path} {} {ms}ms", out.status),
    }
    let mut resp =
        Response::builder().status(StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (n, v) in &out.headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            resp = resp.header(n.as_str(), v);
        }
    }
    resp.body(out.body.into()).unwrap_or_else(|_| warp::reply::Response::new(Vec::<u8>::new().into()))
}

/// How long an answer to a client over the per-IP request limit is held back.
const OVER_LIMIT_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Layers 3–4 and everything inside them.
async fn pipeline(state: &Arc<State>, id: &str, inc: Incoming) -> Out {
    let app = &state.app;
    // Readiness is answered before the shutdown guard and the rate limits (see its route).
    if inc.method == "GET" && inc.path == "/ready" {
        let mut out = match handlers::system::ready(app).await {
            Ok(r) => Out::json(r.status, &r.body),
            Err(e) => Out::error(&e, id),
        };
        for (n, v) in layers::SECURE_HEADERS {
            out.set(n, *v);
        }
        return out;
    }
    // 3. Shutdown guard.
    if app.shutdown.is_shutting_down() {
        let mut out = Out::error(&ApiError::new(ErrorCode::ServiceShuttingDown, "The daemon is shutting down"), id);
        out.set("Connection", "close");
        return out;
    }
    // 3b. Leader guard (13-postgres-ha.md §6.3): a standby serves only the probes and the
    // document, before authentication, so it writes nothing.
    if app.leadership.is_standby() && !matches!(inc.path.as_str(), "/health" | "/v1/health" | "/doc") {
        let (leader, epoch) = app.leadership.leader_hint();
        let e = ApiError::new(ErrorCode::NotLeader, "This replica is a standby")
            .detail("leaderReplicaId", leader)
            .detail("epoch", epoch);
        return Out::error(&e, id);
    }
    // 4. Global rate limit, keyed by client IP.
    let config = app.settings.get();
    let ip = layers::client_ip(&inc, config.security.trust_proxy);
    let global = state.limiter.check(Stage::Global, &ip, config.security.rate_limit_global_ip_rpm, app.clock.now_ms());
    if !global.allowed {
        if global.audit {
            layers::audit_rate_limit(app, &format!("ip:{ip}"), Stage::Global, &ip);
        }
        // A client over its per-IP budget waits before its 429 (issue #22): a flood of refused
        // requests then costs its sender time and connections (capped per IP), not the
        // daemon's CPU that every other client shares.
        tokio::time::sleep(OVER_LIMIT_DELAY).await;
        let mut out = Out::error(&rate_limited(Stage::Global, &global), id);
        out.rate_headers(&global);
        return out;
    }
    let mut out = secured(state, id, ip, inc).await;
    if !out.session_limited {
        out.rate_headers(&global);
    }
    out
}

/// Layer 5 (secure headers) around layers 6–11.
async fn secured(state: &Arc<State>, id: &str, ip: String, inc: Incoming) -> Out {
    let page = console::is_console_path(&inc.path);
    let mut out = inner(state, id, ip, inc).await;
    for (n, v) in layers::SECURE_HEADERS {
        if !out.has(n) {
            out.set(n, *v);
        }
    }
    if page {
        console::decorate(&mut out);
    }
    out
}

/// Layers 6–11 and the handler.
async fn inner(state: &Arc<State>, id: &str, ip: String, inc: Incoming) -> Out {
    let app = &state.app;
    let port = app.settings.port;
    // 6. Host guard.
    let host = inc.headers.get("host").and_then(|h| h.to_str().ok());
    if !layers::host_allowed(host, port, &app.settings.public_url) {
        return Out::error(&ApiError::new(ErrorCode::InvalidHost, "Forbidden: invalid host header"), id);
    }
    // 7. CORS: answer preflights here; remember an allowed origin to decorate the response.
    let config = app.settings.get();
    let origin = inc.headers.get("origin").and_then(|o| o.to_str().ok()).map(str::to_string);
    let allowed_origin = origin.filter(|o| {
        let ok = layers::origin_allowed(o, port, &config.security.cors_origins);
        if !ok {
            tracing::debug!("{id} CORS origin refused: {o}");
        }
        ok
    });
    if inc.method == "OPTIONS" && inc.headers.contains_key("access-control-request-method") {
        let mut out = Out::empty(204);
        if let Some(o) = &allowed_origin {
            layers::cors_preflight_headers(&mut out, o);
        }
        return out;
    }
    let mut out = routed(state, id, ip, inc).await;
    if let Some(o) = &allowed_origin {
        layers::cors_response_headers(&mut out, o);
    }
    out
}

/// Layers 8–11: route, kill-switch guard, auth, session rate limit, body limit; then dispatch.
async fn routed(state: &Arc<State>, id: &str, ip: String, inc: Incoming) -> Out {
    let app = &state.app;
    let routing = routes::route_request(&inc.method, &inc.path, app.settings.dev_mode, app.settings.console);
    // 8. Kill-switch guard.
    let ks = app.kill_switch.view();
    let allowed = matches!(&routing, Routing::Found(m) if m.route.kill_switch_allowed);
    if ks.status != waiaas_storage::KillSwitchStatus::Normal && !allowed {
        let e = ApiError::new(ErrorCode::SystemLocked, "System is in kill switch mode.")
            .detail("activatedAt", ks.activated_at.map(crate::base::clock::iso))
            .detail("reason", ks.reason.clone());
        return Out::error(&e, id);
    }
    let matched = match routing {
        Routing::Found(m) => m,
        Routing::WrongMethod(methods) => {
            let e = ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("Method {} not allowed on {}", inc.method, inc.path),
            )
            .header("Allow", methods.join(", "));
            return Out::error(&e, id);
        }
        Routing::NotFound => {
            return Out::error(
                &ApiError::new(ErrorCode::RouteNotFound, format!("Route {} {} not found", inc.method, inc.path)),
                id,
            );
        }
    };
    let mut req = Req {
        id: id.to_string(),
        query: inc.query,
        headers: inc.headers,
        ip,
        matched,
        caller: Caller::Anonymous,
        body: inc.body,
    };
    // 9. Auth.
    let limit_key = match auth::authenticate(app, &mut req).await {
        Ok(key) => key,
        Err(e) => return Out::error(&e, id),
    };
    // 10. Session rate limit (authenticated routes, and the owner-message route's IP bucket).
    let mut verdict = None;
    let bucket = match (limit_key, req.matched.route.bucket) {
        (_, routes::Bucket::OwnerMessage) => Some((Stage::OwnerMessage, format!("owner-message:{}", req.ip), 30)),
        (Some(key), routes::Bucket::Default) => {
            Some((Stage::Session, key, app.settings.get().security.rate_limit_session_rpm))
        }
        (Some(key), routes::Bucket::Tx) => {
            Some((Stage::Session, format!("{key}:tx"), app.settings.get().security.rate_limit_tx_rpm))
        }
        (None, _) => None,
    };
    if let Some((stage, key, limit)) = bucket {
        let v = state.limiter.check(stage, &key, limit, app.clock.now_ms());
        if !v.allowed {
            if v.audit {
                layers::audit_rate_limit(app, &key, stage, &req.ip);
            }
            let mut out = Out::error(&rate_limited(stage, &v), id);
            out.rate_headers(&v);
            out.session_limited = true;
            return out;
        }
        verdict = Some(v);
    }
    // The console's page and assets are files, not JSON handlers.
    if req.matched.route.page {
        return console::serve(&req);
    }
    // 11. Body limit (the handler parses JSON through `req.body`).
    if req.body.declared_len().is_some_and(|n| n > body::MAX_BODY) {
        return Out::error(&body::too_large(), id);
    }
    let mut out = dispatch_contained(app.clone(), req).await;
    if let Some(v) = verdict {
        out.rate_headers(&v);
        out.session_limited = true;
    }
    out
}

/// Runs the handler in its own task so a panic becomes a 500 with no internals in the body.
async fn dispatch_contained(app: Arc<App>, req: Req) -> Out {
    let id = req.id.clone();
    let task = tokio::spawn(async move {
        let rid = req.id.clone();
        match handlers::dispatch(&app, req).await {
            Ok(reply) => Out::from_reply(reply),
            Err(e) => {
                if e.code == ErrorCode::InternalError {
                    tracing::error!("{rid} internal error: {}", e.message);
                }
                Out::error(&e, &rid)
            }
        }
    });
    match task.await {
        Ok(out) => out,
        Err(e) => {
            tracing::error!("{id} handler panicked: {e}");
            Out::error(&ApiError::internal(), &id)
        }
    }
}
