"""Unit tests of the SDK's transport rules against ``httpx.MockTransport`` (no daemon)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from waiaas import WAIaaSAdminClient, WAIaaSClient, WAIaaSError, build_owner_message, owner_payload
from waiaas.models import Transaction, TxStatus

ENVELOPE_503 = {"code": "CHAIN_UNAVAILABLE", "message": "node down", "retryable": True, "requestId": "req_1"}


def token(sid: str = "11111111-1111-4111-8111-111111111111") -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"sid": sid, "iat": 1, "exp": 2}).encode()).decode().rstrip("=")
    return f"wai_sess_eyJhbGciOiJIUzI1NiJ9.{claims}.sig"


def client(handler, **kw) -> WAIaaSClient:
    c = WAIaaSClient("http://daemon", session_token=token(), transport=httpx.MockTransport(handler), **kw)
    c._http._sleep = _no_sleep
    return c


slept: list[float] = []


async def _no_sleep(s: float) -> None:
    slept.append(s)


async def test_a_send_is_retried_with_one_idempotency_key_and_backoff():
    slept.clear()
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers.get("Idempotency-Key"))
        if len(seen) < 3:
            return httpx.Response(503, json=ENVELOPE_503)
        return httpx.Response(200, json={"transactionId": "t1", "status": "CONFIRMED", "tier": "INSTANT", "txHash": "0xab"})

    async with client(handler) as c:
        tx = await c.send_token("0xbeef", "1000")
    assert tx.status is TxStatus.CONFIRMED and tx.tx_id == "t1" and tx.tx_hash == "0xab"
    assert len(seen) == 3 and len(set(seen)) == 1 and seen[0], "one key across the retries"
    assert slept == [1.0, 2.0]


async def test_a_policy_denial_is_not_retried_and_maps_every_envelope_field():
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return httpx.Response(
            403,
            json={"code": "POLICY_DENIED", "message": "over the limit", "retryable": False, "hint": "See details.reason.",
                  "details": {"reason": "SPENDING_LIMIT"}, "requestId": "req_9"},
        )

    async with client(handler) as c:
        with pytest.raises(WAIaaSError) as e:
            await c.send_token("0xbeef", "1")
    assert len(calls) == 1
    err = e.value
    assert (err.code, err.status, err.retryable, err.details, err.request_id, err.hint) == (
        "POLICY_DENIED", 403, False, {"reason": "SPENDING_LIMIT"}, "req_9", "See details.reason.")


async def test_retry_after_is_honoured_and_retries_stop_at_max():
    slept.clear()

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "7"}, json={"code": "RATE_LIMITED", "message": "slow", "retryable": True})

    async with client(handler, max_retries=2) as c:
        with pytest.raises(WAIaaSError) as e:
            await c.get_balance()
    assert e.value.code == "RATE_LIMITED" and slept == [7.0, 7.0]


async def test_a_bodyless_gateway_error_is_retryable_and_a_connection_error_is_typed():
    slept.clear()
    n = []

    def handler(req: httpx.Request) -> httpx.Response:
        n.append(1)
        return httpx.Response(502) if len(n) == 1 else httpx.Response(200, json={"agentId": "a", "chain": "ethereum",
                                                                            "network": "testnet", "address": "0x1"})

    async with client(handler) as c:
        assert (await c.get_address()).address == "0x1"

    def refuse(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with client(refuse, max_retries=1) as c:
        with pytest.raises(WAIaaSError) as e:
            await c.get_address()
    assert (e.value.code, e.value.retryable) == ("CONNECTION_ERROR", True)


async def test_models_read_camel_case_and_requests_are_camel_case():
    bodies = []

    def handler(req: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(req.content) if req.content else None)
        return httpx.Response(201, json={"id": "p1", "agentId": "a1", "type": "SPENDING_LIMIT", "rules": {"instant_max": "5"},
                                         "priority": 3, "enabled": True, "createdAt": "2026-01-01T00:00:00Z"})

    async with WAIaaSAdminClient("http://daemon", "pw", transport=httpx.MockTransport(handler)) as a:
        p = await a.create_policy("SPENDING_LIMIT", {"instant_max": "5"}, agent_id="a1", priority=3)
    assert bodies[0] == {"type": "SPENDING_LIMIT", "rules": {"instant_max": "5"}, "agentId": "a1", "priority": 3}
    assert p.agent_id == "a1" and p.rules == {"instant_max": "5"}, "rules keys are passed through unchanged"
    assert p.model_extra["createdAt"] == "2026-01-01T00:00:00Z", "unknown fields are kept"
    t = Transaction.model_validate({"id": "x", "status": "QUEUED", "tier": "APPROVAL", "toAddress": "0x2",
                                    "expiresAt": "2026-01-01T00:05:00Z"})
    assert t.to_address == "0x2" and t.expires_at.minute == 5 and not t.is_terminal
    assert t.wire()["toAddress"] == "0x2"


async def test_token_transfers_and_sessions_use_the_api_field_names():
    reqs = []

    def handler(req: httpx.Request) -> httpx.Response:
        reqs.append(req)
        if req.method == "PUT":
            return httpx.Response(200, json={"sessionId": "s", "token": token("22222222-2222-4222-8222-222222222222")})
        return httpx.Response(200, json={"transactionId": "t", "status": "PENDING"})

    async with client(handler) as c:
        await c.send_token("to", "5", token_mint="mint", token_decimals=6, memo="m")
        await c.renew_session()
        await c.renew_session()
    assert json.loads(reqs[0].content) == {"to": "to", "amount": "5", "memo": "m", "type": "TOKEN_TRANSFER",
                                           "token": {"mint": "mint", "decimals": 6}}
    assert reqs[1].url.path == "/v1/sessions/11111111-1111-4111-8111-111111111111/renew"
    assert reqs[2].url.path == "/v1/sessions/22222222-2222-4222-8222-222222222222/renew", "the new token is used"
    assert reqs[1].headers.get("Idempotency-Key") is None


def test_the_owner_message_is_the_spec_text():
    from datetime import datetime, timezone

    m = build_owner_message(domain="127.0.0.1:3100", chain="ethereum", address="0xAb", action="approve_tx",
                            target="tx:1", chain_id="31337", nonce="n1",
                            issued_at=datetime(2026, 1, 1, tzinfo=timezone.utc), summary="send 1 ETH")
    assert m.split("\n") == [
        "127.0.0.1:3100 wants you to sign in with your Ethereum account:", "0xAb", "",
        "WAIaaS Owner Action: approve_tx tx:1 (send 1 ETH)", "", "URI: http://127.0.0.1:3100", "Version: 1",
        "Chain ID: 31337", "Nonce: n1", "Issued At: 2026-01-01T00:00:00Z", "Expiration Time: 2026-01-01T00:05:00Z",
        "Request ID: tx:1"]
    p = json.loads(base64.urlsafe_b64decode(owner_payload(chain="ethereum", address="0xAb", action="approve_tx",
                                                         nonce="n1", message=m, signature="0xsig") + "=="))
    assert p["timestamp"] == "2026-01-01T00:00:00Z" and p["signature"] == "0xsig" and p["message"] == m


async def test_adapter_not_available_is_retried_three_times_with_one_key():
    """ACC-247: a 503 ADAPTER_NOT_AVAILABLE is retried up to 3 times, all with the same key."""
    slept.clear()
    keys = []

    def handler(req: httpx.Request) -> httpx.Response:
        keys.append(req.headers.get("Idempotency-Key"))
        return httpx.Response(503, json={"code": "ADAPTER_NOT_AVAILABLE", "message": "no adapter", "retryable": True})

    async with client(handler) as c:
        with pytest.raises(WAIaaSError) as e:
            await c.send_token("0xbeef", "1", idempotency_key="k-1")
    assert (e.value.code, e.value.status, len(keys), set(keys)) == ("ADAPTER_NOT_AVAILABLE", 503, 4, {"k-1"})
    assert slept == [1.0, 2.0, 4.0]
