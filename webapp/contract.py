"""The typed contract of the JSON API: every ``/api`` operation declares what it takes and what it
answers as pydantic models, its input is parsed and checked from them before the handler runs,
and ``GET /api/openapi.json`` is generated from the same declarations, so the document cannot
drift from the code.

Adding an operation takes a decorator and one line in the module's ``setup``::

    class Rename(Body):                       # the JSON body (strict: no "1" for 1)
        title: Annotated[str, Field(max_length=64)]

    class Renamed(Out):                       # what a 200 carries
        id: int
        title: str

    class ThingPath(PathParams):              # the path's variables
        thing_id: Id                          # digits up to the largest bigint

    @operation("PUT", r"/api/things/{thing_id:\\d+}", summary="Rename a thing",
               responses={200: Answer("Renamed.", Renamed)}, errors={409: "Taken."},
               tags=("things",))
    async def rename(request: web.Request, path: ThingPath, body: Rename) -> web.Response:
        ...                                    # path.thing_id and body.title are checked

    def setup(app):
        add_routes(app, rename, ...)

The handler's parameters say what is parsed: ``path`` (a ``PathParams`` model whose fields are
the path's variables), ``query`` (a ``Query`` model) and ``body`` (a ``Body`` model; annotated
``Model | None`` when the body may be left out). A route added any other way under ``/api`` has
no contract, and ``create_app`` refuses to start with one (``check_contracts``).

Refusals, one shape for every transport error: ``{"error", "message", "fields"?}``. Input that
does not fit its model is 400 ``invalid_input`` (not 422: the same code the services' own checks
give, so a client handles one).

- The body: declared JSON (else 415 ``unsupported_media_type``), at most ``MAX_JSON_BYTES``
  (else 413 ``payload_too_large``), nested at most ``MAX_JSON_DEPTH`` deep, every string and key
  free of NUL and lone surrogates, then validated by the model: anything wrong is 400
  ``invalid_input`` with ``fields`` naming what (``title``, ``items[2].name``, ``body`` for the
  whole).
- The query: 400 ``invalid_input`` naming the parameter; an empty value counts as absent.
- The path: a value its model refuses names nothing, so 404 ``not_found`` (as an id past every
  id, or another user's object).
- Auth ``bearer``: no valid bearer token is 401 before anything else is looked at.

Every operation documents 400 (with any input), 401 (with auth), 404 (with path variables),
413 and 415 (with a JSON body) and 503 (a dependency unreachable; see Retry-After); others it
names itself in ``errors``.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema

from core.errors import InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType
from webapp.auth import bearer_user
from webapp.cookies import CSRF_HEADER, REFRESH_COOKIE
from webapp.keys import CONTEXT

JSON = "application/json"
Schema = dict[str, Any]
Auth = Literal["bearer", "session", "tma", "none"]
Handler = Callable[..., Awaitable[web.StreamResponse]]

# Ids are bigint: a larger number names nothing.
MAX_ID = 2**63 - 1
# A JSON body nested deeper than this, or larger, is not one our routes take.
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 512 * 1024


# --- the models' base classes and shared types --------------------------------------------------


class Body(BaseModel):
    """A JSON request body: strict types (no ``"1"`` for 1, no 1 for true), unknown keys
    ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Query(BaseModel):
    """Query parameters: strings converted to the declared types, unknown ones ignored."""

    model_config = ConfigDict(extra="ignore")


class PathParams(BaseModel):
    """The path's variables, one field each."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """The JSON of an answer, as documented (handlers build it; tests check it)."""


# A path id: digits, at most the largest bigint.
Id = Annotated[int, Field(ge=0, le=MAX_ID)]
# A body id: what the database can hold.
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
# A paging cursor: not negative; a number past every id is no bound at all.
Cursor = Annotated[int, Field(ge=0), AfterValidator(lambda v: min(v, MAX_ID))]
# Consent is given by exactly ``true``; anything else is none given (and refused as such).
Consent = Annotated[bool, BeforeValidator(lambda v: v is True)]
TIME = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class Error(Out):
    """Every refusal: a machine code, a text for the user, and the refused inputs if any."""

    error: str = Field(description="A machine code.")
    message: str = Field(description="Text for the user, in their language.")
    fields: list[str] = Field(
        default_factory=list, description="The refused inputs (`title`, `items[2].name`)."
    )


# --- operations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One documented response: a model (JSON), a raw schema with its media type, or nothing."""

    description: str
    model: type[BaseModel] | None = None
    media: str = JSON
    schema: Schema | None = None
    extra_media: Mapping[str, Schema] = field(default_factory=dict)


def _optional_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """``Model`` → (Model, required); ``Model | None`` → (Model, not required)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            return args[0], False
    return None, True


@dataclass
class Operation:
    """One /api operation: its contract, and its handler behind the parsing of its inputs."""

    method: str
    path: str
    summary: str
    handler: Handler
    auth: Auth
    responses: Mapping[int, Answer]
    errors: Mapping[int, str]
    tags: tuple[str, ...]
    description: str | None
    extra: Mapping[str, Any]
    path_model: type[PathParams] | None = None
    query_model: type[Query] | None = None
    body_model: type[BaseModel] | None = None
    body_required: bool = True
    body_media: str = JSON
    # A body the handler reads itself (an upload): documented from this model, not parsed.
    raw_body: type[BaseModel] | None = None

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(self.handler)
        names = list(inspect.signature(self.handler).parameters)
        if not names or names[0] != "request":
            raise TypeError(f"{self.handler.__name__}: the first parameter is the request")
        for name in names[1:]:
            model, required = _optional_model(hints.get(name))
            if name == "path" and model is not None and issubclass(model, PathParams):
                self.path_model = model
            elif name == "query" and model is not None and issubclass(model, Query):
                self.query_model = model
            elif name == "body" and model is not None and issubclass(model, Body):
                self.body_model, self.body_required = model, required
            else:
                raise TypeError(
                    f"{self.handler.__name__}: parameter {name!r} is not path: PathParams, "
                    "query: Query or body: Body"
                )
        variables = re.findall(r"\{(\w+)(?::[^{}]*(?:\{[^{}]*\}[^{}]*)*)?\}", self.path)
        declared = list(self.path_model.model_fields) if self.path_model else []
        if sorted(variables) != sorted(declared):
            raise TypeError(f"{self.path}: path variables {variables}, model fields {declared}")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.auth == "bearer":
            # Who asks comes first: without a valid token nothing else is looked at.
            bearer_user(request)
        kwargs: dict[str, Any] = {}
        if self.path_model is not None:
            kwargs["path"] = parse_path(request, self.path_model)
        if self.query_model is not None:
            kwargs["query"] = parse_query(request, self.query_model)
        if self.body_model is not None:
            if self.body_required or request.can_read_body:
                kwargs["body"] = await parse_body(request, self.body_model)
            else:
                kwargs["body"] = None
        return await self.handler(request, **kwargs)

    def all_responses(self) -> dict[int, Answer]:
        out: dict[int, Answer] = dict(self.responses)
        inputs = self.path_model or self.query_model or self.body_model or self.raw_body
        standard: dict[int, str] = {}
        if inputs:
            standard[400] = "The input is not valid; `fields` names it."
        if self.auth in ("bearer", "session", "tma"):
            standard[401] = "Not signed in, or the session ended."
        if self.path_model is not None:
            standard[404] = "Nothing of the user's by that name."
        if self.body_model is not None or self.raw_body is not None:
            standard[413] = "The body is too large."
        if self.body_model is not None:
            standard[415] = f"The body is not {self.body_media}."
        standard[503] = "A dependency is unreachable for a moment; see Retry-After."
        for status, text in {**standard, **self.errors}.items():
            out.setdefault(status, Answer(text, Error))
        return dict(sorted(out.items()))


def operation(
    method: str,
    path: str,
    *,
    summary: str,
    responses: Mapping[int, Answer],
    auth: Auth = "bearer",
    errors: Mapping[int, str] | None = None,
    tags: Iterable[str] = (),
    description: str | None = None,
    extra: Mapping[str, Any] | None = None,
    raw_body: type[BaseModel] | None = None,
    body_media: str = JSON,
) -> Callable[[Handler], Operation]:
    """Declares an /api operation (see the module's description)."""

    def declare(handler: Handler) -> Operation:
        return Operation(
            method=method,
            path=path,
            summary=summary,
            handler=handler,
            auth=auth,
            responses=responses,
            errors=errors or {},
            tags=tuple(tags),
            description=description or inspect.getdoc(handler),
            extra=extra or {},
            raw_body=raw_body,
            body_media=body_media,
        )

    return declare


def add_routes(app: web.Application, *operations: Operation) -> None:
    for op in operations:
        if not op.path.startswith("/api/"):
            raise ValueError(f"{op.path}: only /api operations have a contract")
        app.router.add_route(op.method, op.path, op.handle)


# --- parsing -------------------------------------------------------------------------------------


P = TypeVar("P", bound=PathParams)
Q = TypeVar("Q", bound=Query)
B = TypeVar("B", bound=BaseModel)


def _field_name(loc: tuple[int | str, ...]) -> str:
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name = f"{name}.{part}" if name else str(part)
    return name or "body"


def _refused(exc: ValidationError, what: str) -> InvalidInput:
    fields = sorted({_field_name(tuple(e["loc"])) for e in exc.errors()})
    return InvalidInput(f"{what}: {exc.error_count()} error(s) in {fields}", fields=fields)


def parse_path(request: web.Request, model: type[P]) -> P:
    try:
        return model.model_validate(dict(request.match_info))
    except ValidationError as exc:
        # A path that its model refuses names nothing: like any id that is not the user's.
        raise NotFound(
            f"{request.match_info.route.resource}: {exc.error_count()} error(s)"
        ) from None


def parse_query(request: web.Request, model: type[Q]) -> Q:
    values = {k: v for k, v in request.query.items() if v != ""}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise _refused(exc, "query") from None


async def json_body(request: web.Request, *, any_type: bool = False) -> dict[str, Any]:
    """The request's JSON object, checked before any use: declared as JSON (else 415, unless
    ``any_type``: a sender that labels nothing), at most ``MAX_JSON_BYTES`` (else 413), no
    deeper than ``MAX_JSON_DEPTH``, and every string free of NUL characters and lone surrogates
    (which no database or client takes); anything else is InvalidInput naming the offending
    field."""
    if not any_type and request.content_type != JSON:
        raise UnsupportedMediaType(f"content type {request.content_type!r}")
    length = request.content_length
    if length is not None and length > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"{length} bytes declared")
    # The whole body (aiohttp's own limit, above ours, holds for a body of no declared length).
    raw = await request.read()
    if len(raw) > MAX_JSON_BYTES:
        raise PayloadTooLarge("body over the limit")
    try:
        body = json.loads(raw)
    except RecursionError as exc:
        raise InvalidInput("body nested too deeply", fields=["body"]) from exc
    except ValueError as exc:
        raise InvalidInput("body is not JSON", fields=["body"]) from exc
    if not isinstance(body, dict):
        raise InvalidInput("body is not a JSON object", fields=["body"])
    check_json(body)
    return body


async def parse_body(request: web.Request, model: type[B], *, any_type: bool = False) -> B:
    """The body as the model, checked as ``json_body`` says; for an operation that declares it
    with ``raw_body`` and must look at other things first."""
    body = await json_body(request, any_type=any_type)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _refused(exc, "body") from None


def check_json(value: object) -> None:
    """Depth and strings of a parsed JSON value (see ``json_body``), without recursion."""
    stack: list[tuple[object, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidInput("body nested too deeply", fields=[path or "body"])
        if isinstance(item, str):
            if not clean_text(item):
                raise InvalidInput("a string with NUL or a lone surrogate", fields=[path])
        elif isinstance(item, dict):
            for key, child in item.items():
                name = f"{path}.{key}" if path else str(key)
                if not clean_text(str(key)):
                    raise InvalidInput(
                        "a key with NUL or a lone surrogate", fields=[path or "body"]
                    )
                stack.append((child, name, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(text: str) -> bool:
    """No NUL character and no lone surrogate."""
    return _UNSTORABLE.search(text) is None


# --- the document --------------------------------------------------------------------------------

SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "bearer": [{"bearer": []}],
    "session": [{"bearer": []}, {"refreshCookie": [], "csrfToken": []}],
    "tma": [{"telegramInitData": []}],
    "none": [],
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "telegramInitData": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`tma <initData>` as the Mini App receives it from Telegram.",
    },
    "refreshCookie": {"type": "apiKey", "in": "cookie", "name": REFRESH_COOKIE},
    "csrfToken": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
}
REF = "#/components/schemas/{model}"


def _api_routes(app: web.Application) -> Iterator[tuple[str, str, web.AbstractRoute]]:
    for route in app.router.routes():
        # aiohttp adds HEAD beside every GET; it answers like the GET.
        if route.method in ("HEAD", "*"):
            continue
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/"):
            yield route.method, path, route


def _contract_of(route: web.AbstractRoute) -> Operation | None:
    owner = getattr(route.handler, "__self__", None)
    return owner if isinstance(owner, Operation) else None


def undocumented(app: web.Application) -> list[str]:
    """The app's /api routes registered without a contract, as ``METHOD /path``."""
    return [f"{m} {p}" for m, p, route in _api_routes(app) if _contract_of(route) is None]


def check_contracts(app: web.Application) -> None:
    """Refuses an app with an /api route that has no contract."""
    missing = undocumented(app)
    if missing:
        raise RuntimeError(f"/api routes without a contract: {', '.join(missing)}")


def _models(op: Operation) -> Iterator[type[BaseModel]]:
    if op.body_model is not None:
        yield op.body_model
    if op.raw_body is not None:
        yield op.raw_body
    for answer in op.all_responses().values():
        if answer.model is not None:
            yield answer.model
    for model in op.extra.get("x-sse-events", {}).values():
        if isinstance(model, type) and issubclass(model, BaseModel):
            yield model


def _parameters(model: type[BaseModel], where: str) -> list[Schema]:
    schema = model.model_json_schema(ref_template=REF)
    if "$defs" in schema:
        raise TypeError(f"{model.__name__}: parameters must be plain values")
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "description")}
        # An optional parameter is absent, never null: only its value's type is documented.
        options = [o for o in prop.get("anyOf", ()) if o != {"type": "null"}]
        if "anyOf" in prop and len(options) == 1:
            prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **options[0]}
        if prop.get("default", "") is None:
            del prop["default"]
        param: Schema = {"name": name, "in": where, "required": where == "path" or name in required}
        description = model.model_fields[name].description
        if description:
            param["description"] = description
        param["schema"] = prop
        out.append(param)
    return out


def _ref(schemas: Mapping[Any, Schema], model: type[BaseModel]) -> Schema:
    return dict(schemas[(model, "validation")])


def document(app: web.Application) -> Schema:
    """The OpenAPI 3.1 document of the app's /api operations."""
    operations = [(m, p, op) for m, p, r in _api_routes(app) if (op := _contract_of(r))]
    models = {model for _, _, op in operations for model in _models(op)}
    models.add(Error)
    refs, top = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template=REF,
    )
    paths: dict[str, Schema] = {}
    for method, path, op in operations:
        out: Schema = {"summary": op.summary, "security": SECURITY[op.auth]}
        if op.tags:
            out["tags"] = list(op.tags)
        if op.description:
            out["description"] = op.description
        parameters: list[Schema] = []
        if op.path_model is not None:
            parameters += _parameters(op.path_model, "path")
        if op.query_model is not None:
            parameters += _parameters(op.query_model, "query")
        if parameters:
            out["parameters"] = parameters
        body = op.body_model or op.raw_body
        if body is not None:
            out["requestBody"] = {
                "required": op.body_required,
                "content": {op.body_media: {"schema": _ref(refs, body)}},
            }
        responses: Schema = {}
        for status, answer in op.all_responses().items():
            item: Schema = {"description": answer.description}
            content: Schema = {}
            if answer.model is not None:
                content[answer.media] = {"schema": _ref(refs, answer.model)}
            elif answer.schema is not None:
                content[answer.media] = {"schema": answer.schema}
            for media, schema in answer.extra_media.items():
                content[media] = {"schema": schema}
            if content:
                item["content"] = content
            responses[str(status)] = item
        out["responses"] = responses
        for key, value in op.extra.items():
            if key == "x-sse-events":
                value = {name: _ref(refs, model) for name, model in value.items()}
            out[key] = value
        paths.setdefault(path, {})[method.lower()] = out
    return {
        "openapi": "3.1.0",
        "info": {"title": "NetRoom API", "version": "1"},
        "servers": [{"url": app[CONTEXT].public_url.rstrip("/")}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": top.get("$defs", {}), "securitySchemes": SECURITY_SCHEMES},
    }


class OpenApiDocument(Out):
    """An OpenAPI 3.1 document."""

    model_config = ConfigDict(extra="allow")
    openapi: str
    paths: dict[str, Any]


DOCUMENT = web.AppKey("openapi_document", dict[str, Schema])


@operation(
    "GET",
    "/api/openapi.json",
    summary="This OpenAPI document",
    auth="none",
    responses={200: Answer("OpenAPI 3.1.", OpenApiDocument)},
)
async def show_openapi(request: web.Request) -> web.Response:
    cache = request.app[DOCUMENT]
    if "doc" not in cache:
        cache["doc"] = document(request.app)
    return web.json_response(cache["doc"])


def setup(app: web.Application) -> None:
    app[DOCUMENT] = {}
    add_routes(app, show_openapi)
