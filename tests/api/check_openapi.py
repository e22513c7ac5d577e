#!/usr/bin/env python3
"""Checks recorded live responses of credprov-backend against its OpenAPI document.

Usage:
  check_openapi.py --spec network_backend/openapi.json --trace TRACE.jsonl
                   [--trace MORE.jsonl ...] [--routes ROUTES.txt] [--require-coverage]

The trace holds one JSON object per line, written by the C++ integration tests:
  {"method": "POST", "path": "/v1/bundles?x=y", "status": 201,
   "content_type": "application/json", "body": <parsed JSON body, or a string for non-JSON>}

For every record the checker finds the documented path template ({param} matches
one path segment; the query string is ignored) and method, the response documented
for the status (exact code, then a range such as 4XX, then `default`, which never
stands for a 2xx), the documented media type (errors must be
application/problem+json), and validates the body against the response schema.
OpenAPI 3.0 schemas are converted to JSON Schema (draft 4) first: `nullable: true`
becomes a type list with "null", and OpenAPI-only keywords are dropped.

--routes FILE   lines `METHOD PATH` (optionally a third column with the access:
                `anonymous`, or a comma-separated list of `provisioner` and role
                names): the server's route table. Every route must be documented and
                every documented operation must be a route; a given access must
                match the operation's `x-credprov-access`.
--require-coverage
                every documented operation must appear in the trace at least once
                with a 2xx status.
--allow-unknown-path-404
                a record for a path the document does not have passes when it is a
                404 problem document (for tests that probe unknown paths).

The document itself is checked too: required top-level keys, every $ref resolves,
unique operationIds, declared path parameters, known security schemes, error
responses as application/problem+json, schemas that are valid JSON Schema once
converted, and no `)credprov_json"` (it is embedded as a C++ raw string literal).

Exit status: 0 when everything conforms, 1 on any failure (or an empty trace),
2 on a usage error. Needs only Python 3 and python3-jsonschema (4.10 or later).
"""

import argparse
import copy
import json
import re
import sys

try:
    import jsonschema
    from jsonschema.exceptions import best_match
except ImportError:  # pragma: no cover - reported clearly instead of a traceback
    sys.stderr.write("check_openapi.py: the Python module 'jsonschema' is missing (apt-get install python3-jsonschema)\n")
    sys.exit(2)

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PROBLEM_MEDIA = "application/problem+json"
EMBED_TERMINATOR = ')credprov_json"'

# Keywords whose value is one schema, a list of schemas, or a map of name -> schema.
SCHEMA_ONE = ("items", "additionalProperties", "not", "additionalItems")
SCHEMA_LIST = ("allOf", "anyOf", "oneOf")
SCHEMA_MAP = ("properties", "patternProperties", "definitions")
# OpenAPI 3.0 schema keywords that JSON Schema does not have (nullable is converted).
OPENAPI_ONLY = ("nullable", "discriminator", "readOnly", "writeOnly", "xml", "externalDocs", "example", "deprecated")


def short(text, limit=300):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_pointer_get(doc, pointer):
    """Resolves a local reference '#/a/b'; raises KeyError when it does not resolve."""
    if not isinstance(pointer, str) or not pointer.startswith("#"):
        raise KeyError("only local references ('#/...') are supported")
    node = doc
    path = pointer[1:]
    if path == "":
        return node
    if not path.startswith("/"):
        raise KeyError("not a JSON pointer")
    for raw in path[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError("no '%s'" % token)
    return node


def to_json_schema(node):
    """Converts an OpenAPI 3.0 Schema Object to an equivalent JSON Schema (draft 4)."""
    if isinstance(node, bool) or not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in OPENAPI_ONLY:
            continue
        if key in SCHEMA_ONE:
            out[key] = [to_json_schema(v) for v in value] if isinstance(value, list) else to_json_schema(value)
        elif key in SCHEMA_LIST and isinstance(value, list):
            out[key] = [to_json_schema(v) for v in value]
        elif key in SCHEMA_MAP and isinstance(value, dict):
            out[key] = {name: to_json_schema(v) for name, v in value.items()}
        else:
            out[key] = copy.deepcopy(value)  # enum, default, required, pattern, $ref, ...
    if node.get("nullable") is True:
        if "$ref" in out or "type" not in out:
            out = {"anyOf": [out, {"type": "null"}]}
        else:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            if "null" not in types:
                out["type"] = types + ["null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = list(out["enum"]) + [None]
    return out


def media_type(content_type):
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_media(media):
    return media == "application/json" or media.endswith("+json")


class Operation:
    def __init__(self, method, template, op):
        self.method = method.upper()
        self.template = template
        self.op = op
        self.operation_id = op.get("operationId", "?")
        self.param_count = len(re.findall(r"\{[^}/]+\}", template))
        parts = re.split(r"(\{[^}/]+\})", template)
        self.regex = re.compile(
            "^" + "".join("[^/]+" if p.startswith("{") and p.endswith("}") else re.escape(p) for p in parts) + "$")

    def key(self):
        return (self.method, self.template)

    def label(self):
        return "%s %s (%s)" % (self.method, self.template, self.operation_id)


class Checker:
    def __init__(self, spec_path, max_errors, allow_unknown_404=False):
        self.failures = []
        self.allow_unknown_404 = allow_unknown_404
        self.unknown_404 = 0
        self.max_errors = max_errors
        self.operations = []
        self.validators = {}
        self.converted_components = None
        try:
            with open(spec_path, "r", encoding="utf-8") as f:
                self.raw = f.read()
            self.doc = json.loads(self.raw)
        except (OSError, ValueError) as e:
            self.fail("spec: cannot read %s: %s" % (spec_path, e))
            self.doc = None
            return
        self.check_spec()

    # ---- reporting ------------------------------------------------------------

    def fail(self, message):
        self.failures.append(message)

    # ---- the document ---------------------------------------------------------

    def deref(self, node, where):
        """Follows $ref chains (responses, parameters, headers, request bodies)."""
        seen = set()
        while isinstance(node, dict) and "$ref" in node:
            target = node["$ref"]
            if target in seen:
                raise KeyError("%s: $ref loop at %s" % (where, target))
            seen.add(target)
            node = json_pointer_get(self.doc, target)
        return node

    def check_spec(self):
        doc = self.doc
        if not isinstance(doc, dict):
            self.fail("spec: the document is not a JSON object")
            return
        if EMBED_TERMINATOR in self.raw:
            self.fail("spec: the document contains %s, which ends the raw string literal embed.cmake writes" % EMBED_TERMINATOR)
        version = doc.get("openapi")
        if not isinstance(version, str) or not re.match(r"^3\.0\.\d+$", version):
            self.fail("spec: 'openapi' must be a 3.0.x version string (found %r)" % (version,))
        info = doc.get("info")
        if not isinstance(info, dict) or not isinstance(info.get("title"), str) or not isinstance(info.get("version"), str):
            self.fail("spec: 'info' must be an object with string 'title' and 'version'")
        paths = doc.get("paths")
        if not isinstance(paths, dict) or not paths:
            self.fail("spec: 'paths' must be a non-empty object")
            return
        components = doc.get("components", {})
        if not isinstance(components, dict):
            self.fail("spec: 'components' must be an object")
            components = {}
        for key in doc:
            if key not in ("openapi", "info", "servers", "paths", "components", "security", "tags", "externalDocs") \
                    and not key.startswith("x-"):
                self.fail("spec: unknown top-level key '%s'" % key)

        # Every $ref resolves.
        def walk(node, where):
            if isinstance(node, dict):
                if "$ref" in node:
                    try:
                        json_pointer_get(doc, node["$ref"])
                    except KeyError as e:
                        self.fail("spec: %s: $ref %r does not resolve (%s)" % (where, node["$ref"], e))
                for k, v in node.items():
                    walk(v, where + "/" + str(k).replace("~", "~0").replace("/", "~1"))
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, "%s/%d" % (where, i))

        refs_before = len(self.failures)
        walk(doc, "#")
        if len(self.failures) > refs_before:
            return  # the rest would trip over the broken references

        schemes = components.get("securitySchemes", {}) if isinstance(components.get("securitySchemes", {}), dict) else {}
        seen_ids = {}
        for template, item in paths.items():
            if not template.startswith("/"):
                self.fail("spec: path '%s' does not start with '/'" % template)
            if not isinstance(item, dict):
                self.fail("spec: path '%s' is not an object" % template)
                continue
            path_params = item.get("parameters", [])
            for method in HTTP_METHODS:
                if method not in item:
                    continue
                op = item[method]
                where = "%s %s" % (method.upper(), template)
                if not isinstance(op, dict):
                    self.fail("spec: %s is not an object" % where)
                    continue
                opid = op.get("operationId")
                if not isinstance(opid, str) or not opid:
                    self.fail("spec: %s has no operationId" % where)
                elif opid in seen_ids:
                    self.fail("spec: operationId '%s' is used by %s and %s" % (opid, seen_ids[opid], where))
                else:
                    seen_ids[opid] = where
                # Path parameters: every {name} declared, in: path, required.
                declared = {}
                for p in list(path_params) + list(op.get("parameters", [])):
                    try:
                        p = self.deref(p, where)
                    except KeyError as e:
                        self.fail("spec: %s" % e)
                        continue
                    if isinstance(p, dict) and p.get("in") == "path":
                        declared[p.get("name")] = p
                        if p.get("required") is not True:
                            self.fail("spec: %s: path parameter '%s' must be required" % (where, p.get("name")))
                for name in re.findall(r"\{([^}/]+)\}", template):
                    if name not in declared:
                        self.fail("spec: %s: path parameter '%s' is not declared" % (where, name))
                for name in declared:
                    if "{%s}" % name not in template:
                        self.fail("spec: %s: declares path parameter '%s' that the path does not have" % (where, name))
                # Security requirements name known schemes.
                for req in op.get("security", doc.get("security", [])):
                    for name in req:
                        if name not in schemes:
                            self.fail("spec: %s: unknown security scheme '%s'" % (where, name))
                # Responses.
                responses = op.get("responses")
                if not isinstance(responses, dict) or not responses:
                    self.fail("spec: %s has no responses" % where)
                    continue
                for code, resp in responses.items():
                    if not re.match(r"^([1-5][0-9][0-9]|[1-5]XX|default)$", code):
                        self.fail("spec: %s: response key '%s' is not a status code" % (where, code))
                        continue
                    resp = self.deref(resp, where)
                    if not isinstance(resp, dict) or not isinstance(resp.get("description"), str):
                        self.fail("spec: %s %s: a response needs a description" % (where, code))
                        continue
                    content = resp.get("content", {})
                    if code[0] in "45" and set(content) != {PROBLEM_MEDIA}:
                        self.fail("spec: %s %s: an error response must be %s only (documented: %s)"
                                  % (where, code, PROBLEM_MEDIA, ", ".join(sorted(content)) or "no content"))
                self.operations.append(Operation(method, template, op))

        # Schemas are valid JSON Schema once converted.
        validator_class = jsonschema.Draft4Validator
        for name, schema in (components.get("schemas") or {}).items():
            try:
                validator_class.check_schema(to_json_schema(schema))
            except jsonschema.exceptions.SchemaError as e:
                self.fail("spec: components/schemas/%s is not a valid schema: %s" % (name, short(e.message)))
        for o in self.operations:
            for code, resp in o.op["responses"].items():
                for media, mt in (self.deref(resp, o.label()).get("content") or {}).items():
                    if isinstance(mt, dict) and "schema" in mt:
                        try:
                            validator_class.check_schema(to_json_schema(mt["schema"]))
                        except jsonschema.exceptions.SchemaError as e:
                            self.fail("spec: %s %s %s: invalid schema: %s" % (o.label(), code, media, short(e.message)))

    # ---- matching -------------------------------------------------------------

    def find_operation(self, method, path):
        """Returns (operation, None) or (None, reason)."""
        bare = path.split("?", 1)[0].split("#", 1)[0]
        candidates = [o for o in self.operations if o.regex.match(bare)]
        if not candidates:
            return None, "the path is not documented"
        # A literal segment beats a parameter (/v1/audit/verify before /v1/audit/{x}).
        candidates.sort(key=lambda o: (o.param_count, -len(o.template)))
        for o in candidates:
            if o.method == method:
                return o, None
        return None, "method %s is not documented for %s (documented: %s)" % (
            method, candidates[0].template, ", ".join(sorted({o.method for o in candidates})))

    @staticmethod
    def find_response_key(responses, status):
        key = str(status)
        if key in responses:
            return key
        for k in responses:
            if k.upper() == key[0] + "XX":
                return k
        if "default" in responses and not 200 <= status < 300:
            return "default"
        return None

    def validator_for(self, op, code, media, schema):
        cache_key = (op.key(), code, media)
        v = self.validators.get(cache_key)
        if v is None:
            if self.converted_components is None:
                components = copy.deepcopy(self.doc.get("components", {}))
                components["schemas"] = {n: to_json_schema(s) for n, s in (components.get("schemas") or {}).items()}
                self.converted_components = components
            # $ref '#/components/...' resolves against this root document.
            root = {"allOf": [to_json_schema(schema)], "components": self.converted_components}
            v = jsonschema.Draft4Validator(root)
            self.validators[cache_key] = v
        return v

    # ---- records --------------------------------------------------------------

    def check_unknown_path_404(self, head, rec):
        """A request to a path the API does not have: the server's 404 problem document."""
        self.unknown_404 += 1
        if media_type(rec.get("content_type")) != PROBLEM_MEDIA:
            self.fail("%s: an error must be %s, got %r" % (head, PROBLEM_MEDIA, rec.get("content_type")))
            return
        problem = (self.doc.get("components", {}).get("schemas") or {}).get("Problem")
        if problem is None:
            self.fail("%s: the document has no components/schemas/Problem to check an unknown path's 404 against" % head)
            return
        op = Operation("get", "(unknown path)", {"operationId": "unknown-path"})
        v = self.validator_for(op, "404", PROBLEM_MEDIA, {"$ref": "#/components/schemas/Problem"})
        errors = list(v.iter_errors(rec.get("body")))
        if errors:
            self.fail("%s: the 404 of an unknown path is not a Problem: %s" % (head, short(errors[0].message)))

    def check_record(self, where, rec):
        """Returns the matched Operation (or None) and appends failures."""
        if not isinstance(rec, dict):
            self.fail("%s: the record is not a JSON object" % where)
            return None
        method, path, status = rec.get("method"), rec.get("path"), rec.get("status")
        if not isinstance(method, str) or not isinstance(path, str) or not path.startswith("/") \
                or not isinstance(status, int) or isinstance(status, bool):
            self.fail("%s: the record needs 'method' (string), 'path' (string from '/') and 'status' (integer)" % where)
            return None
        method = method.upper()
        head = "%s: %s %s -> %d" % (where, method, path, status)
        op, reason = self.find_operation(method, path)
        if op is None:
            if self.allow_unknown_404 and status == 404 and reason == "the path is not documented":
                self.check_unknown_path_404(head, rec)
            else:
                self.fail("%s: undocumented: %s" % (head, reason))
            return None
        responses = op.op["responses"]
        code = self.find_response_key(responses, status)
        if code is None:
            self.fail("%s: status %d is not documented for %s (documented: %s)"
                      % (head, status, op.label(), ", ".join(sorted(responses))))
            return op
        resp = self.deref(responses[code], op.label())
        content = resp.get("content") or {}
        got_media = media_type(rec.get("content_type"))
        body = rec.get("body")
        if status >= 400 and got_media != PROBLEM_MEDIA:
            self.fail("%s: an error must be %s, got %r" % (head, PROBLEM_MEDIA, rec.get("content_type")))
        if not content:
            if body not in (None, "", {}):
                self.fail("%s: a body was sent but response %s of %s documents none" % (head, code, op.label()))
            return op
        documented = {m.lower(): mt for m, mt in content.items()}
        mt = documented.get(got_media)
        if mt is None and got_media:
            mt = documented.get(got_media.split("/", 1)[0] + "/*")
        if mt is None:
            mt = documented.get("*/*")
        if mt is None:
            self.fail("%s: content type %r is not documented for response %s of %s (documented: %s)"
                      % (head, rec.get("content_type"), code, op.label(), ", ".join(sorted(content))))
            return op
        schema = mt.get("schema") if isinstance(mt, dict) else None
        if schema is None:
            return op
        if not is_json_media(got_media) and not isinstance(body, str):
            body = json.dumps(body)  # the recorder parsed a text body that happened to be JSON
        if "body" not in rec:
            self.fail("%s: the record has no 'body'" % head)
            return op
        validator = self.validator_for(op, code, got_media, schema)
        errors = sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
        if errors:
            lines = []
            for e in errors[: self.max_errors]:
                at = "/" + "/".join(str(p) for p in e.absolute_path)
                msg = e.message
                if e.validator in ("oneOf", "anyOf") and e.context:
                    msg = "matches none of the %s alternatives" % e.validator
                if e.context:
                    msg += " (closest: %s)" % best_match(e.context).message
                lines.append("      at %s: %s" % (at, short(msg)))
            if len(errors) > self.max_errors:
                lines.append("      ... and %d more" % (len(errors) - self.max_errors))
            self.fail("%s: the body does not match response %s %s of %s:\n%s"
                      % (head, code, got_media, op.label(), "\n".join(lines)))
        return op


def read_routes(path, checker):
    routes = {}
    try:
        with open(path, "r", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        checker.fail("routes: cannot read %s: %s" % (path, e))
        return None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) not in (2, 3) or not parts[1].startswith("/"):
            checker.fail("routes: %s:%d: expected 'METHOD PATH [ACCESS]', got %r" % (path, n, line))
            continue
        routes[(parts[0].upper(), parts[1])] = parts[2] if len(parts) == 3 else None
    return routes


def access_of(op):
    a = op.op.get("x-credprov-access")
    if not isinstance(a, dict):
        return None
    if a.get("anonymous"):
        return {"anonymous"}
    s = set(a.get("roles") or [])
    if a.get("provisioner"):
        s.add("provisioner")
    return s


def main(argv=None):
    ap = argparse.ArgumentParser(description="Check recorded credprov-backend responses against the OpenAPI document.")
    ap.add_argument("--spec", required=True, help="the OpenAPI 3.0 document (network_backend/openapi.json)")
    ap.add_argument("--trace", required=True, action="append", help="a JSON-lines trace (may be given more than once)")
    ap.add_argument("--routes", help="the server's route table: lines 'METHOD PATH [ACCESS]'")
    ap.add_argument("--require-coverage", action="store_true",
                    help="fail unless every documented operation was seen with a 2xx status")
    ap.add_argument("--allow-unknown-path-404", action="store_true",
                    help="accept a 404 problem document for a path the document does not have (a test probing "
                    "unknown paths) instead of failing it as undocumented")
    ap.add_argument("--max-errors", type=int, default=5, help="schema errors shown per record (default 5)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list the statuses seen for every operation")
    args = ap.parse_args(argv)

    checker = Checker(args.spec, max(1, args.max_errors), args.allow_unknown_path_404)
    if checker.doc is None or not checker.operations:
        for f in checker.failures:
            print("FAIL " + f)
        print("check_openapi: the document %s cannot be used (see above); nothing else was checked" % args.spec)
        return 1

    # ---- the route table ----
    if args.routes:
        routes = read_routes(args.routes, checker)
        if routes is not None:
            documented = {o.key(): o for o in checker.operations}
            for key in sorted(routes):
                if key not in documented:
                    checker.fail("routes: %s %s is served but not documented" % key)
                    continue
                given = routes[key]
                want = access_of(documented[key])
                if given is not None and want is not None:
                    got = {"anonymous"} if given == "anonymous" else set(given.split(","))
                    if got != want:
                        checker.fail("routes: %s %s: served with access %s, documented as %s"
                                     % (key[0], key[1], ",".join(sorted(got)), ",".join(sorted(want))))
            for key in sorted(documented):
                if key not in routes:
                    checker.fail("routes: %s %s is documented but not served" % key)

    # ---- the trace ----
    records = 0
    seen = {}  # operation key -> {status: count}
    for trace in args.trace:
        try:
            f = open(trace, "r", encoding="utf-8")
        except OSError as e:
            checker.fail("trace: cannot read %s: %s" % (trace, e))
            continue
        with f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = "%s:%d" % (trace, n)
                try:
                    rec = json.loads(line)
                except ValueError as e:
                    checker.fail("%s: not a JSON line: %s" % (where, e))
                    continue
                records += 1
                op = checker.check_record(where, rec)
                if op is not None:
                    seen.setdefault(op.key(), {})
                    seen[op.key()][rec["status"]] = seen[op.key()].get(rec["status"], 0) + 1
    if records == 0:
        checker.fail("trace: no records in %s" % ", ".join(args.trace))

    covered = [o for o in checker.operations if any(200 <= s < 300 for s in seen.get(o.key(), {}))]
    uncovered = [o for o in checker.operations if o not in covered]
    if args.require_coverage and uncovered:
        checker.fail("coverage: %d documented operation(s) never answered 2xx in the trace:\n%s"
                     % (len(uncovered), "\n".join("      " + o.label() for o in uncovered)))

    # ---- report ----
    for f in checker.failures:
        print("FAIL " + f)
    if args.verbose:
        print("statuses seen per operation:")
        for o in checker.operations:
            statuses = seen.get(o.key(), {})
            text = ", ".join("%d x%d" % (s, c) for s, c in sorted(statuses.items())) or "never called"
            print("  %-55s %s" % (o.label(), text))
    elif uncovered and not args.require_coverage:
        print("operations never answered 2xx: " + ", ".join(o.operation_id for o in uncovered))
    if checker.unknown_404:
        print("%d record(s) of unknown paths answered 404 (accepted by --allow-unknown-path-404)" % checker.unknown_404)
    print("check_openapi: %d record(s) checked; operations covered (2xx) %d/%d; %d failure(s)"
          % (records, len(covered), len(checker.operations), len(checker.failures)))
    return 1 if checker.failures else 0


if __name__ == "__main__":
    sys.exit(main())
