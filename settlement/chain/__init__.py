"""Django-free chain client for settlement: the embedded EVM, any JSON-RPC node, and the contract calls."""
