"""The official JSON schemas, loaded from the packages that ship them (test dependencies):
CycloneDX 1.6 (+ the SPDX licence-id and JSF schemas it references) from
``cyclonedx-python-lib``; SPDX 2.3 from ``lib4sbom`` (a copy of spdx-spec's schema)."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

import jsonschema
from referencing import Registry, Resource

_CDX_REFS = ("spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json")


@cache
def cyclonedx_validator() -> jsonschema.protocols.Validator:
    res = files("cyclonedx.schema") / "_res"
    schema = json.loads((res / "bom-1.6.SNAPSHOT.schema.json").read_text())
    reg: Registry[Any] = Registry()
    for name in _CDX_REFS:
        r = Resource.from_contents(json.loads((res / name).read_text()))
        reg = reg.with_resource(name, r).with_resource(f"http://cyclonedx.org/schema/{name}", r)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=reg, format_checker=cls.FORMAT_CHECKER)


@cache
def spdx_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((files("lib4sbom") / "schemas" / "spdx" / "2.3-schema.json").read_text())
    assert schema["title"] == "SPDX 2.3"
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def errors(validator: jsonschema.protocols.Validator, doc: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def spdx_expression_errors(doc: Any) -> list[str]:
    """licenseDeclared values that an independent SPDX expression parser (``license-expression``,
    a dependency of cyclonedx-python-lib) rejects. LicenseRef- ids are valid but unknown to it."""
    import re

    from license_expression import get_spdx_licensing

    licensing = get_spdx_licensing()
    ref_only = re.compile(
        r"Unknown license key\(s\): LicenseRef-[A-Za-z0-9.-]+(, LicenseRef-[A-Za-z0-9.-]+)*"
    )
    out = []
    for p in doc["packages"]:
        expr = p.get("licenseDeclared", "NOASSERTION")
        if expr in ("NOASSERTION", "NONE"):
            continue
        errs = [e for e in licensing.validate(expr).errors if not ref_only.fullmatch(e)]
        if errs:
            out.append(f"{p['name']}: {expr!r}: {errs}")
    return out
