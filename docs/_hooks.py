"""MkDocs hook: render the reST cross-reference roles of the docstrings as plain code.

The docstrings are written for readers of the source (``:meth:`close```,
``:class:`~tango_async.OAuth```); mkdocstrings shows them as Markdown, where a role
would stay visible as ``:meth:``. This keeps the code and drops the role (``~`` keeps
the last component, as Sphinx does), and turns a paragraph's closing ``::`` (a literal
block follows) into ``:``.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(
    r":(?:py:)?(?:meth|class|func|attr|mod|exc|data|obj|const|ref):<code>(~?)([^<]*)</code>"
)
_LITERAL = re.compile(r"::</p>")


def _role(match: re.Match[str]) -> str:
    tilde, target = match.group(1), match.group(2)
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    """Clean the roles out of one page's HTML."""
    return _LITERAL.sub(":</p>", _ROLE.sub(_role, html))
