"""Realistic payloads for the shop API, with overrides."""

from __future__ import annotations

import copy
import itertools
from typing import Any

_seq = itertools.count(100_001)

STORE = {
    "name": "Milano Centro",
    "address": {"line1": "Via Torino 21", "city": "Milano", "postcode": "20123", "country": "IT"},
    "timezone": "Europe/Rome",
    "phone": "+39 02 1234 5678",
    "opening_hours": {"mon": ["09:30-13:00", "15:00-19:30"], "sat": ["10:00-19:00"]},
}


# The shopper of `order_payload`. The shop states English, so pages and texts are in English;
# ITALIAN is the same shopper as an Italian shop sends her (tests/web/test_page_languages.py
# covers the page in every language).
CUSTOMER = {"name": "Giulia Bianchi", "phone": "347 123 4567", "locale": "en"}
ITALIAN = {**CUSTOMER, "locale": "it"}


def order_payload(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": f"WEB-{next(_seq)}",
        "customer": CUSTOMER,
        "fulfilment": {
            "method": "delivery",
            "address": {
                "line1": "Via Roma 1",
                "city": "Milano",
                "postcode": "20121",
                "country": "IT",
            },
        },
        "lines": [
            {
                "sku": "TSHIRT-M",
                "name": "Organic cotton T-shirt",
                "quantity": 2,
                "unit_price": "19.90",
            },
            {"sku": "MUG-01", "name": "Ceramic mug", "quantity": 1, "unit_price": "12.50"},
        ],
        "currency": "EUR",
    }
    for key, value in overrides.items():
        body[key] = value
    return copy.deepcopy(body)


def store_payload(**overrides: Any) -> dict[str, Any]:
    return copy.deepcopy({**STORE, **overrides})
