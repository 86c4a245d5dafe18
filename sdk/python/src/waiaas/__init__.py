"""Python client for the waiaas wallet daemon.

- ``WAIaaSClient``: an agent with a session token (balance, sends, transactions).
- ``WAIaaSAdminClient``: the operator with the master password (agents, sessions, policies, …).
- ``WAIaaSOwnerClient``: the owner, signing actions through a callback (approvals, verification).
"""

from .admin import WAIaaSAdminClient
from .client import WAIaaSClient
from .errors import WAIaaSError
from .models import Agent, Policy, Session, Tier, Transaction, TransactionList, TxStatus, WalletAddress, WalletBalance
from .owner import WAIaaSOwnerClient, build_owner_message, owner_payload

__all__ = [
    "WAIaaSClient",
    "WAIaaSAdminClient",
    "WAIaaSOwnerClient",
    "WAIaaSError",
    "build_owner_message",
    "owner_payload",
    "Agent",
    "Policy",
    "Session",
    "Tier",
    "Transaction",
    "TransactionList",
    "TxStatus",
    "WalletAddress",
    "WalletBalance",
]
__version__ = "0.1.0"
