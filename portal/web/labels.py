"""Words for statuses, events and choices on the shopper's page, translated once per
language (`PAGE_WORDS(locale)`) instead of through `_()` on every render.

N_ marks each msgid for extraction (babel.cfg); the catalogs in portal/locale translate them.
"""

from __future__ import annotations

from portal.domain.i18n import N_
from portal.templating import Words

# The progress stepper.
STEPS = {
    "placed": N_("Ordered"),
    "packed": N_("Packed"),
    "shipped": N_("Shipped"),
    "out_for_delivery": N_("Out for delivery"),
    "delivered": N_("Delivered"),
    "arrived_in_store": N_("In the store"),
    "ready_for_pickup": N_("Ready"),
    "collected": N_("Collected"),
}

# The progress card's headline, by order status.
HEADLINES = {
    "placed": N_("We have your order"),
    "backordered": N_("Some items are on back-order"),
    "packed": N_("Your order is packed"),
    "shipped": N_("Your order is on its way"),
    "out_for_delivery": N_("Arriving today"),
    "delivery_failed": N_("We missed you"),
    "delivered": N_("Delivered"),
    "arrived_in_store": N_("Your order is at the store"),
    "ready_for_pickup": N_("Ready for pickup"),
    "collected": N_("Collected. Enjoy!"),
    "cancelled": N_("Order cancelled"),
}

# Timeline entries (order events) and a parcel's own status.
EVENTS = {
    "placed": N_("Order placed"),
    "backordered": N_("Some items are on back-order"),
    "packed": N_("Packed"),
    "shipped": N_("Shipped"),
    "out_for_delivery": N_("Out for delivery"),
    "delivery_failed": N_("Delivery attempt failed"),
    "delivered": N_("Delivered"),
    "arrived_in_store": N_("Arrived at the store"),
    "cancelled": N_("Order cancelled"),
    "partly_ready": N_("Some items set aside"),
    "ready_for_pickup": N_("Ready for pickup"),
    "collected": N_("Collected"),
    "pickup_expired": N_("Not collected in time: cancelled"),
    "visit_confirmed": N_("You confirmed your visit by SMS"),
    "address_changed": N_("Address changed"),
    "switched_to_pickup": N_("Switched to collection in store"),
    "delivery_rescheduled": N_("New delivery day"),
    "instructions_updated": N_("Delivery instructions saved"),
    "change_requested": N_("Change requested"),
    "change_rejected": N_("Change not possible"),
    "return_requested": N_("Return requested"),
    "return_approved": N_("Return approved"),
    "return_label_ready": N_("Return label ready"),
    "return_in_transit": N_("Return on its way back"),
    "return_received": N_("Return received"),
    "return_inspected": N_("Return checked"),
    "return_rejected": N_("Return not accepted"),
    "refund_processing": N_("Refund in progress"),
    "refunded": N_("Refund paid"),
    "refund_failed": N_("Refund failed"),
}

# Where the courier may leave a parcel (portal.domain.delivery.SafePlace), in its order.
PLACES = {
    "front_door": N_("At the front door"),
    "back_door": N_("At the back door"),
    "porch": N_("In the porch"),
    "garage": N_("In the garage"),
    "reception": N_("With the concierge or reception"),
    "neighbour": N_("With a neighbour"),
}

PAGE_WORDS = Words(steps=STEPS, headlines=HEADLINES, events=EVENTS, places=PLACES)
