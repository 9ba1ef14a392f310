"""Where bodies from outside are read: the one place that decodes JSON safely and applies
the text rule (`portal.domain.text`) to every shop API body and every form.

`PortalRequest` is the app's request class. Its `json()` answers a body that is not UTF-8,
not JSON or nested beyond reason with 400, and, for a handler that declares a typed `data`
body, makes the line ends of every string LF and refuses control characters with 422 naming
the field (`customer.name`, `lines[1].name`): multi-line where the field's type says so
(`MULTILINE`), single-line elsewhere. Its `form()` does the same for every form field
(`FORM_MULTILINE` are the textareas); every form handler reads its form with `read_form`,
which gives the refusal to raise where the handler shows the form again with its message.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec
from litestar import Request
from litestar.datastructures import FormMultiDict
from litestar.exceptions import ClientException
from litestar.types import Empty
from msgspec import inspect

from portal.domain.i18n import words_of
from portal.domain.text import TextRefused, clean_text
from portal.services.errors import Invalid

# Deeper than any body of the API needs; a deeper one is refused before it is walked.
MAX_DEPTH = 32
TOO_DEEP = f"the body is nested too deeply (at most {MAX_DEPTH} levels)"


class FormTextRefused(Invalid):
    """A form field breaks the text rule (`field` names it)."""


def decode_json(body: bytes) -> Any:
    """The body as Python values, or 400 naming what is wrong with it."""
    try:
        return msgspec.json.decode(body or b"null")
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1].hex()
        raise ClientException(detail=f"the body is not valid UTF-8 (byte 0x{bad})") from None
    except RecursionError:
        raise ClientException(detail=TOO_DEEP) from None
    except msgspec.DecodeError as exc:
        raise ClientException(detail=f"the body is not valid JSON ({exc})") from None


def _multiline(info: inspect.Type | None) -> bool:
    """Whether a string may hold line breaks: where its type says so, and where no type
    says anything (an unknown field, refused later as such; a body typed `Any`)."""
    if info is None or isinstance(info, inspect.AnyType):
        return True
    return isinstance(info, inspect.Metadata) and bool((info.extra or {}).get("multiline"))


def _branch(info: inspect.Type | None, value: Any) -> inspect.Type | None:
    """The member of a union (and the type under metadata) that `value` would decode as."""
    if isinstance(info, inspect.UnionType):
        for member in info.types:
            inner = member.type if isinstance(member, inspect.Metadata) else member
            if isinstance(value, str) and isinstance(inner, inspect.StrType):
                return member
            if isinstance(value, list) and isinstance(inner, inspect.ListType):
                return member
            if isinstance(value, dict) and (
                isinstance(inner, inspect.DictType)
                or (
                    isinstance(inner, inspect.StructType)
                    and (inner.tag_field is None or value.get(inner.tag_field) == inner.tag)
                )
            ):
                return member
        return None
    return info


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def clean_value(value: Any, info: inspect.Type | None, path: str = "", depth: int = 0) -> Any:
    """`value` (decoded JSON) with the text rule applied to every string in it, following
    the declared type `info` for which strings may hold line breaks. A string the type does
    not know (an unknown field, refused later as such) may."""
    if depth > MAX_DEPTH:
        raise ClientException(detail=TOO_DEEP)
    info = _branch(info, value)
    if isinstance(value, str):
        try:
            return clean_text(value, multiline=_multiline(info))
        except TextRefused as exc:
            raise Invalid(words_of(exc), field=path or None) from None
    inner = info.type if isinstance(info, inspect.Metadata) else info
    if isinstance(value, list):
        item = inner.item_type if isinstance(inner, inspect.ListType) else None
        return [clean_value(v, item, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        fields: dict[str, inspect.Type] = {}
        values_of: inspect.Type | None = None
        if isinstance(inner, inspect.StructType):
            fields = {f.encode_name: f.type for f in inner.fields}
        elif isinstance(inner, inspect.DictType):
            values_of = inner.value_type
        cleaned = {}
        for key, item in value.items():
            where = _join(path, str(key))
            if isinstance(key, str):
                try:
                    key = clean_text(key, multiline=False)
                except TextRefused as exc:
                    raise Invalid(words_of(exc), field=where) from None
            cleaned[key] = clean_value(item, fields.get(key, values_of), where, depth + 1)
        return cleaned
    return value


@lru_cache(maxsize=256)
def _type_info(annotation: Any) -> inspect.Type | None:
    try:
        return inspect.type_info(annotation)
    except (TypeError, ValueError):  # not a type msgspec knows: no text rule to follow
        return None


def body_type(request: Request[Any, Any, Any]) -> inspect.Type | None:
    """The declared type of the handler's `data` body, or None (the handler reads the body
    itself, as the webhooks do: they keep their own rule)."""
    handler = request.scope.get("route_handler")
    signature = getattr(handler, "parsed_fn_signature", None)
    data = signature.parameters.get("data") if signature is not None else None
    return _type_info(data.annotation) if data is not None else None


# The forms' textareas (delivery instructions); every other form field is a single line.
FORM_MULTILINE = frozenset({"note"})


class PortalRequest(Request[Any, Any, Any]):
    _form_checked = False
    _form_refused: FormTextRefused | None = None

    async def json(self) -> Any:
        if self._json is Empty:
            cached = self._connection_state.json
            if cached is Empty:
                cached = decode_json(await self.body())
                info = body_type(self)
                if info is not None:
                    cached = clean_value(cached, info)
                self._connection_state.json = cached
            self._json = cached
        return self._json

    async def form(self) -> FormMultiDict:
        """The form with its line ends made LF. The text rule never raises here, since
        Litestar's CSRF middleware reads the form too: what it refuses is kept for
        `read_form`. A form that cannot be read at all is a 400, as Litestar answers a
        broken multipart body; so is a multipart field that is not UTF-8 (or names a
        character set Python does not know), which Litestar's parser lets through as a 500."""
        if self._form_checked:
            return await super().form()
        try:
            parsed = await super().form()
        except (UnicodeDecodeError, LookupError):
            raise ClientException(detail="a field of the form is not valid UTF-8") from None
        refused: FormTextRefused | None = None
        items = []
        for name, value in parsed.multi_items():
            if isinstance(value, str):
                value = value.replace("\r\n", "\n").replace("\r", "\n")
                if refused is None:
                    try:
                        clean_text(value, multiline=name in FORM_MULTILINE)
                    except TextRefused as exc:
                        refused = FormTextRefused(words_of(exc), field=name)
            items.append((name, value))
        self._form = form = FormMultiDict(items)
        self._form_checked, self._form_refused = True, refused
        return form


async def read_form(
    request: Request[Any, Any, Any],
) -> tuple[FormMultiDict, FormTextRefused | None]:
    """Every form handler's read: the form as typed (line ends made LF) and the text rule's
    refusal of it, if any. The handler raises the refusal where it shows its other
    refusals (`refuse`), so the form comes back (422) with the message by the field and
    what was typed."""
    form = await request.form()
    return form, getattr(request, "_form_refused", None)


def refuse(refusal: Invalid | None) -> None:
    """Raise what `read_form` found, if anything (inside the handler's `try`)."""
    if refusal is not None:
        raise refusal


async def check_query(request: Request[Any, Any, Any]) -> None:
    """The app's `before_request`: a query string's values are single-line text fields
    (a search, a store code); one the rule refuses is a 422 naming its parameter, before
    it reaches a query (PostgreSQL cannot compare a NUL). MessageBird's calls keep the
    webhook rule (portal.web.webhooks): what cannot be used is logged and answered 200."""
    if not request.scope.get("query_string") or request.scope["path"].startswith("/webhooks/"):
        return
    for name, value in request.query_params.multi_items():
        if isinstance(value, str):
            try:
                clean_text(value, multiline=False)
            except TextRefused as exc:
                raise FormTextRefused(words_of(exc), field=name) from None
