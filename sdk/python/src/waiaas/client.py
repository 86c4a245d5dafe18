"""``WAIaaSClient``: the agent's side of the API, with its session token."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any, Optional

import httpx

from ._http import DEFAULT_BASE_URL, Transport
from .errors import WAIaaSError
from .models import Nonce, Session, Transaction, TransactionList, WalletAddress, WalletAssets, WalletBalance


class WAIaaSClient:
    """The agent API. Use as ``async with WAIaaSClient(session_token=...) as w: ...``.

    Sends carry an idempotency key (a fresh UUID v4 per call unless one is given) that is reused
    across retries; only retryable errors are retried.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        session_token: Optional[str] = None,
        timeout: float = 180.0,
        max_retries: int = 3,
        *,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        self._http = Transport(base_url, {}, timeout, max_retries, transport)
        self._token: Optional[str] = None
        if session_token:
            self.set_session_token(session_token)

    async def __aenter__(self) -> "WAIaaSClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.close()

    def set_session_token(self, token: str) -> None:
        self._token = token
        self._http.headers["Authorization"] = f"Bearer {token}"

    # --- wallet --------------------------------------------------------------------------------
    async def get_address(self) -> WalletAddress:
        return WalletAddress.model_validate(await self._http.request("GET", "/v1/wallet/address"))

    async def get_balance(self) -> WalletBalance:
        return WalletBalance.model_validate(await self._http.request("GET", "/v1/wallet/balance"))

    async def get_assets(self) -> WalletAssets:
        return WalletAssets.model_validate(await self._http.request("GET", "/v1/wallet/assets"))

    # --- sends ---------------------------------------------------------------------------------
    async def _send(self, body: dict[str, Any], idempotency_key: Optional[str]) -> Transaction:
        body = {k: v for k, v in body.items() if v is not None}
        key = idempotency_key or str(uuid.uuid4())
        return Transaction.model_validate(
            await self._http.request("POST", "/v1/transactions/send", json=body, idempotency_key=key)
        )

    async def send_token(
        self,
        to: str,
        amount: str,
        *,
        token_mint: Optional[str] = None,
        token_decimals: Optional[int] = None,
        memo: Optional[str] = None,
        priority: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> Transaction:
        body: dict[str, Any] = {"to": to, "amount": str(amount), "memo": memo, "priority": priority}
        if token_mint is not None:
            token: dict[str, Any] = {"mint": token_mint}
            if token_decimals is not None:
                token["decimals"] = token_decimals
            body.update(type="TOKEN_TRANSFER", token=token)
        return await self._send(body, idempotency_key)

    async def contract_call(
        self,
        contract_address: str,
        *,
        calldata: Optional[str] = None,
        value: Optional[str] = None,
        instruction_data: Optional[str] = None,
        accounts: Optional[list[dict[str, Any]]] = None,
        memo: Optional[str] = None,
        priority: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> Transaction:
        body = {
            "type": "CONTRACT_CALL",
            "contractAddress": contract_address,
            "calldata": calldata,
            "value": value,
            "instructionData": instruction_data,
            "accounts": accounts,
            "memo": memo,
            "priority": priority,
        }
        return await self._send(body, idempotency_key)

    async def approve_token(
        self,
        token_mint: str,
        spender: str,
        amount: str,
        *,
        token_decimals: Optional[int] = None,
        idempotency_key: Optional[str] = None,
    ) -> Transaction:
        token: dict[str, Any] = {"mint": token_mint}
        if token_decimals is not None:
            token["decimals"] = token_decimals
        body = {"type": "APPROVE", "spender": spender, "amount": str(amount), "token": token}
        return await self._send(body, idempotency_key)

    async def batch_transaction(
        self, instructions: list[dict[str, Any]], *, memo: Optional[str] = None, idempotency_key: Optional[str] = None
    ) -> Transaction:
        return await self._send({"type": "BATCH", "instructions": instructions, "memo": memo}, idempotency_key)

    async def dry_run(self, transaction: dict[str, Any]) -> dict[str, Any]:
        return await self._http.request("POST", "/v1/transactions/dry-run", json=transaction)

    # --- reading transactions ------------------------------------------------------------------
    async def get_transaction(self, transaction_id: str) -> Transaction:
        return Transaction.model_validate(await self._http.request("GET", f"/v1/transactions/{transaction_id}"))

    async def list_transactions(
        self,
        status: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        order: Optional[str] = None,
    ) -> TransactionList:
        params = {"status": status, "limit": limit, "cursor": cursor, "order": order}
        return TransactionList.model_validate(await self._http.request("GET", "/v1/transactions", params=params))

    async def list_pending_transactions(self) -> TransactionList:
        return TransactionList.model_validate(await self._http.request("GET", "/v1/transactions/pending"))

    async def wait_for_transaction(
        self, transaction_id: str, *, timeout: float = 120.0, interval: float = 2.0
    ) -> Transaction:
        """Polls until the transaction is CONFIRMED, FAILED, CANCELLED or EXPIRED."""
        deadline = time.monotonic() + timeout
        while True:
            tx = await self.get_transaction(transaction_id)
            if tx.is_terminal:
                return tx
            if time.monotonic() >= deadline:
                raise WAIaaSError("TIMEOUT", f"{transaction_id} is still {tx.status.value} after {timeout} s", retryable=True)
            await asyncio.sleep(interval)

    # --- session -------------------------------------------------------------------------------
    def _session_id(self) -> str:
        if not self._token or not self._token.startswith("wai_sess_"):
            raise WAIaaSError("AUTH_TOKEN_MISSING", "no session token set")
        payload = self._token[len("wai_sess_") :].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["sid"])

    async def get_session(self) -> Session:
        return Session.model_validate(await self._http.request("GET", f"/v1/sessions/{self._session_id()}"))

    async def renew_session(self) -> Session:
        """Renews the session and switches this client to the new token."""
        s = Session.model_validate(await self._http.request("PUT", f"/v1/sessions/{self._session_id()}/renew"))
        if s.token:
            self.set_session_token(s.token)
        return s

    async def get_nonce(self) -> Nonce:
        return Nonce.model_validate(await self._http.request("GET", "/v1/nonce"))
