"""List sync, what app vendors port: the wire formats (Bloom filter, delta, signatures, number
keys; docs/PROTOCOL.md) and the reference client (`python -m sync`). It imports nothing of
the server and needs only sync/requirements.txt; the server's publishing is blocklist/publish.py."""
