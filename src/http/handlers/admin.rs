//! Operator routes under `/v1/admin` (09-api.md §6.8).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use waiaas_storage::{AuditEvent, AuditEventType, AuditQuery, AuditRecord, AuditSeverity};

use crate::app::App;
use crate::base::clock::iso;
use crate::http::{ApiError, Reply, Req, views};

/// Resident set size of this process (Linux `/proc/self/statm`).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// `GET /v1/admin/status` (allowed during the kill switch).
pub(super) async fn status(app: &Arc<App>) -> Result<Reply, ApiError> {
    let now = app.clock.now();
    let (agents, counts, channels) =
        app.db.call(move |s| Ok((s.list_agents()?, s.status_counts(now)?, s.list_channels()?))).await?;
    let by = |st: waiaas_storage::AgentStatus| agents.iter().filter(|a| a.status == st).count();
    let ks = app.kill_switch.view();
    // The stored state names who activated it (the in-memory view does not).
    let actor = app.kill_switch.state().await.ok().and_then(|s| s.actor);
    let config = app.settings.get();
    let store = app.db.store();
    let ledger_agents = agents
        .iter()
        .filter(|a| a.backend == waiaas_storage::Backend::Ledger && a.status != waiaas_storage::AgentStatus::Terminated)
        .count();
    // `not_used`: no live agent signs on a Ledger; `configured`: the device backend is up (the
    // device itself is reached per signature); `unavailable`: Ledger agents but no device
    // support in this build or config.
    let ledger_status = match (ledger_agents, app.signers.ledger.is_some()) {
        (0, _) => "not_used",
        (_, true) => "configured",
        (_, false) => "unavailable",
    };
    let q = app.notifier.status();
    Ok(Reply::ok(json!({
        "daemon": {
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": app.uptime(),
            "pid": std::process::id(),
            "startedAt": iso(app.started_at),
            "devMode": app.settings.dev_mode,
            "restricted": app.kill_switch.is_restricted(),
        },
        "killSwitch": {"status": ks.status.as_str(), "activatedAt": ks.activated_at.map(iso), "reason": ks.reason, "actor": actor},
        "agents": {
            "active": by(waiaas_storage::AgentStatus::Active),
            "suspended": by(waiaas_storage::AgentStatus::Suspended),
            "terminated": by(waiaas_storage::AgentStatus::Terminated),
            "total": agents.len(),
        },
        "sessions": {"active": counts.active_sessions},
        "transactions": {"pending": counts.pending, "queued": counts.queued, "executing": counts.executing, "submitted": counts.submitted},
        "lastTransaction": counts.last.map(|(id, st, at)| json!({"id": id, "status": st.as_str(), "createdAt": iso(at)})),
        "adapters": app.chains.infos().iter().map(views::adapter_admin).collect::<Vec<_>>(),
        "workers": views::workers(&app.workers.snapshot()),
        "database": {"path": store.redb().map(|r| r.path().display().to_string()), "backend": store.backend_name(), "sizeBytes": app.db.call(|s| Ok(s.size_bytes())).await.unwrap_or(0), "schemaVersion": waiaas_storage::SCHEMA_VERSION, "commits": store.commits(), "fsyncs": store.stats().fsyncs,
            "committedSeq": store.sequence().0, "durableSeq": store.sequence().1},
        "resources": {"memoryRssBytes": rss_bytes(), "keysLoaded": app.signers.keystore.keys_loaded().await,
            "argon2Runs": waiaas_backends::keystore::kdf::argon2_runs(),
            "keyDecryptions": waiaas_backends::keystore::keyfile::key_decryptions()},
        "masterAuth": {"argon2Verifications": app.master.argon2_verifications()},
        "notifications": {
            "enabled": config.notifications.enabled,
            "enabledChannels": channels.iter().filter(|c| c.enabled).count(),
            "minChannels": config.notifications.min_channels,
            "queue": {"capacity": q.capacity, "waiting": q.waiting, "inFlight": q.in_flight, "dropped": q.dropped, "full": q.waiting >= q.capacity},
            "delivered": q.delivered,
            "failed": q.failed,
        },
        "ledger": {"transport": match config.ledger.transport { crate::runtime::config::LedgerTransport::Hid => "hid", crate::runtime::config::LedgerTransport::Tcp => "tcp" }, "status": ledger_status, "agents": ledger_agents},
    })))
}

/// `POST /v1/admin/backup` (03-keys.md §9.2): snapshots the database and packs an archive.
pub(super) async fn backup(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let _: serde_json::Map<String, serde_json::Value> = req.body.json().await?;
    let created =
        crate::domain::backup::create_running(&app.db, &app.layout, app.clock.now(), false, 10, &req.caller.actor())
            .await?;
    Ok(Reply::ok(json!({
        "path": created.path.display().to_string(),
        "sizeBytes": created.size_bytes,
        "agentCount": created.agent_count,
        "createdAt": iso(created.created_at),
    })))
}

/// `POST /v1/admin/shutdown`: answers first; the shutdown starts after the response is written.
pub(super) async fn shutdown(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let _: serde_json::Map<String, serde_json::Value> = req.body.json().await?;
    let app2 = app.clone();
    tokio::spawn(async move {
        // The request counts as in flight until its response is written; triggering from a task
        // lets the handler return first.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        app2.shutdown.trigger("api");
    });
    Ok(Reply::ok(json!({
        "shutdownInitiated": true,
        "timestamp": iso(app.clock.now()),
        "message": "Graceful shutdown initiated",
    })))
}

fn audit_json(r: &AuditRecord) -> serde_json::Value {
    json!({
        "seq": r.seq,
        "timestamp": iso(r.timestamp),
        "eventType": r.event_type,
        "actor": r.actor,
        "agentId": r.agent_id,
        "sessionId": r.session_id,
        "txId": r.tx_id,
        "severity": r.severity.as_str(),
        "ipAddress": r.ip_address,
        "details": r.details,
        "hash": r.hash,
    })
}

fn parse_iso(name: &str, v: &str) -> Result<u64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp().max(0) as u64)
        .map_err(|_| ApiError::validation(name, "invalid_string", format!("{name} must be an ISO-8601 timestamp")))
}

/// `GET /v1/admin/audit-log`.
pub(super) async fn audit_log(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let mut q = AuditQuery { limit: 20, desc: true, ..AuditQuery::default() };
    for (k, v) in req.query_params() {
        match k.as_str() {
            "agentId" => {
                q.agent = Some(
                    v.parse()
                        .map_err(|_| ApiError::validation("agentId", "invalid_string", "agentId must be a UUID"))?,
                )
            }
            "eventType" => q.event_type = Some(v),
            "severity" => {
                q.severity = Some(
                    v.parse::<AuditSeverity>()
                        .map_err(|e| ApiError::validation("severity", "invalid_enum_value", e.to_string()))?,
                )
            }
            "since" => q.since = Some(parse_iso("since", &v)?),
            "until" => q.until = Some(parse_iso("until", &v)?),
            "cursor" => {
                q.cursor =
                    Some(v.parse().map_err(|_| {
                        ApiError::validation("cursor", "invalid_type", "cursor must be a sequence number")
                    })?)
            }
            "limit" => {
                q.limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=100).contains(l))
                    .ok_or_else(|| ApiError::validation("limit", "too_big", "limit must be 1-100"))?
            }
            "order" => {
                q.desc = match v.as_str() {
                    "desc" => true,
                    "asc" => false,
                    _ => return Err(ApiError::validation("order", "invalid_enum_value", "order must be asc or desc")),
                }
            }
            other => {
                return Err(ApiError::validation(
                    other,
                    "unrecognized_keys",
                    format!("unknown query parameter {other}"),
                ));
            }
        }
    }
    let (rows, next) = app.db.call(move |s| s.query_audit(&q)).await?;
    Ok(Reply::ok(json!({"entries": rows.iter().map(audit_json).collect::<Vec<_>>(), "nextCursor": next})))
}

/// `GET /v1/admin/audit-log/verify`.
pub(super) async fn audit_verify(app: &Arc<App>) -> Result<Reply, ApiError> {
    let v = app.db.call(|s| s.verify_audit()).await?;
    Ok(Reply::ok(json!({
        "valid": v.valid,
        "checkedEntries": v.checked_entries,
        "headSeq": v.head_seq,
        "headHash": v.head_hash,
        "firstInvalidSeq": v.first_invalid_seq,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DevClockBody {
    advance_seconds: u64,
}

/// `POST /v1/admin/dev/clock` (dev mode only; the route does not exist otherwise).
pub(super) async fn dev_clock(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let body: DevClockBody = req.body.json().await?;
    if !(1..=31_536_000).contains(&body.advance_seconds) {
        return Err(ApiError::validation("advanceSeconds", "too_big", "advanceSeconds must be 1-31536000"));
    }
    let offset = app.clock.advance(body.advance_seconds);
    let now = app.clock.now();
    let ev = AuditEvent::new(AuditEventType::DevClockAdvanced, "admin")
        .detail("advanceSeconds", body.advance_seconds)
        .detail("offsetSeconds", offset);
    let ctx = req.ctx(app);
    app.db.call(move |s| s.append_audit(ev, &ctx)).await?;
    Ok(Reply::ok(json!({"now": iso(now), "offsetSeconds": offset})))
}

/// `POST /v1/admin/rotate-secret` (04-auth.md §5).
pub(super) async fn rotate_secret(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let _: serde_json::Map<String, serde_json::Value> = req.body.json().await?;
    let previous_expires_at = app.sessions.rotate_secret(&req.ctx(app)).await?;
    Ok(Reply::ok(json!({
        "previousExpiry": iso(previous_expires_at),
        "message": "Secret rotated. Existing sessions remain valid for 5 minutes.",
    })))
}
