"""Tables and panels for a person at an 80-column terminal; ``--json`` has the rest.

Only references, states and dates are ever shown: the command line never reads material.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from imported_key_handler import contract

from .audit import AuditEvent
from .doctor import Finding, Report
from .history import LastRenewal
from .inventory import ROTATION_LIMIT, ManagedKey, RelatedKey
from .rotation import RotationPlan

# KMS's spec names, shortened where the table is tight (``--wide`` and ``--json`` keep them).
_SHORT_SPECS = {contract.SYMMETRIC_DEFAULT: "SYMMETRIC"}


def _date(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d}" if moment else "-"


def _days(key: ManagedKey, now: datetime) -> str:
    days = key.days_left(now)
    return "-" if days is None else f"{days:.0f}"


def _rotations(key: ManagedKey) -> str:
    used = key.rotations_used
    return "-" if used is None else f"{used}/{ROTATION_LIMIT}"


# The last renewal's outcome (imported_key_handler.audit), as the narrow LAST column says it.
_OUTCOMES = {"RENEWED": "renewed", "NOT_DUE": "not due", "FAILED": "FAILED"}


def key_table(
    console: Console,
    keys: list[ManagedKey],
    now: datetime,
    *,
    region: str | None,
    wide: bool,
    last: "dict[str, LastRenewal] | None" = None,
) -> None:
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption=f"{len(keys)} managed key{'s' if len(keys) != 1 else ''} in {region}",
        caption_justify="left",
    )
    table.add_column("KEY", no_wrap=True, overflow="ellipsis", max_width=28)
    if wide:
        table.add_column("KEY ID", no_wrap=True)
        table.add_column("REGION", no_wrap=True)
    table.add_column("SPEC", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    if wide:
        table.add_column("MATERIAL", no_wrap=True)
    table.add_column("VALID TO", no_wrap=True)
    table.add_column("DAYS", justify="right", no_wrap=True)
    # 80 columns hold the next renewal or the last one; --wide shows both.
    next_column = last is None or wide
    if next_column:
        table.add_column("RENEWS", no_wrap=True)
    table.add_column("ROT", justify="right", no_wrap=True)
    if last is not None:
        table.add_column("LAST", no_wrap=True)
    notes = []
    for key in keys:
        attention = key.attention(now)
        name = f"! {key.name}" if attention else key.name
        if attention:
            notes.append(f"! {key.name}: {attention}")
        row = [name]
        if wide:
            row += [key.key_id, key.region]
        row += [key.spec if wide else _SHORT_SPECS.get(key.spec, key.spec), key.state]
        if wide:
            row.append((key.current_material or "-")[:12])
        row += [_date(key.valid_to), _days(key, now)]
        if next_column:
            row.append(_date(key.next_renewal()))
        row.append(_rotations(key))
        if last is not None:
            renewal = last.get(key.key_id)
            row.append(
                f"{_OUTCOMES.get(renewal.outcome, renewal.outcome)} {renewal.time:%m-%d}"
                if renewal
                else "-"
            )
            if renewal and renewal.reason:
                notes.append(f"! {key.name}: last renewal {renewal.outcome}: {renewal.reason}")
        table.add_row(*row)
    console.print(table)
    for note in notes:
        console.print(note)


def status_summary(key: ManagedKey, now: datetime) -> dict[str, Any]:
    """``status --json``: the key's summary with its materials and binding."""
    summary = key.summary(now)
    summary["Materials"] = [
        {
            "KeyMaterialId": material.material_id,
            "KeyMaterialState": material.state,
            "ImportState": material.import_state,
            "ValidTo": material.valid_to.isoformat() if material.valid_to else None,
        }
        for material in key.materials
    ]
    summary["ReplicaRegions"] = list(key.replica_regions)
    summary["PrimaryRegion"] = key.primary_region
    summary["Binding"] = binding_of(key)
    return summary


def binding_of(key: ManagedKey) -> dict[str, Any]:
    """What the key's deployment declared, from its binding tags."""
    tags = key.tags
    declared: dict[str, str] = {}
    window = None
    if contract.TAG_DECLARED in tags:
        try:
            declared, window = contract.parse_declared(tags[contract.TAG_DECLARED])
        except ValueError:
            declared = {}
    return {
        "Stack": key.stack,
        "Resource": tags.get(contract.TAG_RESOURCE),
        "SecretArn": tags.get(contract.TAG_SECRET),
        "MaterialVersionId": tags.get(contract.TAG_MATERIAL_VERSION),
        "Settings": declared,
        "RenewBeforeSeconds": window,
        "RecordedValidTo": tags.get(contract.TAG_VALID_TO),
        "Adopted": key.adopted,
    }


def key_status(
    console: Console,
    key: ManagedKey,
    now: datetime,
    alarms: "list[Finding]",
    related: "list[RelatedKey] | None" = None,
) -> None:
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    role = key.multi_region or "single-Region"
    if key.multi_region == "PRIMARY" and key.replica_regions:
        role += f", replicas in {', '.join(key.replica_regions)}"
    elif key.multi_region == "REPLICA":
        role += f" of the primary in {key.primary_region}"
    binding = binding_of(key)
    rows = [
        ("Key", f"{key.name}  {key.key_id}"),
        ("Aliases", ", ".join(key.aliases) or "-"),
        ("Spec", f"{key.spec} ({key.usage})"),
        ("State", key.state),
        ("Region", f"{key.region}, {role}"),
        ("Material", key.current_material or "-"),
        ("Valid to", f"{_date(key.valid_to)} ({_days(key, now)} days)"),
        ("Next renewal", _date(key.next_renewal())),
        ("Rotations", _rotations(key)),
        ("Stack", f"{binding['Stack'] or '-'}{' (adopted)' if key.adopted else ''}"),
        ("Secret", binding["SecretArn"] or "-"),
        ("Version", binding["MaterialVersionId"] or "the secret's current"),
    ]
    attention = key.attention(now)
    if attention:
        rows.append(("Attention", attention))
    for other in related or []:
        label = "Primary" if key.multi_region == "REPLICA" else "Replica"
        rows.append(
            (
                label,
                f"{other.region}: {other.state}, valid to {_date(other.valid_to)}, material "
                f"{(other.current_material or '-')[:12]}",
            )
        )
    for finding in alarms:
        rows.append(("Alarms", finding.detail if finding.ok else f"! {finding.detail}"))
    for label, value in rows:
        facts.add_row(label, value)
    console.print(facts)
    if key.materials:
        materials = Table(
            box=box.SIMPLE_HEAD, pad_edge=False, title="Materials", title_justify="left"
        )
        materials.add_column("MATERIAL", no_wrap=True)
        materials.add_column("STATE", no_wrap=True)
        materials.add_column("IMPORT", no_wrap=True)
        materials.add_column("VALID TO", no_wrap=True)
        for material in key.materials:
            materials.add_row(
                material.material_id[:16],
                material.state,
                material.import_state,
                _date(material.valid_to),
            )
        console.print(materials)


def audit_table(console: Console, key: ManagedKey, events: list[AuditEvent], days: int) -> None:
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption=f"{len(events)} event{'s' if len(events) != 1 else ''} of {key.name} in "
        f"{key.region}, last {days} days (UTC)",
        caption_justify="left",
    )
    table.add_column("WHEN", no_wrap=True)
    table.add_column("WHAT", no_wrap=True)
    table.add_column("BY", overflow="fold", max_width=22)
    table.add_column("RESULT", overflow="fold", max_width=14)
    table.add_column("DETAIL", overflow="fold")
    for event in events:
        table.add_row(
            f"{event.time:%Y-%m-%d %H:%M}", event.what, event.by, event.outcome, event.detail
        )
    console.print(table)


@contextmanager
def progress(
    console: Console, what: str, total: int, *, quiet: bool
) -> Iterator[Callable[[], None]]:
    """A bar on stderr while many keys are done one by one (each a Lambda invocation); none
    for one key, for ``--json``, or when stderr is no terminal."""
    errors = Console(stderr=True, width=console.width, markup=False, emoji=False)
    if quiet or total < 2 or not errors.is_terminal:
        yield lambda: None
        return
    bar = Progress(
        TextColumn(what),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        console=errors,
        transient=True,
    )
    task = bar.add_task(what, total=total)
    with bar:
        yield lambda: bar.advance(task)


def outcomes(console: Console, results: list[dict[str, Any]], flag: str, heading: str) -> None:
    """One line per key: what the handler answered, or why it refused."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("KEY", no_wrap=True, overflow="ellipsis", max_width=28)
    table.add_column(heading, no_wrap=True)
    table.add_column("DETAIL", overflow="fold")
    for result in results:
        if "Reason" in result:
            table.add_row(f"! {result['Name']}", "refused", str(result["Reason"]))
        elif flag == "Verified":
            proof = f"{result.get('Proof')}, {result.get('Materials')} material(s)"
            table.add_row(result["Name"], "yes", proof)
        else:
            renewed = "yes" if result.get(flag) else "no"
            detail = str(result.get("Why", ""))
            if result.get("ValidTo"):
                detail += f"; valid to {str(result['ValidTo'])[:10]}"
            table.add_row(result["Name"], renewed, detail)
    console.print(table)


def rotation(console: Console, key: ManagedKey, plan: RotationPlan) -> None:
    console.print(f"{key.name} ({key.key_id}): {plan.phase}, {_rotations(key)} rotations used")
    if plan.regions:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("REGION", no_wrap=True)
        table.add_column("NEW MATERIAL", no_wrap=True)
        for region, state in plan.regions.items():
            table.add_row(region, state)
        console.print(table)
    console.print(plan.explanation)


def doctor_reports(console: Console, reports: list[Report], region: str | None) -> None:
    """Per deployment: each check passed or failed; under each failure, its fix."""
    if not reports:
        console.print(f"No imported-key-cdk handler is deployed in {region}.")
        return
    for report in reports:
        problems = sum(not finding.ok for finding in report.findings)
        verdict = "ok" if report.ok else f"{problems} problem{'s' if problems != 1 else ''}"
        console.print(f"{report.stack}: {verdict}")
        for finding in report.findings:
            mark = "ok" if finding.ok else "!!"
            console.print(f"  {mark} {finding.check}: {finding.detail}", overflow="fold")
            if finding.fix and not finding.ok:
                console.print(f"     fix: {finding.fix}", overflow="fold")
