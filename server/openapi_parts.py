"""The small builders of the OpenAPI document (`quizroom.server.openapi`), shared by the modules that describe its
parts (`quizroom.server.openapi_library`)."""

from __future__ import annotations

from typing import Any

JSON = "application/json"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def text(max_length: int, description: str = "") -> Schema:
    schema: Schema = {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": r"\S"}
    if description:
        schema["description"] = description
    return schema


def obj(properties: dict[str, Schema], required: list[str] | None = None, **extra: Any) -> Schema:
    return {"type": "object", "properties": properties, "required": required or list(properties), **extra}


def json_body(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def error(description: str) -> Schema:
    return json_body(ref("Error"), description)


INT = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
ADMIN: list[dict[str, list[str]]] = [{}, {"bearer": []}]  # open unless the server has an admin token
