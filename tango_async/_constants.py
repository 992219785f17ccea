"""Base URLs and defaults."""

from decimal import Decimal

SANDBOX_URL = "https://integration-api.tangocard.com/raas/v2"
PRODUCTION_URL = "https://api.tangocard.com/raas/v2"

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_ORDER_RATE = 1.0
DEFAULT_RESEND_COOLDOWN = 30.0
DEFAULT_RATE_MARGIN = 0.05
DEFAULT_RESULT_WINDOW = 10_000
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
DEFAULT_CONNECTOR_LIMIT = 100
MAX_ELEMENTS_PER_BLOCK = 100
# The largest order amount a client sends unless told otherwise (TangoClient(max_amount=)).
DEFAULT_MAX_AMOUNT = Decimal(1_000_000)
