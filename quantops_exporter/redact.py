"""The one way a URL is shown: in logs, errors, check summaries, check-config and the pages.

A password can sit in a URL's user info (`redis://user:pw@host`) or its query
(`redis://host/0?password=pw`, `?token=`); `redact` replaces both with `***`, in a URL or in any
text that quotes one (an error message). It never raises, whatever the string, so an invalid URL
can be named in the error that rejects it.
"""

from __future__ import annotations

import re

MASK = "***"
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s]*):[^/?#\s]*@")
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pass|pwd|secret|token|access_token|auth|api_?key)=)"
    r"[^&;#\s]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` (a URL, or a message quoting URLs) with every password in it replaced by `***`."""
    shown = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", shown)
