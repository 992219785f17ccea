"""One module per API resource: ``orders``, ``line_items``, ``webhooks``."""

from .line_items import LineItems
from .orders import Orders
from .webhooks import Webhooks

__all__ = ["LineItems", "Orders", "Webhooks"]
