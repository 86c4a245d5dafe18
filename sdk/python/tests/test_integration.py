"""Integration tests against a real daemon (started by the Rust harness `tests/clients.rs`, which
sets ``WAIAAS_IT_*``): an agent sends on anvil and surfnet-local and waits for CONFIRMED, an admin
sets an agent up, and an owner approves an APPROVAL-tier transaction signing with eth-account.
The chain is the witness: balances are read from the nodes' own RPC, not from the daemon."""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import pytest

from waiaas import WAIaaSAdminClient, WAIaaSClient, WAIaaSError, WAIaaSOwnerClient
from waiaas.models import TxStatus

BASE = os.environ.get("WAIAAS_IT_BASE_URL")
pytestmark = pytest.mark.skipif(not BASE, reason="needs the daemon started by tests/clients.rs")

# anvil's account 0 (the owner) and a fresh recipient.
OWNER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
OWNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
ETH = 10**18


def rpc(url: str, method: str, params: list) -> object:
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=30).json()
    assert "error" not in r, r
    return r["result"]


def eth_balance(addr: str) -> int:
    return int(rpc(os.environ["WAIAAS_IT_ANVIL"], "eth_getBalance", [addr, "latest"]), 16)


def admin() -> WAIaaSAdminClient:
    return WAIaaSAdminClient(BASE, os.environ["WAIAAS_IT_MASTER_PASSWORD"])


async def test_an_admin_sets_up_an_agent_and_the_agent_sends_on_anvil():
    async with admin() as a:
        agent = await a.create_agent(chain="ethereum", name="sdk-evm")
        assert agent.chain == "ethereum" and agent.status == "ACTIVE"
        rpc(os.environ["WAIAAS_IT_ANVIL"], "anvil_setBalance", [agent.address, hex(5 * ETH)])
        policy = await a.create_policy("SPENDING_LIMIT", {"instant_max": str(ETH), "notify_max": str(ETH),
                                                          "delay_max": str(2 * ETH)}, agent_id=agent.id, priority=5)
        assert policy.rules["instant_max"] == str(ETH) and policy.agent_id == agent.id
        session = await a.create_session(agent.id, expires_in=3600)
        assert session.token and session.token.startswith("wai_sess_")
    recipient = "0x00000000000000000000000000000000005d4a11"
    async with WAIaaSClient(BASE, session_token=session.token) as w:
        assert (await w.get_address()).address == agent.address
        assert int((await w.get_balance()).balance) == 5 * ETH
        tx = await w.send_token(recipient, "123456789")
        done = await w.wait_for_transaction(tx.tx_id, timeout=60, interval=0.5)
        assert done.status is TxStatus.CONFIRMED and done.tx_hash
        assert eth_balance(recipient) == 123456789
        listed = await w.list_transactions(limit=5)
        assert listed.transactions[0].tx_id == tx.tx_id
        info = await w.get_session()
        assert info.agent_id == agent.id
        # A refusal is a typed error, not retried.
        with pytest.raises(WAIaaSError) as e:
            await w.send_token("not-an-address", "1")
        assert (e.value.code, e.value.status, e.value.retryable) == ("VALIDATION_ERROR", 400, False)


async def test_an_owner_approves_an_approval_tier_transaction_with_eth_account():
    from eth_account import Account
    from eth_account.messages import encode_defunct

    async def sign(message: str) -> str:
        signed = Account.sign_message(encode_defunct(text=message), private_key=OWNER_KEY)
        return "0x" + signed.signature.hex().removeprefix("0x")

    async with admin() as a:
        agent = await a.create_agent(chain="ethereum", name="sdk-owned", owner=OWNER)
        rpc(os.environ["WAIAAS_IT_ANVIL"], "anvil_setBalance", [agent.address, hex(5 * ETH)])
        await a.create_policy("SPENDING_LIMIT", {"instant_max": "0", "notify_max": "0", "delay_max": "0",
                                                 "approval_timeout": 3600}, agent_id=agent.id, priority=5)
        session = await a.create_session(agent.id)
        async with WAIaaSOwnerClient(BASE, address=OWNER, chain="ethereum", sign_message=sign) as owner:
            verified = await owner.verify_owner(agent.id, chain_id="31337")
            assert verified["ownerState"] == "LOCKED", verified
            recipient = "0x00000000000000000000000000000000000a9900"
            async with WAIaaSClient(BASE, session_token=session.token) as w:
                tx = await w.send_token(recipient, "777")
                assert (tx.status, tx.tier.value) == (TxStatus.QUEUED, "APPROVAL")
                pending = [p for p in await a.list_pending_approvals(agent.id) if p["txId"] == tx.tx_id]
                assert len(pending) == 1
                approved = await owner.approve_transaction(tx.tx_id, chain_id="31337", summary=pending[0]["summary"])
                assert approved["status"] in ("EXECUTING", "APPROVED", "SUBMITTED", "CONFIRMED"), approved
                done = await w.wait_for_transaction(tx.tx_id, timeout=60, interval=0.5)
                assert done.status is TxStatus.CONFIRMED
                assert eth_balance(recipient) == 777
                # The same approval again: the transaction is no longer waiting.
                with pytest.raises(WAIaaSError) as e:
                    await owner.approve_transaction(tx.tx_id, chain_id="31337", summary=pending[0]["summary"])
                assert e.value.status in (404, 409)


async def test_an_agent_sends_sol_on_surfnet_and_waits_for_confirmed():
    node = os.environ["WAIAAS_IT_SURFNET"]
    async with admin() as a:
        agent = await a.create_agent(chain="solana", name="sdk-sol")
        rpc(node, "requestAirdrop", [agent.address, 2_000_000_000])
        for _ in range(100):
            if rpc(node, "getBalance", [agent.address])["value"] >= 2_000_000_000:
                break
            await asyncio.sleep(0.05)
        session = await a.create_session(agent.id)
    recipient = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"
    before = rpc(node, "getBalance", [recipient])["value"]
    async with WAIaaSClient(BASE, session_token=session.token) as w:
        tx = await w.send_token(recipient, "1000000")
        done = await w.wait_for_transaction(tx.tx_id, timeout=60, interval=0.5)
        assert done.status is TxStatus.CONFIRMED
    assert rpc(node, "getBalance", [recipient])["value"] - before == 1_000_000


async def test_every_sdk_send_body_conforms_to_the_daemons_document():
    """The SDK's request models are checked against the daemon's own `/doc` (the send-body schema
    the daemon builds from its transaction-type table): every body the SDK's send methods put on
    the wire validates, so a field the API does not have (e.g. `token.address` for `token.mint`)
    fails here rather than on an agent's first token transfer."""
    import jsonschema

    doc = httpx.get(f"{BASE}/doc", timeout=30).json()
    schema = doc["paths"]["/v1/transactions/send"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    sent: list[dict] = []

    def capture(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(400, json={"code": "VALIDATION_ERROR", "message": "captured", "retryable": False})

    client = WAIaaSClient("http://127.0.0.1:9", "wai_sess_x.y.z", max_retries=0, transport=httpx.MockTransport(capture))
    evm, sol = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"
    calls = [
        client.send_token(evm, "1"),
        client.send_token(evm, "5", token_mint=evm, token_decimals=6, memo="m", priority="high"),
        client.contract_call(evm, calldata="0xa9059cbb", value="0"),
        client.contract_call(sol, instruction_data="AQ==", accounts=[{"pubkey": sol, "isSigner": False, "isWritable": True}]),
        client.approve_token(evm, evm, "0", token_decimals=18),
        client.batch_transaction([{"to": sol, "amount": "1"}, {"to": sol, "amount": "2"}], memo="b"),
    ]
    for call in calls:
        with pytest.raises(WAIaaSError):
            await call
    assert len(sent) == len(calls)
    for body in sent:
        jsonschema.validate(body, schema)
    print(f"sdk-vs-doc: {len(sent)} send bodies validate against /doc")
