"""Croissant 1.1 metadata (``croissant.json``) of a release, with the standard ``@context``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..schema import (
    SCHEMA_VERSION,
)
from .stats import Stats, license_url

# -- Croissant ------------------------------------------------------------------------------------
CROISSANT_VERSION = "1.1"  # isArray / arrayShape are Croissant 1.1 terms
CROISSANT_CONFORMS_TO = f"http://mlcommons.org/croissant/{CROISSANT_VERSION}"
# The standard Croissant 1.1 @context, key for key (mlcroissant 1.1.1's ``make_context`` for a
# 1.1 document; a test compares them, so a reader sees no "@context is not standard" warning).
CROISSANT_CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "description": {"@container": "@language"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "name": {"@container": "@language"},
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
ZARR_MIME = "application/vnd+zarr"


def _data_type(dtype: str) -> str:
    try:
        kind = np.dtype(dtype).kind
    except TypeError:  # "string" (variable-length text)
        kind = "U"
    return {
        "f": "sc:Float",
        "c": "sc:Float",
        "i": "sc:Integer",
        "u": "sc:Integer",
        "b": "sc:Boolean",
    }.get(kind, "sc:Text")


def croissant(
    st: Stats,
    *,
    name: str,
    license_id: str,
    store_entry: dict | None,
    description: str,
    date: str,
    url: str | None = None,
) -> dict:
    """Croissant 1.1 metadata (standard ``@context``): the store as a FileObject (zip) or
    FileSet (directory), one RecordSet per condition with one Field per array (``isArray`` /
    ``arrayShape`` for the n-d variables; complex64 is described as Float with a note)."""
    versions = st.attrs.get("versions", {})
    dist = []
    source_key = None
    if store_entry is not None:
        dist.append(store_entry)
        source_key = (
            "fileObject" if store_entry["@type"] == "cr:FileObject" else "fileSet",
            store_entry["@id"],
        )
    record_sets = []
    for cond in st.conditions:
        fields = []
        for a in st.arrays:
            f = {
                "@type": "cr:Field",
                "@id": f"{cond}/{a['name']}",
                "name": f"{cond}/{a['name']}",
                "description": (a["long_name"] or a["name"])
                + (f" [{a['units']}]" if a["units"] else "")
                + f"; dims ({', '.join(a['dims'])}), {a['dtype']}"
                + (
                    "; complex: real and imaginary float32 parts"
                    if a["dtype"].startswith("complex")
                    else ""
                ),
                "dataType": _data_type(a["dtype"]),
            }
            if len(a["shape"]) > 1 or (a["dims"] and a["dims"][0] == "sample"):
                f["isArray"] = True
                f["arrayShape"] = ",".join(str(s) for s in a["shape"])
            if source_key is not None:
                f["source"] = {
                    source_key[0]: {"@id": source_key[1]},
                    "extract": {"column": f"{cond}/{a['name']}"},
                }
            fields.append(f)
        record_sets.append(
            {
                "@type": "cr:RecordSet",
                "@id": cond,
                "name": cond,
                "description": f"Zarr group '{cond}' (rain rate {st.rain[cond]:g} mm/h): one "
                "record per UE sample",
                "field": fields,
            }
        )
    meta = {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "name": name,
        "description": description,
        "conformsTo": CROISSANT_CONFORMS_TO,
        "license": license_url(license_id),
        "url": url or "README.md",  # the card, relative to this file, unless hosted
        "version": "1.0.0",
        "datePublished": date,
        "keywords": [
            "wireless localization",
            "MIMO-OFDM",
            "channel state information",
            "ray tracing",
            "Sionna RT",
            "multi-TRP",
        ],
        "creator": {"@type": "sc:Organization", "name": "simgen"},
        "citeAs": f"simgen dataset {name} (schema {SCHEMA_VERSION}, config "
        f"{st.attrs.get('config_hash', '')[:12]}), rendered with sionna-rt "
        f"{versions.get('sionna-rt', '?')}",
        "distribution": dist,
        "recordSet": record_sets,
    }
    return meta


def check_croissant(path: Path) -> str:
    """'mlcroissant: ok' / problems, or a note that mlcroissant is not installed."""
    try:
        import mlcroissant as mlc  # noqa: PLC0415 - optional
    except ImportError:
        return "mlcroissant not installed: checked as JSON only"
    try:
        ds = mlc.Dataset(jsonld=str(path))
        issues = getattr(ds.metadata, "issues", None)
        warnings = list(getattr(issues, "warnings", []) or [])
        return "mlcroissant: ok" + (f" ({len(warnings)} warnings)" if warnings else "")
    except Exception as exc:  # noqa: BLE001 - mlcroissant raises ValidationError and others
        return f"mlcroissant: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
