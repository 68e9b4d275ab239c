"""Radicale plugins over bridge.store: storage (collections and items), auth and rights."""
