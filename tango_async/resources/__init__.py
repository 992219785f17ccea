"""One module per API resource: ``orders``, ``line_items``, ``webhooks``, ``accounts``,
``customers``, ``catalog``, ``choice_products``, ``exchange_rates``."""

from .accounts import Accounts
from .catalog import Catalogs
from .choice_products import ChoiceProducts
from .customers import Customers
from .exchange_rates import ExchangeRates
from .line_items import LineItems
from .orders import Orders
from .webhooks import Webhooks

__all__ = [
    "Accounts",
    "Catalogs",
    "ChoiceProducts",
    "Customers",
    "ExchangeRates",
    "LineItems",
    "Orders",
    "Webhooks",
]
