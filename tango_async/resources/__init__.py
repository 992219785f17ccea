"""One module per API resource: ``orders`` and ``line_items``."""

from .line_items import LineItems
from .orders import Orders

__all__ = ["LineItems", "Orders"]
