#!/usr/bin/env python3
"""Validates recorded admin API answers against docs/admin-openapi.yaml.

Usage: openapi_check.py SPEC.yaml RESULTS.json

RESULTS.json is a list of {"method", "path" (the template, e.g.
/sessions/{id}), "status", "content_type", "headers", "body"} that the e2e
test (tests/tests/admin_api.rs) recorded from the running danxia. For each:
the status must be documented for the operation, the content type must be
one the response documents, the body must validate against that content's
schema (JSON Schema 2020-12, as OpenAPI 3.1 uses), and a 401 must carry
WWW-Authenticate. Prints every mismatch; exit 0 when there is none.
"""

import json
import sys

import jsonschema
import yaml


def resolve(doc, obj):
    """Follows a local $ref (#/components/...) of a response object."""
    while isinstance(obj, dict) and "$ref" in obj and len(obj) == 1:
        ref = obj["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local refs are supported: {ref}")
        cur = doc
        for part in ref[2:].split("/"):
            cur = cur[part]
        obj = cur
    return obj


def check(doc, r):
    errors = []
    where = f"{r['method']} {r['path']} -> {r['status']}"
    item = doc["paths"].get(r["path"])
    if item is None:
        return [f"{where}: path not in the description"]
    op = item.get(r["method"].lower())
    if op is None:
        return [f"{where}: method not in the description"]
    responses = op.get("responses", {})
    resp = responses.get(str(r["status"])) or responses.get("default")
    if resp is None:
        return [f"{where}: status not documented (documented: {sorted(responses)})"]
    resp = resolve(doc, resp)
    if r["status"] == 401 and "www-authenticate" not in r.get("headers", {}):
        errors.append(f"{where}: 401 without WWW-Authenticate")
    content = resp.get("content")
    if not content:
        return errors
    ctype = (r.get("content_type") or "").split(";")[0].strip().lower()
    media = content.get(ctype)
    if media is None:
        errors.append(f"{where}: content type {ctype!r} not documented (documented: {sorted(content)})")
        return errors
    schema = media.get("schema")
    if schema is None:
        return errors
    if ctype.endswith("json"):
        try:
            body = json.loads(r["body"])
        except ValueError as e:
            errors.append(f"{where}: body is not JSON ({e}): {r['body'][:200]!r}")
            return errors
    else:
        body = r["body"]
    # Local refs (#/components/...) resolve against the root: carry the
    # components along (an unknown keyword to JSON Schema).
    root = dict(schema)
    root["components"] = doc.get("components", {})
    v = jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())
    for e in sorted(v.iter_errors(body), key=lambda e: list(e.absolute_path)):
        path = "/".join(str(p) for p in e.absolute_path)
        errors.append(f"{where}: body at /{path}: {e.message}")
    return errors


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        doc = yaml.safe_load(f)
    jsonschema.Draft202012Validator.check_schema({"$defs": doc["components"]["schemas"]})
    with open(sys.argv[2]) as f:
        results = json.load(f)
    errors = []
    for r in results:
        errors.extend(check(doc, r))
    for e in errors:
        print(e)
    print(f"openapi_check: {len(results)} answers, {len(errors)} mismatches")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
