//! Writes `fixtures/db/v<SCHEMA_VERSION>.redb`: a small database holding rows of every kind,
//! written through the public API of this schema version. Each released schema version keeps
//! its fixture forever; `every_released_schema_fixture_opens_and_reads` upgrades each one.
//!
//! Run: `cargo run -p waiaas-storage --example make_fixture -- fixtures/db`

use std::path::PathBuf;

use serde_json::json;
use uuid::Uuid;
use waiaas_storage::*;

fn main() -> Result<(), StoreError> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fixtures/db".into()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("v{SCHEMA_VERSION}.redb"));
    let _ = std::fs::remove_file(&path);
    let now = 1_750_000_000;
    let id = |n: u16| Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, now, u32::from(n)));
    let ctx = OpCtx::new("admin", now);
    let store = Store::create(&path, now)?;
    store.seed_initial(
        &InitSeed {
            jwt_secret: "11".repeat(32),
            policies: vec![PolicyRecord {
                id: id(1),
                agent_id: None,
                chain: Some(Chain::Solana),
                policy_type: PolicyType::SpendingLimit,
                rules: json!({"instant_max": "1000000000", "notify_max": "10000000000", "delay_max": "50000000000", "delay_seconds": 300, "approval_timeout": 3600}),
                priority: 0,
                enabled: true,
                created_at: now,
                updated_at: now,
            }],
            auto_stop_rules: vec![AutoStopRuleRecord {
                id: id(2),
                agent_id: None,
                rule_type: AutoStopRuleType::ConsecutiveFailures,
                config: json!({"threshold": 3}),
                action: AutoStopAction::SuspendAgent,
                enabled: true,
                created_at: now,
                updated_at: now,
            }],
        },
        now,
    )?;
    let sol = AgentRecord {
        id: id(3),
        name: "fixture-sol".into(),
        chain: Chain::Solana,
        network: Network::Devnet,
        chain_id: None,
        // Ledger-backed, so the database alone is a startable installation (a keystore agent
        // would need its key file next to it).
        backend: Backend::Ledger,
        derivation_path: Some("44'/501'/0'/0'".into()),
        public_key: "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T".into(),
        status: AgentStatus::Active,
        owner_address: Some("9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM".into()),
        owner_verified: false,
        owner_verified_at: None,
        suspended_at: None,
        suspension_reason: None,
        terminated_at: None,
        created_at: now,
        updated_at: now,
    };
    store.insert_agent(&sol, &ctx)?;
    let evm = AgentRecord {
        id: id(4),
        name: "fixture-evm".into(),
        chain: Chain::Ethereum,
        network: Network::Testnet,
        chain_id: Some(31337),
        backend: Backend::Ledger,
        derivation_path: Some("44'/60'/0'/0/0".into()),
        public_key: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".into(),
        owner_address: None,
        ..sol.clone()
    };
    store.insert_agent(&evm, &ctx)?;
    let session = SessionRecord {
        id: id(5),
        agent_id: sol.id,
        token_hash: Hash32([7; 32]),
        constraints: SessionConstraints {
            max_amount_per_tx: Some(Amount::from_u64(5_000_000_000)),
            max_total_amount: None,
            max_transactions: Some(100),
            allowed_operations: Some(vec![AllowedOperation::Transfer, AllowedOperation::Batch]),
            allowed_destinations: None,
            allowed_tokens: None,
            allowed_contracts: None,
            allowed_spenders: None,
            expires_in: 86_400,
            max_renewals: 30,
            renewal_reject_window: 3600,
        },
        usage: UsageStats::default(),
        expires_at: now + 86_400,
        absolute_expires_at: now + 30 * 86_400,
        renewal_count: 0,
        max_renewals: 30,
        last_renewed_at: None,
        revoked_at: None,
        revoke_trigger: None,
        created_at: now,
    };
    store.create_session(&session, 5, &ctx)?;
    let tx = |n: u16, tx_type: TxType, parent: Option<(Uuid, u32)>| TransactionRecord {
        id: id(n),
        agent_id: sol.id,
        session_id: Some(session.id),
        parent_id: parent.map(|p| p.0),
        batch_index: parent.map(|p| p.1),
        chain: Chain::Solana,
        network: Network::Devnet,
        tx_type,
        status: TxStatus::Pending,
        tier: None,
        request: json!({"type": tx_type, "to": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "amount": "1000"}),
        amount: Amount::from_u64(1000),
        native_amount: Amount::from_u64(1000),
        to_address: Some("9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM".into()),
        token_mint: None,
        contract_address: None,
        method_signature: None,
        spender_address: None,
        approved_amount: None,
        tx_hash: None,
        reserved_amount: None,
        queued_at: None,
        queue_expires_at: None,
        executed_at: None,
        idempotency_key: Some("fixture-key".into()),
        error: None,
        metadata: Default::default(),
        created_at: now,
        updated_at: now,
    };
    let parent = tx(6, TxType::Batch, None);
    let children = [tx(7, TxType::Transfer, Some((parent.id, 0))), tx(8, TxType::Transfer, Some((parent.id, 1)))];
    let claim = IdempotencyClaim { key: "fixture-key".into(), request_hash: Hash32([1; 32]) };
    store.record_request(&parent, &children, Some(&claim), &ctx)?;
    store.decide_transaction(parent.id, &ctx, |_| {
        Ok(DecisionOutcome::Queue {
            tier: Tier::Delay,
            queue_expires_at: Some(now + 300),
            decision: json!({"tier": "DELAY", "delaySeconds": 300}),
            approval_owner: None,
            audits: vec![AuditEvent::new(waiaas_storage::AuditEventType::TxQueued, "system").tx(parent.id)],
        })
    })?;
    // An INSTANT transfer that ran to CONFIRMED (v3: it counts toward AutoStop's counters).
    let mut done = tx(10, TxType::Transfer, None);
    done.idempotency_key = None;
    store.record_request(&done, &[], None, &ctx)?;
    store.decide_transaction(done.id, &ctx, |_| {
        Ok(DecisionOutcome::Queue {
            tier: Tier::Instant,
            queue_expires_at: None,
            decision: json!({"tier": "INSTANT"}),
            approval_owner: None,
            audits: vec![AuditEvent::new(waiaas_storage::AuditEventType::TxQueued, "system").tx(done.id)],
        })
    })?;
    store.claim_for_execution(done.id, &ctx)?;
    store.checkpoint(done.id, Checkpoint::signed("AQID", "5fixtureSignature"), now)?;
    let broadcast = Broadcast { hash: "5fixtureSignature".into(), uncertain: false, metadata: Default::default() };
    store.record_broadcast(
        done.id,
        broadcast,
        ChainOutcome::Confirmed { fee: Some(Amount::from_u64(5000)), block: 1 },
        &ctx,
    )?;
    store.sync()?;
    store.insert_nonce("00112233445566778899aabbccddeeff", now + 300)?;
    store.connect_wallet(
        &WalletConnectionRecord {
            id: id(9),
            owner_address: "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM".into(),
            chain: Chain::Solana,
            wc_session_topic: None,
            wc_pairing_topic: None,
            connected_at: now,
            last_active_at: now,
            metadata: json!({}),
        },
        &ctx,
    )?;
    drop(store);
    println!("wrote {}", path.display());
    Ok(())
}
