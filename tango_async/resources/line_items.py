"""``client.line_items``: resend a line item."""

from __future__ import annotations

from .._codec import ENCODER
from .._retry import RESEND
from .._validation import check_path_id, line_item_resend_request, path_segment
from ..types.enums import DeliveryMethod, ResendReasonCode
from ..types.resends import LineItemResend
from ._base import Resource

__all__ = ["LineItems"]


class LineItems(Resource):
    """Line-item calls of the API."""

    async def resend(
        self,
        reference_line_item_id: str,
        /,
        *,
        new_delivery_method: DeliveryMethod | str | None = None,
        new_email: str | None = None,
        new_mobile_number: str | None = None,
        new_etid: str | None = None,
        reason_code: ResendReasonCode | str | None = None,
        other_reason: str | None = None,
        wait: bool = False,
    ) -> LineItemResend:
        """Resend a line item's reward: ``POST /lineItems/{referenceLineItemId}/resends``.

        The body says ``newMobileNumber`` (unlike order resends). ``reason_code`` OTHER
        needs ``other_reason``. One resend per line item per ``resend_cooldown`` seconds:
        sooner raises ResendCooldownError without a network call, or waits with
        ``wait=True``. Not retried once it may have reached the server (resends are not
        idempotent). Raises ValidationError before sending; APIError subclasses on
        refusal (403.003: Tango did not deliver the original); APIConnectionError.
        """
        ref = check_path_id(reference_line_item_id, "reference_line_item_id")
        body = ENCODER.encode(
            line_item_resend_request(
                new_delivery_method=new_delivery_method,
                new_email=new_email,
                new_mobile_number=new_mobile_number,
                new_etid=new_etid,
                reason_code=reason_code,
                other_reason=other_reason,
            )
        )
        path = f"/lineItems/{path_segment(ref)}/resends"
        return await self._resend("line_item", ref, path, body, LineItemResend, wait, RESEND)
