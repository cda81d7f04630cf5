"""CallMark: crowd-tagged caller reputation and compact blocklists for phones.

The modules here are the domain: they take a Store and never import Flask. The HTTP edge is
blocklist/web (its create_app builds the app), the processes that run it are blocklist/run,
and the wire formats and reference client are the separate `sync` package.
"""
