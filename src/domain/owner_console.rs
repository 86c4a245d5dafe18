//! The owner console's reads and its sign-in (11-owner-console.md §3.2, §4.2).
//!
//! A console token names an owner address and a chain, nothing else: which agents it may see is
//! worked out again on every request from the agents' *current* owners (`owner_scope`), so an
//! owner change takes effect on the next request and nothing about the scope is stored. Every
//! read here takes the [`Owner`] and filters by that scope; a row outside it is reported exactly
//! as an unknown one. The token never acts: writes are owner signatures checked by ownerAuth.

use std::collections::HashMap;

use uuid::Uuid;
use waiaas_storage::scope::Level;
use waiaas_storage::{
    AgentRecord, ApprovalRecord, AuditEvent, AuditEventType, Chain, ChannelRecord, OpCtx, PolicyRecord, StoreError,
    Tier, TransactionRecord, TxStatus, TxType,
};

use super::auth::jwt::Tokens;
use super::auth::owner::Owner;
use crate::base::clock::Clock;
use crate::base::error::{Coded, ErrorCode};
use crate::base::units::format_units;
use crate::runtime::{Db, Settings};

/// A read the scope answers as unknown, or a storage failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsoleError {
    #[error("Transaction {0} not found")]
    TxNotFound(String),
    #[error("Agent {0} not found")]
    AgentNotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for ConsoleError {
    fn code(&self) -> ErrorCode {
        match self {
            ConsoleError::TxNotFound(_) => ErrorCode::TxNotFound,
            ConsoleError::AgentNotFound(_) => ErrorCode::AgentNotFound,
            ConsoleError::Store(_) => ErrorCode::InternalError,
        }
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        match self {
            ConsoleError::TxNotFound(id) => crate::base::error::details([
                ("resource", serde_json::Value::from("transaction")),
                ("id", serde_json::Value::from(id.clone())),
            ]),
            ConsoleError::AgentNotFound(id) => crate::base::error::details([
                ("resource", serde_json::Value::from("agent")),
                ("id", serde_json::Value::from(id.clone())),
            ]),
            ConsoleError::Store(_) => serde_json::Map::new(),
        }
    }
}

/// An amount as an owner reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HumanAmount {
    /// `2.5 ETH`, `2.5 USDC`, or `2500000 base units of 0x5FbD...0aa3` without known decimals.
    pub(crate) formatted: String,
    pub(crate) symbol: String,
    pub(crate) decimals: Option<u8>,
}

/// One transaction row with what the console shows beside it.
#[derive(Debug, Clone)]
pub(crate) struct ConsoleRow {
    pub(crate) row: TransactionRecord,
    pub(crate) agent_name: String,
    /// The agent's EIP-155 chain id (EVM).
    pub(crate) chain_id: Option<u64>,
    pub(crate) amount: HumanAmount,
    /// No earlier CONFIRMED row of the agent went to `to_address`.
    pub(crate) new_recipient: bool,
    /// The approval summary an `approve_tx` / `reject_tx` message carries (04-auth.md §7.2).
    pub(crate) summary: String,
}

/// A row's detail: the row, its approval slot (APPROVAL tier) and a BATCH's instructions.
#[derive(Debug, Clone)]
pub(crate) struct ConsoleDetail {
    pub(crate) row: ConsoleRow,
    pub(crate) approval: Option<ApprovalRecord>,
    pub(crate) children: Vec<TransactionRecord>,
}

/// An agent's candidate policies: (policy, level, effective).
pub(crate) type AgentPolicies = (AgentRecord, Vec<(PolicyRecord, Level, bool)>);

/// The console's notification overview; channel configs never leave storage through here.
pub(crate) struct Channels {
    pub(crate) enabled: bool,
    pub(crate) min_channels: u64,
    pub(crate) channels: Vec<ChannelRecord>,
}

/// The console service.
pub(crate) struct OwnerConsole {
    db: Db,
    clock: Clock,
    settings: Settings,
    tokens: Tokens,
}

impl OwnerConsole {
    pub(crate) fn new(db: Db, clock: Clock, settings: Settings, tokens: Tokens) -> OwnerConsole {
        OwnerConsole { db, clock, settings, tokens }
    }

    /// After a verified `console_login` signature: a read-only token for 15 minutes and the
    /// `OWNER_CONSOLE_LOGIN` audit row. Returns the token and its expiry.
    pub(crate) async fn login(&self, owner: &Owner, ctx: OpCtx) -> Result<(String, u64), StoreError> {
        let (token, exp) = self.tokens.issue_owner(&owner.address, owner.chain.as_str(), ctx.now);
        let ev = AuditEvent::new(AuditEventType::OwnerConsoleLogin, ctx.actor.clone())
            .detail("address", owner.address.clone())
            .detail("chain", owner.chain.as_str())
            .detail("expiresAt", crate::base::clock::iso(exp));
        self.db.call(move |s| s.append_audit(ev, &ctx)).await?;
        Ok((token, exp))
    }

    /// The agents `owner` currently owns on its chain, terminated included.
    pub(crate) async fn agents(&self, owner: &Owner) -> Result<Vec<AgentRecord>, StoreError> {
        let (chain, address) = (owner.chain, owner.address.clone());
        self.db.call(move |s| s.owner_scope(chain, &address)).await
    }

    /// The scope, narrowed to `agent` when given (an agent outside it is unknown).
    async fn agents_filtered(&self, owner: &Owner, agent: Option<&str>) -> Result<Vec<AgentRecord>, ConsoleError> {
        let agents = self.agents(owner).await?;
        match agent {
            None => Ok(agents),
            Some(id) => {
                let found: Vec<AgentRecord> = agents.into_iter().filter(|a| a.id.to_string() == id).collect();
                if found.is_empty() {
                    return Err(ConsoleError::AgentNotFound(id.to_string()));
                }
                Ok(found)
            }
        }
    }

    /// QUEUED DELAY and APPROVAL rows in scope, soonest deadline first.
    pub(crate) async fn pending(&self, owner: &Owner) -> Result<Vec<ConsoleRow>, StoreError> {
        let agents = self.agents(owner).await?;
        let rows = self.db.call(|s| s.queued_rows(None)).await?;
        let mut rows: Vec<TransactionRecord> = rows
            .into_iter()
            .filter(|r| agents.iter().any(|a| a.id == r.agent_id))
            .filter(|r| r.status == TxStatus::Queued && matches!(r.tier, Some(Tier::Delay | Tier::Approval)))
            .collect();
        rows.sort_by_key(|r| (r.queue_expires_at.unwrap_or(u64::MAX), r.id));
        self.rows(&agents, rows).await
    }

    /// A page of top-level rows in scope (optionally one agent's, one status), newest first when
    /// `desc`; the rows and the next cursor.
    pub(crate) async fn transactions(
        &self,
        owner: &Owner,
        agent: Option<&str>,
        status: Option<TxStatus>,
        cursor: Option<Uuid>,
        limit: usize,
        desc: bool,
    ) -> Result<(Vec<ConsoleRow>, Option<Uuid>), ConsoleError> {
        let agents = self.agents_filtered(owner, agent).await?;
        let ids: Vec<Uuid> = agents.iter().map(|a| a.id).collect();
        let (rows, more) = self.db.call(move |s| s.list_transactions_of(&ids, status, cursor, limit, desc)).await?;
        let next = if more { rows.last().map(|r| r.id) } else { None };
        Ok((self.rows(&agents, rows).await?, next))
    }

    /// One top-level row in scope, with its approval slot and instructions.
    pub(crate) async fn transaction(&self, owner: &Owner, id: &str) -> Result<ConsoleDetail, ConsoleError> {
        let not_found = || ConsoleError::TxNotFound(id.to_string());
        let uuid = Uuid::parse_str(id).map_err(|_| not_found())?;
        let agents = self.agents(owner).await?;
        let found = self
            .db
            .call(move |s| {
                let Some(row) = s.get_transaction(uuid)?.filter(|r| r.is_top_level()) else { return Ok(None) };
                let approval = s.get_approval(uuid)?;
                let children = if row.tx_type == TxType::Batch { s.batch_children(uuid)? } else { Vec::new() };
                Ok(Some((row, approval, children)))
            })
            .await?;
        let (row, approval, children) =
            found.filter(|(r, _, _)| agents.iter().any(|a| a.id == r.agent_id)).ok_or_else(not_found)?;
        let row = self.rows(&agents, vec![row]).await?.pop().ok_or_else(not_found)?;
        Ok(ConsoleDetail { row, approval, children })
    }

    /// Each agent in scope (or `agent`) with its candidate policies, globals included.
    pub(crate) async fn policies(
        &self,
        owner: &Owner,
        agent: Option<&str>,
    ) -> Result<Vec<AgentPolicies>, ConsoleError> {
        let agents = self.agents_filtered(owner, agent).await?;
        let all = self.db.call(|s| s.list_policies()).await?;
        Ok(agents
            .into_iter()
            .map(|a| {
                let mut list: Vec<(PolicyRecord, Level, bool)> = crate::rules::policy::scope::for_agent(&a, &all)
                    .into_iter()
                    .map(|(p, l, e)| (p.clone(), l, e))
                    .collect();
                list.sort_by_key(|(p, l, _)| (*l, std::cmp::Reverse(p.priority), p.id));
                (a, list)
            })
            .collect())
    }

    /// The channels without their configs, and the notification settings.
    pub(crate) async fn channels(&self) -> Result<Channels, StoreError> {
        let mut channels = self.db.call(|s| s.list_channels()).await?;
        for c in &mut channels {
            c.config = serde_json::Value::Null;
        }
        channels.sort_by_key(|c| (std::cmp::Reverse(c.priority), c.id));
        let config = self.settings.get();
        Ok(Channels {
            enabled: config.notifications.enabled,
            min_channels: config.notifications.min_channels,
            channels,
        })
    }

    /// The daemon's time, which the page counts down against.
    pub(crate) fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Decorates rows of `agents` with the agent name, human amount, new-recipient flag and
    /// summary.
    async fn rows(&self, agents: &[AgentRecord], rows: Vec<TransactionRecord>) -> Result<Vec<ConsoleRow>, StoreError> {
        let config = self.settings.get();
        let policies = self.db.call(|s| s.list_policies()).await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut seen: HashMap<(Uuid, String, Uuid), bool> = HashMap::new();
        for row in rows {
            let Some(agent) = agents.iter().find(|a| a.id == row.agent_id) else { continue };
            let native = config.native_symbol(agent.chain, agent.network).to_string();
            let new_recipient = match (&row.to_address, row.tx_type) {
                (Some(to), TxType::Transfer | TxType::TokenTransfer) => {
                    let key = (row.agent_id, waiaas_storage::owner_key(row.chain, to), row.id);
                    match seen.get(&key) {
                        Some(v) => *v,
                        None => {
                            let (a, t, id) = (row.agent_id, to.clone(), row.id);
                            let v = !self.db.call(move |s| s.confirmed_to_before(a, &t, id)).await?;
                            seen.insert(key, v);
                            v
                        }
                    }
                }
                _ => false,
            };
            let tokens = crate::rules::policy::scope::allowed_tokens(agent, &policies);
            out.push(ConsoleRow {
                amount: human_amount(&row, &native, &tokens),
                summary: crate::rules::summary::approval_summary(&row, &native),
                agent_name: agent.name.clone(),
                chain_id: agent.chain_id,
                new_recipient,
                row,
            });
        }
        Ok(out)
    }
}

fn short(address: &str) -> String {
    if address.len() <= 13 {
        address.to_string()
    } else {
        format!("{}...{}", &address[..6], &address[address.len() - 4..])
    }
}

/// The amount of `row` in human units: the native coin for transfers and calls, the token's
/// units when its decimals are known (the request, or the agent's ALLOWED_TOKENS entry).
pub(crate) fn human_amount(
    row: &TransactionRecord,
    native: &str,
    tokens: &[crate::rules::policy::scope::AllowedToken],
) -> HumanAmount {
    let native_decimals = match row.chain {
        Chain::Solana => 9,
        Chain::Ethereum => 18,
    };
    match row.tx_type {
        TxType::TokenTransfer | TxType::Approve => {
            let mint = row.token_mint.clone().unwrap_or_default();
            let listed = tokens
                .iter()
                .find(|t| waiaas_storage::owner_key(row.chain, &t.mint) == waiaas_storage::owner_key(row.chain, &mint));
            let decimals =
                row.request["token"]["decimals"].as_u64().map(|d| d as u8).or(listed.and_then(|t| t.decimals));
            let symbol = listed.map(|t| t.symbol.clone()).filter(|s| !s.is_empty()).unwrap_or_else(|| short(&mint));
            let formatted = match decimals {
                Some(d) => format_units(row.amount, d, &symbol),
                None => format!("{} base units of {}", row.amount, short(&mint)),
            };
            HumanAmount { formatted, symbol, decimals }
        }
        TxType::Transfer => HumanAmount {
            formatted: format_units(row.amount, native_decimals, native),
            symbol: native.to_string(),
            decimals: Some(native_decimals),
        },
        TxType::ContractCall | TxType::Batch => HumanAmount {
            formatted: format_units(row.native_amount, native_decimals, native),
            symbol: native.to_string(),
            decimals: Some(native_decimals),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use waiaas_storage::{Amount, Network};

    use super::*;

    fn row(chain: Chain, kind: TxType, request: serde_json::Value) -> TransactionRecord {
        let a = AgentRecord::new(Uuid::nil(), "a".into(), chain, Network::Testnet, None, 0);
        TransactionRecord::pending(Uuid::nil(), &a, None, kind, request, 0)
    }

    #[test]
    fn amounts_read_in_human_units() {
        let mut t = row(Chain::Ethereum, TxType::Transfer, json!({}));
        t.amount = Amount::parse("10000000000000000000").unwrap();
        assert_eq!(human_amount(&t, "ETH", &[]).formatted, "10 ETH");
        let mut t = row(Chain::Solana, TxType::Transfer, json!({}));
        t.amount = Amount::from_u64(1_500_000_000);
        assert_eq!(human_amount(&t, "SOL", &[]).formatted, "1.5 SOL");
        let mut t = row(Chain::Ethereum, TxType::TokenTransfer, json!({"token": {"decimals": 6}}));
        t.amount = Amount::from_u64(2_500_000);
        t.token_mint = Some("0x5FbDB2315678afecb367f032d93F642f64180aa3".into());
        assert_eq!(human_amount(&t, "ETH", &[]).formatted, "2.5 0x5FbD...0aa3");
        let usdc = crate::rules::policy::scope::AllowedToken {
            mint: "0x5fbdb2315678afecb367f032d93f642f64180aa3".into(),
            symbol: "USDC".into(),
            decimals: Some(6),
        };
        assert_eq!(human_amount(&t, "ETH", std::slice::from_ref(&usdc)).formatted, "2.5 USDC");
        t.request = json!({});
        let h = human_amount(&t, "ETH", &[]);
        assert_eq!((h.formatted.as_str(), h.decimals), ("2500000 base units of 0x5FbD...0aa3", None));
        assert_eq!(human_amount(&t, "ETH", &[usdc]).formatted, "2.5 USDC");
    }
}
