"""The shopper's "Delivery" card: what its forms show back after an error, and the words
for a change that was just saved."""

from __future__ import annotations

from dataclasses import dataclass, field

from portal.domain.i18n import N_
from portal.services.delivery import CLOSED_TEXT, FieldErrors
from portal.services.errors import ServiceError

KEPT = 300  # what is typed is shown back on an error, cut to a sane length

# ?saved=<word> after a plain-form change (303 to the page) and for htmx answers; the page
# translates them where it shows them.
SAVED_TEXT: dict[str, str] = {
    "address": N_("Done: the new address is saved."),
    "switch_to_pickup": N_("Done: you will collect the order in the store."),
    "reschedule": N_("Done: the new delivery day is saved."),
    "instructions": N_("Done: the courier will see your instructions."),
    "requested": N_("Sent: the shop will confirm your change by text message."),
    "code_sent": N_("We texted you a code."),
    "cancelled": N_("The change was cancelled; nothing was changed."),
}


@dataclass(slots=True)
class DeliveryForm:
    """One form's state after a refusal: which form, what was typed, what is wrong."""

    which: str  # "address" | "store" | "day" | "instructions" | "code"
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    parcel: int | None = None


def refused(
    which: str, values: dict[str, str], exc: ServiceError, parcel: int | None = None
) -> DeliveryForm:
    """Field errors go by their fields; anything else (a state that refuses the change:
    locked, too late, changed meanwhile) is one message above the forms."""
    kept = {k: v[:KEPT] for k, v in values.items()}
    if isinstance(exc, FieldErrors):
        return DeliveryForm(which, kept, dict(exc.errors), None, parcel)
    if exc.status_code == 422 and exc.field and exc.field in values:
        return DeliveryForm(which, kept, {exc.field: exc.detail}, None, parcel)
    return DeliveryForm(which, kept, {}, exc.detail, parcel)


CONTEXT = {"closed_text": CLOSED_TEXT, "saved_text": SAVED_TEXT}
