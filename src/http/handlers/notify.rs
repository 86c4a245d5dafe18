//! `/v1/owner/notification-channels` and `/v1/owner/notification-log` (09-api.md §6.7). Every
//! response masks channel secrets.

use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use waiaas_storage::{ChannelChange, ChannelRecord, ChannelType, LogQuery, NotificationStatus};

use crate::adapters::notify::NewChannel;
use crate::adapters::notify::channel::mask;
use crate::app::App;
use crate::base::clock::iso;
use crate::http::query;
use crate::http::{ApiError, Reply, Req};

/// **ChannelView**, secrets masked.
fn view(c: &ChannelRecord) -> Value {
    json!({
        "id": c.id,
        "type": c.channel_type.as_str(),
        "name": c.name,
        "config": mask(c.channel_type, &c.config),
        "priority": c.priority,
        "enabled": c.enabled,
        "lastHealthCheck": c.last_health_check.map(iso),
        "lastHealthStatus": c.last_health_status,
        "createdAt": iso(c.created_at),
        "updatedAt": iso(c.updated_at),
    })
}

/// `GET /v1/owner/notification-channels`.
pub(super) async fn list(app: &Arc<App>) -> Result<Reply, ApiError> {
    let channels = app.db.call(|s| s.list_channels()).await?;
    Ok(Reply::ok(json!({"channels": channels.iter().map(view).collect::<Vec<_>>()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    config: Value,
    priority: Option<i32>,
    enabled: Option<bool>,
}

fn kind(v: &str) -> Result<ChannelType, ApiError> {
    ChannelType::from_str(v).map_err(|_| {
        ApiError::validation("type", "invalid_enum_value", "type must be TELEGRAM, DISCORD, NTFY, SLACK or WEBHOOK")
    })
}

/// `POST /v1/owner/notification-channels`: 201 after the health check passed.
pub(super) async fn create(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: CreateBody = req.body.json().await?;
    let new = NewChannel {
        kind: kind(&b.kind)?,
        name: b.name,
        config: b.config,
        priority: b.priority.unwrap_or(0),
        enabled: b.enabled.unwrap_or(true),
    };
    let c = app.notifier.create_channel(new, &req.ctx(app)).await?;
    Ok(Reply::created(view(&c)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    name: Option<String>,
    config: Option<Value>,
    priority: Option<i32>,
    enabled: Option<bool>,
}

/// `PUT /v1/owner/notification-channels/:id`.
pub(super) async fn update(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let b: UpdateBody = req.body.json().await?;
    let change = ChannelChange { name: b.name, config: b.config, priority: b.priority, enabled: b.enabled };
    let c = app.notifier.update_channel(req.param("id"), change, &req.ctx(app)).await?;
    Ok(Reply::ok(view(&c)))
}

/// `DELETE /v1/owner/notification-channels/:id`: disables.
pub(super) async fn disable(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let c = app.notifier.disable_channel(req.param("id"), &req.ctx(app)).await?;
    Ok(Reply::ok(json!({"id": c.id, "enabled": c.enabled})))
}

/// `POST /v1/owner/notification-channels/:id/test`.
pub(super) async fn test(app: &Arc<App>, mut req: Req) -> Result<Reply, ApiError> {
    let _: serde_json::Map<String, Value> = req.body.json().await?;
    let body = match app.notifier.test_channel(req.param("id")).await? {
        Ok(()) => json!({"delivered": true}),
        Err(e) => json!({"delivered": false, "error": e}),
    };
    Ok(Reply::ok(body))
}

/// `GET /v1/owner/notification-log?event&status&channelId&cursor&limit`.
pub(super) async fn log(app: &Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let (page, filters) = query::parse(req.query_params(), &["event", "status", "channelId"])?;
    let status = filters
        .get("status")
        .map(|s| {
            NotificationStatus::from_str(s).map_err(|_| {
                ApiError::validation(
                    "status",
                    "invalid_enum_value",
                    "status must be DELIVERED, FAILED, RATE_LIMITED or ALL_FAILED",
                )
            })
        })
        .transpose()?;
    let channel = filters
        .get("channelId")
        .map(|c| {
            Uuid::parse_str(c)
                .map_err(|_| ApiError::validation("channelId", "invalid_string", "channelId must be a UUID"))
        })
        .transpose()?;
    let q = LogQuery {
        event: filters.get("event").cloned(),
        status,
        channel,
        cursor: page.cursor,
        limit: page.limit,
        desc: page.desc,
    };
    let (rows, more) = app.notifier.log(q).await?;
    let next = if more { rows.last().map(|r| r.id) } else { None };
    let entries: Vec<Value> = rows
        .iter()
        .map(|e| {
            json!({
                "id": e.id, "channelId": e.channel_id, "event": e.event, "level": e.level.as_str(),
                "referenceId": e.reference_id, "status": e.status.as_str(), "error": e.error,
                "retryCount": e.retry_count, "sentAt": iso(e.sent_at),
            })
        })
        .collect();
    Ok(Reply::ok(json!({"entries": entries, "nextCursor": next})))
}
