"""Endpoint URLs from a configured base URL and a path, joined as URLs, not as strings.

`SEP_API_URL=http://api:8000/sep?token=T` and `/api/oanda/account` make
`http://api:8000/sep/api/oanda/account?token=T`: the base's path is a prefix, its query (a token
some gateways take) goes with every request, a fragment (never sent) is dropped. Concatenation
would have made `http://api:8000/sep?token=T/api/oanda/account`.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def endpoint(base: str, path: str) -> str:
    """`path` (which may carry its own `?query`) under the base URL `base`."""
    root, extra = urlsplit(base), urlsplit(path)
    joined = root.path.rstrip("/") + "/" + extra.path.lstrip("/")
    query = "&".join(part for part in (root.query, extra.query) if part)
    return urlunsplit(root._replace(path=joined, query=query, fragment=""))
