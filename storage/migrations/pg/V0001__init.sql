-- kind: expand
-- The first schema (13-postgres-ha.md §4). One table per redb table, same names; each row keeps
-- its serde record in `record` and exposes what is indexed, constrained, summed or compared as a
-- STORED generated column, so a column can never disagree with its record. redb's index tables
-- become the B-tree indexes below; the referential rules stay in the operations (02-storage.md §4).
-- Two keys are Rust functions SQL cannot reproduce exactly (Unicode lowercasing of agent names,
-- EVM owner addresses lowercased by chain): `name_key` and `owner_key` are plain columns that the
-- one row writer of each table sets in the same statement as `record`.
-- redb's derived counters (rate_counts, autostop_daily, autostop_to) have no table here: an index
-- range over the rows answers the same windows, so there is no second copy to keep in step.

CREATE TABLE meta (
    key    text PRIMARY KEY,
    value  jsonb NOT NULL
);

CREATE TABLE agents (
    id          uuid PRIMARY KEY,
    record      jsonb NOT NULL,
    status      text GENERATED ALWAYS AS ((record->>'status')) STORED NOT NULL,
    name_key    text NOT NULL,
    public_key  text GENERATED ALWAYS AS ((record->>'public_key')) STORED NOT NULL,
    owner_key   text,
    chain       text GENERATED ALWAYS AS ((record->>'chain')) STORED NOT NULL,
    backend     text GENERATED ALWAYS AS ((record->>'backend')) STORED NOT NULL,
    CHECK (id = (record->>'id')::uuid)
);
CREATE UNIQUE INDEX agents_name_live ON agents (name_key) WHERE status <> 'TERMINATED';
CREATE UNIQUE INDEX agents_public_key_live ON agents (public_key) WHERE status <> 'TERMINATED';
CREATE INDEX agents_owner ON agents (chain, owner_key) WHERE owner_key IS NOT NULL;

CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    record      jsonb NOT NULL,
    agent_id    uuid GENERATED ALWAYS AS ((record->>'agent_id')::uuid) STORED NOT NULL,
    token_hash  text GENERATED ALWAYS AS ((record->>'token_hash')) STORED NOT NULL,
    expires_at  bigint GENERATED ALWAYS AS ((record->>'expires_at')::bigint) STORED NOT NULL,
    revoked_at  bigint GENERATED ALWAYS AS ((record->>'revoked_at')::bigint) STORED,
    CHECK (id = (record->>'id')::uuid)
);
CREATE UNIQUE INDEX sessions_token_hash ON sessions (token_hash);
CREATE INDEX sessions_agent ON sessions (agent_id, id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE transactions (
    id                uuid PRIMARY KEY,
    record            jsonb NOT NULL,
    agent_id          uuid GENERATED ALWAYS AS ((record->>'agent_id')::uuid) STORED NOT NULL,
    session_id        uuid GENERATED ALWAYS AS ((record->>'session_id')::uuid) STORED,
    parent_id         uuid GENERATED ALWAYS AS ((record->>'parent_id')::uuid) STORED,
    batch_index       bigint GENERATED ALWAYS AS ((record->>'batch_index')::bigint) STORED,
    status            text GENERATED ALWAYS AS ((record->>'status')) STORED NOT NULL,
    tier              text GENERATED ALWAYS AS ((record->>'tier')) STORED,
    tx_hash           text GENERATED ALWAYS AS ((record->>'tx_hash')) STORED,
    queue_expires_at  bigint GENERATED ALWAYS AS ((record->>'queue_expires_at')::bigint) STORED,
    created_at        bigint GENERATED ALWAYS AS ((record->>'created_at')::bigint) STORED NOT NULL,
    amount            numeric(78,0) GENERATED ALWAYS AS ((record->>'amount')::numeric(78,0)) STORED NOT NULL
                      CHECK (amount >= 0),
    native_amount     numeric(78,0) GENERATED ALWAYS AS ((record->>'native_amount')::numeric(78,0)) STORED NOT NULL
                      CHECK (native_amount >= 0),
    reserved_amount   numeric(78,0) GENERATED ALWAYS AS ((record->>'reserved_amount')::numeric(78,0)) STORED
                      CHECK (reserved_amount >= 0),
    CHECK (id = (record->>'id')::uuid)
);
CREATE UNIQUE INDEX transactions_tx_hash ON transactions (tx_hash) WHERE parent_id IS NULL AND tx_hash IS NOT NULL;
CREATE UNIQUE INDEX transactions_batch_child ON transactions (parent_id, batch_index) WHERE parent_id IS NOT NULL;
CREATE INDEX transactions_agent ON transactions (agent_id, id);
CREATE INDEX transactions_agent_created ON transactions (agent_id, created_at) WHERE parent_id IS NULL;
CREATE INDEX transactions_session ON transactions (session_id, id) WHERE session_id IS NOT NULL;
CREATE INDEX transactions_active ON transactions (agent_id, id)
    WHERE status IN ('PENDING', 'QUEUED', 'EXECUTING', 'SUBMITTED');
CREATE INDEX transactions_queue ON transactions (tier, queue_expires_at, id) WHERE status = 'QUEUED';

CREATE TABLE idempotency (
    agent_id    uuid NOT NULL,
    key         text NOT NULL,
    record      jsonb NOT NULL,
    created_at  bigint GENERATED ALWAYS AS ((record->>'created_at')::bigint) STORED NOT NULL,
    PRIMARY KEY (agent_id, key)
);
CREATE INDEX idempotency_time ON idempotency (created_at);

CREATE TABLE pending_approvals (
    tx_id       uuid PRIMARY KEY,
    record      jsonb NOT NULL,
    agent_id    uuid GENERATED ALWAYS AS ((record->>'agent_id')::uuid) STORED NOT NULL,
    expires_at  bigint GENERATED ALWAYS AS ((record->>'expires_at')::bigint) STORED NOT NULL
);

CREATE TABLE policies (
    id        uuid PRIMARY KEY,
    record    jsonb NOT NULL,
    agent_id  uuid GENERATED ALWAYS AS ((record->>'agent_id')::uuid) STORED,
    CHECK (id = (record->>'id')::uuid)
);
CREATE INDEX policies_scope ON policies (agent_id, id);

CREATE TABLE auto_stop_rules (
    id         uuid PRIMARY KEY,
    record     jsonb NOT NULL,
    scope      uuid GENERATED ALWAYS AS (coalesce((record->>'agent_id')::uuid, '00000000-0000-0000-0000-000000000000'::uuid)) STORED NOT NULL,
    rule_type  text GENERATED ALWAYS AS ((record->>'rule_type')) STORED NOT NULL,
    CHECK (id = (record->>'id')::uuid),
    CONSTRAINT auto_stop_rules_scope_type UNIQUE (scope, rule_type)
);

CREATE TABLE audit_log (
    seq         bigint PRIMARY KEY CHECK (seq >= 1),
    record      jsonb NOT NULL,
    timestamp   bigint GENERATED ALWAYS AS ((record->>'timestamp')::bigint) STORED NOT NULL,
    event_type  text GENERATED ALWAYS AS ((record->>'event_type')) STORED NOT NULL,
    agent_id    uuid GENERATED ALWAYS AS ((record->>'agent_id')::uuid) STORED,
    prev_hash   text GENERATED ALWAYS AS ((record->>'prev_hash')) STORED NOT NULL,
    hash        text GENERATED ALWAYS AS ((record->>'hash')) STORED NOT NULL,
    CHECK (seq = (record->>'seq')::bigint),
    CONSTRAINT audit_log_no_fork UNIQUE (prev_hash)
);
CREATE INDEX audit_log_agent ON audit_log (agent_id, seq) WHERE agent_id IS NOT NULL;
CREATE INDEX audit_log_event ON audit_log (event_type, seq);
CREATE INDEX audit_log_time ON audit_log (timestamp, seq);

-- The chain's head in one row: the append takes it FOR UPDATE, so `seq` stays gap-free.
CREATE TABLE audit_head (
    id    smallint PRIMARY KEY CHECK (id = 1),
    seq   bigint NOT NULL CHECK (seq >= 0),
    hash  text NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, repeat('0', 64));

CREATE TABLE notification_channels (
    id      uuid PRIMARY KEY,
    record  jsonb NOT NULL,
    CHECK (id = (record->>'id')::uuid)
);

CREATE TABLE notification_log (
    id            uuid PRIMARY KEY,
    record        jsonb NOT NULL,
    event         text GENERATED ALWAYS AS ((record->>'event')) STORED NOT NULL,
    reference_id  text GENERATED ALWAYS AS ((record->>'reference_id')) STORED,
    status        text GENERATED ALWAYS AS ((record->>'status')) STORED NOT NULL,
    sent_at       bigint GENERATED ALWAYS AS ((record->>'sent_at')::bigint) STORED NOT NULL,
    CHECK (id = (record->>'id')::uuid)
);
CREATE INDEX notification_log_time ON notification_log (sent_at);

-- "Delivered once" outlives the log rows that proved it (pruning keeps it).
CREATE TABLE notification_delivered (
    event         text NOT NULL,
    reference_id  text NOT NULL,
    log_id        uuid NOT NULL,
    PRIMARY KEY (event, reference_id)
);

CREATE TABLE wallet_connections (
    id         uuid PRIMARY KEY,
    record     jsonb NOT NULL,
    owner_key  text NOT NULL,
    chain      text GENERATED ALWAYS AS ((record->>'chain')) STORED NOT NULL,
    CHECK (id = (record->>'id')::uuid),
    CONSTRAINT wallet_connections_owner_chain UNIQUE (owner_key, chain)
);

-- SIWE nonces: a PK insert issues one, `DELETE … RETURNING` consumes it once.
CREATE TABLE nonces (
    nonce       text PRIMARY KEY,
    expires_at  bigint NOT NULL
);
CREATE INDEX nonces_expiry ON nonces (expires_at);




CREATE TABLE system_state (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  bigint NOT NULL
);

-- master.json and the key files (03-keys.md §4.1), exact bytes: `keystore/` stays empty.
CREATE TABLE keystore_master (
    id    smallint PRIMARY KEY CHECK (id = 1),
    file  bytea NOT NULL
);
CREATE TABLE keys (
    agent_id  uuid PRIMARY KEY,
    file      bytea NOT NULL
);

-- A Ledger agent signs only on the replica whose host has the device.
CREATE TABLE ledger_pins (
    agent_id    uuid PRIMARY KEY,
    replica_id  text NOT NULL
);

-- EVM nonces handed out by the database (§5): a claim per (address, nonce), at most one per
-- (transaction, slot), so one logical transaction can never hold two nonces for one slot.
CREATE TABLE evm_nonces (
    chain_id  bigint NOT NULL,
    address   text NOT NULL,
    next      bigint NOT NULL CHECK (next >= 0),
    PRIMARY KEY (chain_id, address)
);
CREATE TABLE evm_nonce_claims (
    chain_id  bigint NOT NULL,
    address   text NOT NULL,
    nonce     bigint NOT NULL CHECK (nonce >= 0),
    tx_id     uuid NOT NULL,
    slot      text NOT NULL CHECK (slot IN ('main', 'reset')),
    PRIMARY KEY (chain_id, address, nonce),
    CONSTRAINT evm_nonce_claims_tx_slot UNIQUE (tx_id, slot)
);

-- Leadership (§6): the epoch every fenced write compares, and the replicas seen so far.
CREATE TABLE leader (
    id          smallint PRIMARY KEY CHECK (id = 1),
    epoch       bigint NOT NULL CHECK (epoch >= 0),
    replica_id  text,
    since       bigint
);
INSERT INTO leader (id, epoch) VALUES (1, 0);

CREATE TABLE replicas (
    replica_id  text PRIMARY KEY,
    boot_id     uuid NOT NULL,
    host        text NOT NULL,
    pid         bigint NOT NULL,
    version     text NOT NULL,
    started_at  bigint NOT NULL
);
