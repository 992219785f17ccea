"""The click application behind ``tango-async``.

Exit codes: 0 everything done; 1 some rows failed, were invalid or have an unknown outcome
(or the API refused a call); 2 bad usage, input, credentials, journal or report, or a
systemic refusal that stopped the job (401, 403, 402, frozen account); 130 interrupted
(the journal keeps the job: the resume command is printed).
"""

from __future__ import annotations

# The commands register on the group as their modules load: the group and what the
# commands share in _common, the bulk commands in _bulk, the webhook commands in
# _webhooks, accounts / catalog / exchange-rates in _reference, the others in _orders.
from . import _bulk, _orders, _reference, _webhooks
from ._common import cli

__all__ = ["cli"]

_COMMANDS = (_bulk, _orders, _reference, _webhooks)  # imported for the commands they add
