"""/dev/sms: the development SMS inbox (no MessageBird key, not in production)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.exceptions import NotFoundException

from portal.services import messaging
from portal.web.deps import RT
from portal.web.render import render


class DevController(Controller):
    path = "/dev"
    include_in_schema = False

    @get("/sms", name="dev_sms")
    async def inbox(self, request: Request[Any, Any, Any], rt: RT) -> Response[Any]:
        if rt.settings.production or rt.settings.messagebird_access_key:
            raise NotFoundException()
        messages = await messaging.recent_messages(rt)
        return render(
            request, "dev/sms.html", {"messages": messages, "base_url": rt.settings.base_url}
        )
