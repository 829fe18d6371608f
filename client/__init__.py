"""Client SDK for the settlement ledger (async first, with a synchronous wrapper).

Receipts and their offline verification live here (``Receipt``, ``verify_receipt``);
the clients, builders and CLI build on them.
"""

from client._receipt import InvalidReceiptError, Receipt, ResultProof, verify_receipt
from node.settlement import ResultCode

__all__ = ["InvalidReceiptError", "Receipt", "ResultCode", "ResultProof", "verify_receipt"]
