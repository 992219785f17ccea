"""A local emulator of Tango's RaaS v2 API (orders, line items, webhooks), for your tests
and ours.

::

    from tango_async.testing import Sandbox

    async with Sandbox(order_rate=1.0, resend_cooldown=30.0) as sb:
        async with sb.client() as tango:
            ...

Also a process (``python -m tango_async.testing --port 8080``) and a pytest plugin
(fixtures ``tango_sandbox`` and ``tango_client``).
"""

from ._clock import SandboxClock
from ._delivery import WEBHOOK_FAULTS, WebhookDelivery
from ._faults import FAULTS
from ._oauth import TokenRequest
from ._sandbox import CatalogItem, Recorded, Sandbox
from ._webhooks import EVENT_CATEGORIES

__all__ = [
    "EVENT_CATEGORIES",
    "FAULTS",
    "WEBHOOK_FAULTS",
    "CatalogItem",
    "Recorded",
    "Sandbox",
    "SandboxClock",
    "TokenRequest",
    "WebhookDelivery",
]
