//! The owner's read-only overview (09-api.md §6.5): `GET /v1/owner/status`, `/dashboard` and
//! `/settings`. They only read: the store, the config and (for the dashboard) each agent's
//! balance with a 5 s timeout, `null` when the node does not answer in time.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use waiaas_storage::{AgentStatus, Chain, Tier};

use crate::app::App;
use crate::base::clock::iso;
use crate::http::{ApiError, Reply};

/// `GET /v1/owner/status`.
pub(super) async fn status(app: &Arc<App>) -> Result<Reply, ApiError> {
    let now = app.clock.now();
    let (connections, sessions, queued, ks) = app
        .db
        .call(move |s| {
            Ok((s.list_wallet_connections()?, s.list_sessions(None)?, s.queued_rows(None)?, s.kill_switch_state()?))
        })
        .await?;
    let project = app.settings.get().walletconnect_project_id.clone();
    Ok(Reply::ok(json!({
        "connections": connections.iter().map(|c| json!({
            "connectionId": c.id, "address": c.owner_address, "chain": c.chain.as_str(),
            "connectedAt": iso(c.connected_at), "lastActiveAt": iso(c.last_active_at),
        })).collect::<Vec<_>>(),
        "systemState": ks.status.as_str(),
        "activeSessionCount": sessions.iter().filter(|s| s.is_live(now)).count(),
        "pendingApprovalCount": queued.iter().filter(|r| r.tier == Some(Tier::Approval)).count(),
        "walletConnectProjectId": (!project.is_empty()).then_some(project),
    })))
}

/// `GET /v1/owner/dashboard`.
pub(super) async fn dashboard(app: &Arc<App>) -> Result<Reply, ApiError> {
    let now = app.clock.now();
    let since = crate::base::clock::day_start(now);
    let (agents, sessions, queued, ks) = app
        .db
        .call(move |s| Ok((s.list_agents()?, s.list_sessions(None)?, s.queued_rows(None)?, s.kill_switch_state()?)))
        .await?;
    let config = app.settings.get();
    let mut items = Vec::new();
    let mut tx_count = 0u64;
    let mut volume = [waiaas_storage::Amount::ZERO, waiaas_storage::Amount::ZERO];
    for a in agents.iter().filter(|a| a.status != AgentStatus::Terminated) {
        let id = a.id;
        let (created, confirmed) = app
            .db
            .call(move |s| Ok((s.created_since(id, since, u64::MAX)?, s.confirmed_volume_since(id, since)?)))
            .await?;
        tx_count += created;
        let slot = usize::from(a.chain == Chain::Ethereum);
        volume[slot] = volume[slot].saturating_add(confirmed);
        let balance = match app.chains.for_agent(a).await {
            Ok(adapter) => tokio::time::timeout(Duration::from_secs(5), adapter.get_balance(&a.public_key))
                .await
                .ok()
                .and_then(Result::ok)
                .map(|b| b.balance.to_string()),
            Err(_) => None,
        };
        items.push(json!({
            "id": a.id, "name": a.name, "chain": a.chain.as_str(), "network": a.network.as_str(),
            "address": a.public_key, "status": a.status.as_str(), "ownerState": a.owner_state().as_str(),
            "balance": balance, "symbol": config.native_symbol(a.chain, a.network),
        }));
    }
    Ok(Reply::ok(json!({
        "agents": items,
        "todayTxCount": tx_count,
        "todayVolume": {"solana": volume[0].to_string(), "ethereum": volume[1].to_string()},
        "activeSessions": sessions.iter().filter(|s| s.is_live(now)).count(),
        "pendingApprovals": queued.iter().filter(|r| r.tier == Some(Tier::Approval)).count(),
        "systemState": ks.status.as_str(),
    })))
}

/// `GET /v1/owner/settings`: the effective config, secrets redacted.
pub(super) async fn settings(app: &Arc<App>) -> Result<Reply, ApiError> {
    let c = app.settings.get();
    let (channels, rules) = app.db.call(|s| Ok((s.list_channels()?, s.list_auto_stop_rules()?))).await?;
    let enabled = channels.iter().filter(|ch| ch.enabled).count();
    let n = &c.notifications;
    let s = &c.security;
    let channel_view = |ch: &waiaas_storage::ChannelRecord| -> Value {
        json!({"id": ch.id, "type": ch.channel_type.as_str(), "name": ch.name, "enabled": ch.enabled, "priority": ch.priority})
    };
    Ok(Reply::ok(json!({
        "daemon": {"hostname": c.daemon.hostname, "port": c.daemon.port, "logLevel": c.daemon.log_level.as_str(), "devMode": c.daemon.dev_mode},
        "security": {
            "jwtSecret": "[REDACTED]", "sessionTtl": s.session_ttl, "sessionAbsoluteLifetime": s.session_absolute_lifetime,
            "maxSessionsPerAgent": s.max_sessions_per_agent, "maxPendingTx": s.max_pending_tx,
            "nonceStorage": if s.nonce_storage_redb { "redb" } else { "memory" },
            "rateLimits": {"globalIpRpm": s.rate_limit_global_ip_rpm, "sessionRpm": s.rate_limit_session_rpm, "txRpm": s.rate_limit_tx_rpm},
        },
        "notifications": {
            "enabled": n.enabled, "minChannels": n.min_channels,
            "available": n.enabled && enabled as u64 >= n.min_channels,
            "channels": channels.iter().map(channel_view).collect::<Vec<_>>(),
        },
        "autoStop": {"rulesCount": rules.len(), "enabledRulesCount": rules.iter().filter(|r| r.enabled).count()},
        "oracle": {"provider": match c.oracle.provider {
            crate::runtime::config::OracleProvider::None => "none",
            crate::runtime::config::OracleProvider::Static => "static",
            crate::runtime::config::OracleProvider::CoinGecko => "coingecko",
        }},
        "ledger": {"transport": match c.ledger.transport {
            crate::runtime::config::LedgerTransport::Hid => "hid",
            crate::runtime::config::LedgerTransport::Tcp => "tcp",
        }},
    })))
}
