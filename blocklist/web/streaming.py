"""Streamed answers (the feed export, the complaint exports): chunks of bytes sent as they are
made, gzip-compressed when the client accepts it, so memory stays constant however long."""
from __future__ import annotations

import zlib
from typing import Iterable, Iterator

from flask import Response, request

GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib's gzip framing
GZIP_LEVEL = 6


def _gzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    encoder = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
    for chunk in chunks:
        if packed := encoder.compress(chunk):
            yield packed
    yield encoder.flush()


def streamed(chunks: Iterable[bytes], mimetype: str) -> Response:
    """A streamed response of `chunks`; gzip when the request's Accept-Encoding names it."""
    compress = "gzip" in request.headers.get("Accept-Encoding", "")
    response = Response(_gzipped(chunks) if compress else chunks, mimetype=mimetype)
    if compress:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    return response
