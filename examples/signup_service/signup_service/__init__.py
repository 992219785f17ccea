"""An example service built on tango-async: every new sign-up earns a gift card.

See ``app.py`` for the service, ``README.md`` for how to run and test it.
"""

from .app import RewardSettings, create_app, signup_ref

__all__ = ["RewardSettings", "create_app", "signup_ref"]
