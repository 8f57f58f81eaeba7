"""mkdocs hook: the message contracts, generated from ``schemas/json/*.schema.json``.

Replaces ``<!-- generated: contracts -->`` with a section per schema file: its title, ``$id``
and description, then every property with its type, whether it is required, its constraints
and its description. The page is the schema files, so it cannot drift from them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MARKER = "<!-- generated: contracts -->"
CONSTRAINTS = ("minLength", "maxLength", "minimum", "maximum", "minItems", "minProperties", "pattern")


def _type(spec: dict[str, Any]) -> str:
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    if "enum" in spec:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in spec["enum"])
    if "oneOf" in spec:
        return " or ".join(_type(s) for s in spec["oneOf"])
    kinds = spec.get("type", "any")
    text = " or ".join(kinds) if isinstance(kinds, list) else kinds
    if "items" in spec:
        text += f" of {_type(spec['items'])}"
    if isinstance(spec.get("additionalProperties"), dict):
        text += f" of {_type(spec['additionalProperties'])}"
    return text


def _constraints(spec: dict[str, Any]) -> str:
    return ", ".join(f"{k} `{spec[k]}`" for k in CONSTRAINTS if k in spec)


def _section(path: Path) -> str:
    schema = json.loads(path.read_text(encoding="utf-8"))
    if "title" not in schema or "properties" not in schema:
        raise ValueError(f"{path}: a contract needs a title and properties")
    required = set(schema.get("required", []))
    alternatives = [set(alt["required"]) for key in ("oneOf", "anyOf") for alt in schema.get(key, [])]
    lines = [f"## `{path.name.removesuffix('.schema.json')}`", "", f"**{schema['title']}** (`$id`: `{schema['$id']}`)", ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    lines += ["| property | type | required | constraints | description |", "|---|---|---|---|---|"]
    for name, spec in schema["properties"].items():
        need = "yes" if name in required else "see below" if any(name in alt for alt in alternatives) else "no"
        lines.append(f"| `{name}` | {_type(spec)} | {need} | {_constraints(spec)} | {spec.get('description', '')} |")
    for key, words in (("oneOf", "exactly one of"), ("anyOf", "at least one of")):
        if key in schema:
            options = " / ".join(", ".join(f"`{n}`" for n in alt["required"]) for alt in schema[key])
            lines += ["", f"Required: {words} {options}."]
    return "\n".join(lines)


def on_page_markdown(markdown: str, config: Any, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    files = sorted((Path(config.config_file_path).parent / "schemas" / "json").glob("*.schema.json"))
    if not files:
        raise ValueError("no schemas/json/*.schema.json found")
    return markdown.replace(MARKER, "\n\n".join(_section(f) for f in files))
