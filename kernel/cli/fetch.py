"""``docker dso fetch <reference>``: resolve one secret reference through its provider.

For troubleshooting: which provider answered, the version, how long it took. The value is
masked unless ``--reveal`` is given; ``--json`` never contains it without ``--reveal`` either
(then ``value`` holds the text, or ``value_base64`` the bytes when they are not UTF-8).
"""

from __future__ import annotations

import base64
import time
from typing import Any

import click

from kernel.cli.app import Application, pass_app
from kernel.secret_value import MASK, SecretValue

#: The id of the one reference in the ``get`` batch.
_REF_ID = "fetch"


@click.command("fetch")
@click.argument("reference")
@click.option(
    "--reveal", is_flag=True, help="Print the secret value (default: masked as ********)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def fetch(app: Application, reference: str, reveal: bool, as_json: bool) -> None:
    """Resolve REFERENCE (dso://… or dsofile://…) through its provider and report it.

    Shows the provider, path, field, version and the provider's latency; the value is
    masked unless --reveal is given, with --json too. A missing secret exits 5 naming
    the reference; a failing provider exits 7. The grammar is in docs/references.md.

    \b
    Examples:
      docker dso fetch dso://app/db_password
      docker dso fetch dso://vault:kv/app/db#password --json
      docker dso fetch dso://aws:prod/db@AWSPREVIOUS --reveal
    """
    from kernel.protocol import SecretRef, exception_for
    from kernel.reference import parse_reference

    ref = parse_reference(reference)
    runtime = app.open_runtime()
    name = ref.provider or runtime.config.default_provider
    runtime.config.provider(name)  # an unknown provider fails before anything starts
    started = time.perf_counter()
    with runtime:
        provider = runtime.host.client(name)
        result = provider.get([SecretRef(_REF_ID, ref.path, ref.field, ref.version)])
        total = time.perf_counter() - started
        get_stats = provider.stats.get("get")
        status = provider.status()
    error = result.errors.get(_REF_ID)
    if error is not None:
        raise exception_for(error.code, error.message, provider=name, reference=ref.uri())
    data = result.values[_REF_ID]
    value = SecretValue(data.value)
    doc: dict[str, Any] = {
        "reference": ref.uri(),
        "delivery": ref.delivery.name.lower(),
        "provider": name,
        "origin": status.get("origin"),
        "path": ref.path,
        "field": ref.field,
        "version": data.version,
        "latency_ms": round(get_stats.max * 1000, 3) if get_stats else None,
        "total_ms": round(total * 1000, 3),
        "length": len(value),
        "revealed": reveal,
        "value": MASK,
    }
    if reveal:
        try:
            doc["value"] = value.reveal_text()
        except UnicodeDecodeError:
            doc["value"] = None
            doc["value_base64"] = base64.b64encode(value.reveal()).decode("ascii")
    if as_json:
        app.out_json(doc)
        return
    shown = doc["value"] if doc["value"] is not None else f"(base64) {doc['value_base64']}"
    if not reveal:
        shown = f"{MASK} ({len(value)} bytes; --reveal shows it)"
    lines = [
        ("reference", doc["reference"]),
        ("provider", f"{name} ({doc['origin']})"),
        ("path", ref.path),
        ("field", ref.field or "-"),
        ("version", data.version),
        ("latency", f"{doc['latency_ms']} ms (get), {doc['total_ms']} ms with start and stop"),
        ("value", shown),
    ]
    for key, text in lines:
        app.out(f"{key:<10} {text}")
