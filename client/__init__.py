"""Client SDK for the settlement ledger (async first, with a synchronous wrapper).

The SDK arrives with the client issue; today this package only reserves the name and
ships ``py.typed`` so that type checkers treat it as typed from the first release.
"""

__all__: list[str] = []
