"""``WAIaaSOwnerClient``: the human owner's signed actions (04-auth.md §7).

The client builds the exact message the daemon expects, has it signed by the caller's
``sign_message`` callback (a hardware wallet, eth-account, a Solana keypair…) and sends the
base64url payload as the bearer credential. It never holds a key.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Optional
from urllib.parse import urlparse

import httpx

from ._http import DEFAULT_BASE_URL, Transport

SignMessage = Callable[[str], Awaitable[str]]


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_owner_message(
    *,
    domain: str,
    chain: str,
    address: str,
    action: str,
    target: str,
    chain_id: str,
    nonce: str,
    issued_at: datetime,
    summary: Optional[str] = None,
    lifetime: int = 300,
) -> str:
    """The EIP-4361 / Sign-In-With-Solana message of 04-auth.md §7.2, byte for byte."""
    account = "Solana" if chain == "solana" else "Ethereum"
    statement = f"WAIaaS Owner Action: {action} {target}" + (f" ({summary})" if summary else "")
    return "\n".join(
        [
            f"{domain} wants you to sign in with your {account} account:",
            address,
            "",
            statement,
            "",
            f"URI: http://{domain}",
            "Version: 1",
            f"Chain ID: {chain_id}",
            f"Nonce: {nonce}",
            f"Issued At: {_iso(issued_at)}",
            f"Expiration Time: {_iso(issued_at + timedelta(seconds=lifetime))}",
            f"Request ID: {target}",
        ]
    )


def owner_payload(*, chain: str, address: str, action: str, nonce: str, message: str, signature: str) -> str:
    """The base64url bearer credential of 04-auth.md §7.1."""
    issued = next(line for line in message.split("\n") if line.startswith("Issued At: "))[len("Issued At: ") :]
    body = {
        "chain": chain,
        "address": address,
        "action": action,
        "nonce": nonce,
        "timestamp": issued,
        "message": message,
        "signature": signature,
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class WAIaaSOwnerClient:
    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        address: str = "",
        chain: str = "ethereum",
        sign_message: Optional[SignMessage] = None,
        timeout: float = 180.0,
        max_retries: int = 3,
        *,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        if sign_message is None:
            raise ValueError("sign_message (an async str -> str callable) is required")
        self.address = address
        self.chain = chain
        self._sign = sign_message
        self._domain = urlparse(base_url).netloc
        self._http = Transport(base_url, {}, timeout, max_retries, transport)

    async def __aenter__(self) -> "WAIaaSOwnerClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.close()

    async def _daemon_time(self) -> datetime:
        # The daemon's clock, not ours: the message must be issued within its window.
        health = await self._http.request("GET", "/health")
        return datetime.strptime(health["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)

    async def signed_payload(
        self, action: str, target: str, *, chain_id: str, nonce: Optional[str] = None, summary: Optional[str] = None
    ) -> str:
        """Builds, signs (through the callback) and encodes one owner action."""
        if nonce is None:
            nonce = (await self._http.request("GET", "/v1/nonce"))["nonce"]
        message = build_owner_message(
            domain=self._domain,
            chain=self.chain,
            address=self.address,
            action=action,
            target=target,
            chain_id=str(chain_id),
            nonce=nonce,
            issued_at=await self._daemon_time(),
            summary=summary,
        )
        signature = await self._sign(message)
        return owner_payload(
            chain=self.chain, address=self.address, action=action, nonce=nonce, message=message, signature=signature
        )

    async def approve_transaction(self, tx_id: str, *, chain_id: str, summary: Optional[str] = None) -> dict[str, Any]:
        """Approves an APPROVAL-tier transaction (``summary``: the pending listing's, shown to the signer)."""
        bearer = await self.signed_payload("approve_tx", f"tx:{tx_id}", chain_id=chain_id, summary=summary)
        return await self._http.request("POST", f"/v1/owner/approve/{tx_id}", headers={"Authorization": f"Bearer {bearer}"})

    async def verify_owner(self, agent_id: str, *, chain_id: str) -> dict[str, Any]:
        bearer = await self.signed_payload("verify_owner", f"agent:{agent_id}", chain_id=chain_id)
        return await self._http.request(
            "POST", f"/v1/owner/agents/{agent_id}/verify", headers={"Authorization": f"Bearer {bearer}"}
        )

    async def recover_payload(self, *, chain_id: str, recovery_nonce: str) -> str:
        """The ``recover`` signature for kill-switch recovery step 1 (nonce from the kill-switch status)."""
        return await self.signed_payload("recover", "system", chain_id=chain_id, nonce=recovery_nonce)
