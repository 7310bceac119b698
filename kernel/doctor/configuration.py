"""Configuration checks: the file dso would read is valid (``config.valid``) and its owner and
mode are safe (``config.permissions``), as ``docker dso config validate`` judges them."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from kernel.doctor.files import describe
from kernel.doctor.model import Check, Finding, fail, ok, warn
from kernel.errors import ConfigPermissionError

if TYPE_CHECKING:
    from kernel.doctor.context import Context


def config_valid(ctx: Context) -> Finding:
    report = ctx.config_report()
    path = report.path
    if path is None and not report.errors:
        if ctx.mode == "agent":
            return warn(
                f"no configuration file: the host agent expects {ctx.layout.config}",
                detail="without one the built-in defaults apply (the local vault only)",
                fix="sudo docker dso bootstrap agent (or write it by hand; `docker dso config "
                "validate` checks it)",
            )
        return ok(
            "no configuration file: the built-in defaults apply (the local vault)",
            detail="looked for -c/DSO_CONFIG, /etc/dso/dso.yaml, $DSO_HOME/config.yaml "
            "(~/.dso/config.yaml), ./dso.yaml; `docker dso config path` shows the order",
        )
    errors = [e for e in report.errors if not isinstance(e, ConfigPermissionError)]
    shown = path or ctx.config_path
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return fail(
            f"{errors[0].message}{more}",
            detail="\n".join(e.message for e in errors),
            fix=f"docker dso config validate {shown or ''}".rstrip()
            + (f"\n{errors[0].hint}" if errors[0].hint else ""),
        )
    if ctx.mode == "agent" and path is not None and path != ctx.layout.config:
        return warn(
            f"the host agent would read {path}, not {ctx.layout.config}",
            detail="the lookup order is -c, /etc/dso/dso.yaml, $DSO_HOME/config.yaml, "
            "./dso.yaml: the first file that exists wins",
            fix=f"sudo docker dso bootstrap agent (writes {ctx.layout.config}), or pass -c",
        )
    if report.warnings:
        return warn(
            f"{path} is valid, with {len(report.warnings)} warning(s): {report.warnings[0]}",
            detail="\n".join(report.warnings),
            fix=f"docker dso config validate {path}",
        )
    config = report.config
    if config is None:  # only permission problems: the content is fine
        return ok(f"{path} is valid (its permissions: config.permissions)")
    names = ", ".join(f"{n} ({p.type})" for n, p in sorted(config.providers.items()))
    return ok(
        f"{path} is valid",
        detail=f"providers: {names}; default provider: {config.default_provider}",
    )


def config_permissions(ctx: Context) -> Finding:
    report = ctx.config_report()
    path = report.path
    if path is None:
        return ok("no configuration file to check")
    refused = [e for e in report.errors if isinstance(e, ConfigPermissionError)]
    if refused:
        return fail(
            refused[0].message,
            detail="dso refuses a configuration others could edit (they could point it at a "
            "back end and a provider program of their choosing), and one holding a credential "
            "that others can read",
            fix=refused[0].hint or f"chmod 600 {path}",
        )
    try:
        st = os.stat(path)
    except OSError as exc:
        return warn(f"cannot stat {path}: {exc.strerror}", fix="run doctor as root")
    mode = stat.S_IMODE(st.st_mode)
    owned = describe(st)
    if ctx.mode == "agent":
        if mode & stat.S_IROTH:
            return warn(
                f"{path} is world-readable ({owned})",
                detail="the provider settings (addresses, roles, key names) are readable by "
                "every user; the agent reads it as root, operators through group dso",
                fix=f"sudo chown root:dso {path} && sudo chmod 640 {path}",
            )
    elif mode & 0o077:
        return warn(
            f"{path} is readable by others ({owned})",
            detail="in local mode only you need to read it",
            fix=f"chmod 600 {path}",
        )
    return ok(f"{path}: {owned}")


CHECKS = (
    Check("config.valid", "the configuration file dso would read is valid", config_valid),
    Check(
        "config.permissions",
        "the configuration's owner and mode are safe",
        config_permissions,
    ),
)
