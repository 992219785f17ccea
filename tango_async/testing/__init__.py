"""A local emulator of Tango's RaaS v2 orders API, for your tests and ours.

::

    from tango_async.testing import Sandbox

    async with Sandbox(order_rate=1.0, resend_cooldown=30.0) as sb:
        async with sb.client() as tango:
            ...

Also a process (``python -m tango_async.testing --port 8080``) and a pytest plugin
(fixtures ``tango_sandbox`` and ``tango_client``).
"""

from ._clock import SandboxClock
from ._faults import FAULTS
from ._sandbox import CatalogItem, Recorded, Sandbox

__all__ = ["FAULTS", "CatalogItem", "Recorded", "Sandbox", "SandboxClock"]
