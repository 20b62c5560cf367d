"""The shapes every area shares: the error envelope, lists, timestamps."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Timestamp = str  # ISO-8601 UTC with a "Z" (busque.api.views.iso)


class ErrorInfo(BaseModel):
    code: str = Field(description="a stable, machine-readable reason, e.g. `job_not_found`")
    message: str = Field(description="what went wrong, for people")
    details: dict[str, Any] = Field(description="more about it: the invalid fields, limits...")


class ErrorEnvelope(BaseModel):
    """Every error busque answers (its own routes and the front doors)."""

    error: ErrorInfo


WHY = {
    400: "The body is not valid JSON, or a value (a cursor, a key) is malformed",
    401: "No API key, or an unknown or revoked one",
    403: "The key lacks the scope this operation needs",
    404: "No such object for this tenant (another tenant's object is also a 404)",
    408: "The request body did not arrive in time",
    409: "The object's state does not allow it (e.g. cancelling a finished job)",
    413: "The body is larger than allowed",
    415: "The body's Content-Type is not one this operation takes",
    422: "The request does not match the schema; `details.errors` lists each problem",
    429: "Too many requests, streams, uploads or jobs for this tenant; see Retry-After",
    503: "The database, the object store or a model cannot be reached now; see Retry-After",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` for these error statuses, each answering the envelope."""
    return {status: {"model": ErrorEnvelope, "description": WHY[status]} for status in statuses}


class Page(BaseModel):
    object: Literal["list"]


def event_stream(summary: str, data: type[BaseModel], events: dict[str, str]) -> dict:
    """FastAPI `responses=` for a server-sent event stream whose `data:` lines are `data`
    (named in the `x-data` extension: OpenAPI 3.1 cannot type a stream's items)."""
    kinds = "\n".join(f"- `{name}`: {what}" for name, what in events.items())
    return {
        200: {
            "description": f"{summary}\n\nEvents (`event:` line, `data:` a JSON {data.__name__}):"
            f"\n{kinds}\n\nComment lines (`: keepalive`) keep idle connections open.",
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "x-data": {"$ref": f"#/components/schemas/{data.__name__}"},
                }
            },
        }
    }


BODY_MODELS: list[type[BaseModel]] = []  # models named by hand-read bodies (busque.api.openapi)


def body_schema(fields: type[BaseModel]) -> dict:
    """A reference to `fields`' schema, which the document's components then hold."""
    BODY_MODELS.append(fields)
    return {"$ref": f"#/components/schemas/{fields.__name__}"}


def json_body(fields: type[BaseModel]) -> dict:
    """FastAPI `openapi_extra` declaring a JSON body a route reads itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": body_schema(fields)}},
        }
    }


def form_body(file_field: str, fields: dict[str, dict], json: type[BaseModel] | None = None):
    """FastAPI `openapi_extra` declaring a body a route reads itself (to stream a capped upload,
    or to keep busque's strict JSON rules): a multipart form with the file in `file_field` and
    text `fields` (their JSON schemas), and, given `json`, that JSON body as the alternative."""
    form = {
        "type": "object",
        "required": [file_field],
        "properties": {file_field: {"type": "string", "format": "binary"}, **fields},
    }
    content: dict[str, Any] = {"multipart/form-data": {"schema": form}}
    if json is not None:
        content["application/json"] = {"schema": body_schema(json)}
    return {"requestBody": {"required": True, "content": content}}


def hand_read_body(fields: type[BaseModel], image_field: str = "image") -> dict:
    """`form_body` of a JSON model whose fields (but base64 images) are also form fields."""
    form = {
        name: {"type": "string", "description": info.description or ""}
        for name, info in fields.model_fields.items()
        if not name.endswith("_base64")
    }
    return form_body(image_field, form, json=fields)
