"""Response models: snake_case attributes over the camelCase wire (10-notifications-clients.md §8).

Every model keeps fields it does not know (``extra="allow"``), so a newer daemon never breaks an
older SDK. Amounts are strings (wei, lamports); timestamps are ``datetime``.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def wire(self) -> dict[str, Any]:
        """The request body: camelCase, without unset fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class TxStatus(str, Enum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    SUBMITTED = "SUBMITTED"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


TERMINAL = {TxStatus.CONFIRMED, TxStatus.FAILED, TxStatus.CANCELLED, TxStatus.EXPIRED}


class Tier(str, Enum):
    INSTANT = "INSTANT"
    NOTIFY = "NOTIFY"
    DELAY = "DELAY"
    APPROVAL = "APPROVAL"


class WalletAddress(Model):
    agent_id: str
    chain: str
    network: str
    address: str


class WalletBalance(Model):
    agent_id: Optional[str] = None
    chain: str
    network: str
    address: str
    balance: str
    decimals: int
    symbol: str


class Asset(Model):
    mint: Optional[str] = None
    symbol: Optional[str] = None
    balance: Optional[str] = None
    decimals: Optional[int] = None


class WalletAssets(Model):
    assets: list[Asset] = []


class Transaction(Model):
    """A transaction as the daemon reports it (send answers and ``GET /v1/transactions/:id``)."""

    id: Optional[str] = None
    transaction_id: Optional[str] = None
    status: TxStatus
    tier: Optional[Tier] = None
    type: Optional[str] = None
    amount: Optional[str] = None
    to_address: Optional[str] = None
    tx_hash: Optional[str] = None
    error: Optional[str] = None
    expires_at: Optional[datetime] = None
    created_at: Optional[datetime] = None

    @property
    def tx_id(self) -> str:
        return self.id or self.transaction_id or ""

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


class TransactionList(Model):
    transactions: list[Transaction] = []
    next_cursor: Optional[str] = None


class Session(Model):
    session_id: Optional[str] = None
    id: Optional[str] = None
    agent_id: Optional[str] = None
    token: Optional[str] = None
    expires_at: Optional[datetime] = None
    constraints: Optional[dict[str, Any]] = None


class Agent(Model):
    id: str
    name: str
    chain: str
    network: str
    address: Optional[str] = None
    status: str
    owner_address: Optional[str] = None
    owner_state: Optional[str] = None


class Policy(Model):
    id: str
    agent_id: Optional[str] = None
    type: str
    rules: dict[str, Any]
    priority: Optional[int] = None
    enabled: Optional[bool] = None


class Nonce(Model):
    nonce: str
    expires_at: datetime
