"""``imported-keys``: the operator's view of the keys imported-key-cdk manages.

Click parses the commands (well kept by the Pallets project, and its ``CliRunner`` lets the
tests run a command as a terminal would); Rich draws tables within the terminal's width.
Everything runs with the caller's own AWS credentials, profile and Region, through the
handler's own modules: one way to read a key's state, one revocation.

Exit codes, for pipelines: 0 all is well; 1 a key needs attention (``ls --problems`` found
one, ``status`` of a key in trouble, a failed proof, a handler's refusal, a declined
confirmation); 2 a usage error (Click's); 3 AWS refused or could not be reached, or no deployed
handler serves the key; 4 no such managed key.
"""

import functools
import json
import shutil
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import boto3
import click
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)
from rich.console import Console

from imported_key_handler import contract
from imported_key_handler.errors import ImportFailure
from imported_key_handler.revocation import revoke_material

from . import handlers, render
from .audit import HISTORY, key_events
from .doctor import Clients, alarm_states, deployments, diagnose, log_group_of
from .handlers import HandlerError
from .history import LastRenewal, last_renewals
from .inventory import ManagedKey, find_key, managed_keys, related_keys
from .rotation import PHASE_READY, rotation_plan

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

OK, ATTENTION, USAGE, AWS_ERROR, NOT_FOUND = 0, 1, 2, 3, 4
# Seconds between two renewals the command line asks for (KMS's GetParametersForImport quota).
RENEW_INTERVAL_S = 1.0

F = TypeVar("F", bound=Callable[..., Any])


class NoHandler(LookupError):
    """No deployed handler serves the key (not a missing key: exit status 3)."""


class Context:
    def __init__(self, profile: str | None, region: str | None, as_json: bool) -> None:
        self.session = boto3.session.Session(profile_name=profile, region_name=region)
        self.as_json = as_json
        # No markup or emoji codes: ARNs hold ":secret:" and names may hold brackets.
        self.console = Console(highlight=False, soft_wrap=False, markup=False, emoji=False)
        self.now = datetime.now(UTC)

    def client(self, service: str) -> Any:
        return self.session.client(service)  # type: ignore[call-overload]

    def kms(self) -> "KMSClient":
        kms: KMSClient = self.client("kms")
        return kms

    def ask_handler(self, call: Callable[..., dict[str, Any]], key: ManagedKey) -> dict[str, Any]:
        """``call`` (``handlers.renew``, ``verify``) for the key, through its deployed handler:
        the key policy lets only the handler's role import, and it can read the secret."""
        try:
            return call(handlers.client(self.session), key.tags, key.key_id)
        except HandlerError:
            raise
        except LookupError as missing:
            raise NoHandler(str(missing.args[0])) from None

    def emit(self, data: Any) -> None:
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def fail(code: int, message: str) -> NoReturn:
    """The message on stderr, wrapped to the terminal (commands and ids are never broken)."""
    width = shutil.get_terminal_size(fallback=(80, 24)).columns
    click.echo(
        textwrap.fill(
            f"error: {message}",
            width=width,
            subsequent_indent="  ",
            break_long_words=False,
            break_on_hyphens=False,
        ),
        err=True,
    )
    sys.exit(code)


def aws_errors(command: F) -> F:
    """AWS's refusals and outages as one line that says what to do, and exit status 3."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except NoCredentialsError:
            fail(AWS_ERROR, "no AWS credentials: set AWS_PROFILE or pass --profile.")
        except NoRegionError:
            fail(AWS_ERROR, "no AWS Region: set AWS_REGION or pass --region.")
        except HandlerError as refused:
            # The handler ran and said no (a failed proof, a revoked key): a finding.
            fail(ATTENTION, f"the handler ({refused.function_name}) refused: {refused.reason}")
        except NoHandler as missing:
            fail(AWS_ERROR, str(missing.args[0]))
        except LookupError as missing:
            fail(NOT_FOUND, str(missing.args[0]))
        except ImportFailure as failure:
            fail(AWS_ERROR, failure.reason)
        except ClientError as error:
            detail = error.response.get("Error", {})
            fail(
                AWS_ERROR,
                f"{error.operation_name} was refused ({detail.get('Code')}): "
                f"{str(detail.get('Message', ''))[:200]}",
            )
        except BotoCoreError as error:
            fail(AWS_ERROR, f"AWS could not be reached ({type(error).__name__}); retry.")

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 80})
@click.option("--profile", envvar="AWS_PROFILE", help="AWS profile (default: AWS_PROFILE).")
@click.option(
    "--region",
    envvar=["AWS_REGION", "AWS_DEFAULT_REGION"],
    help="AWS Region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.version_option(package_name="imported-key-cdk", prog_name="imported-keys")
@click.pass_context
def cli(ctx: click.Context, profile: str | None, region: str | None, as_json: bool) -> None:
    """The keys imported-key-cdk manages: their state, their material, and break-glass."""
    try:
        ctx.obj = Context(profile, region, as_json)
    except ProfileNotFound:
        fail(AWS_ERROR, f"no AWS profile {profile!r} in your AWS configuration: check --profile.")


@cli.command("ls")
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    help="Only keys in this KMS key state (Enabled, PendingImport, ...); repeatable.",
)
@click.option("--stack", help="Only keys declared by this stack (its name).")
@click.option(
    "--within", type=click.FloatRange(min=0), metavar="DAYS", help="Only keys expiring within DAYS."
)
@click.option(
    "--problems", is_flag=True, help="Only keys that need attention; exit status 1 if any."
)
@click.option("--wide", is_flag=True, help="Also the key id, Region and current material.")
@click.option(
    "--last",
    "with_last",
    is_flag=True,
    help="Each key's last renewal and its result, from its handler's log (90 days), in place "
    "of the next renewal (--wide shows both).",
)
@click.pass_obj
@aws_errors
def ls(
    obj: Context,
    states: tuple[str, ...],
    stack: str | None,
    within: float | None,
    problems: bool,
    wide: bool,
    with_last: bool,
) -> None:
    """The managed keys of the Region, the soonest to expire first."""
    keys = managed_keys(obj.kms())
    wanted = {state.lower() for state in states}
    keys = [
        key
        for key in keys
        if (not wanted or key.state.lower() in wanted)
        and (stack is None or key.stack == stack)
        and (within is None or ((key.days_left(obj.now) or float("inf")) <= within))
        and (not problems or key.attention(obj.now) is not None)
    ]
    keys.sort(key=lambda key: (key.valid_to is None, key.valid_to or obj.now, key.name))
    last = _last_renewals(obj, keys) if with_last else None
    if obj.as_json:
        listed = [key.summary(obj.now) for key in keys]
        if last is not None:
            for entry, key in zip(listed, keys, strict=True):
                renewal = last.get(key.key_id)
                entry["LastRenewal"] = renewal.summary() if renewal else None
        obj.emit(listed)
    else:
        render.key_table(
            obj.console, keys, obj.now, region=obj.session.region_name, wide=wide, last=last
        )
    if problems and keys:
        sys.exit(ATTENTION)


@cli.command()
@click.argument("key")
@click.pass_obj
@aws_errors
def status(obj: Context, key: str) -> None:
    """One key in depth: its materials, replicas, binding, and the alarms of the handler that
    serves it. KEY: alias, id or ARN. Exit status 1 when it or an alarm needs attention."""
    found = find_key(obj.kms(), key)
    related = related_keys(found, lambda region: obj.session.client("kms", region_name=region))
    alarms = alarm_states(Clients.of(obj.session), found, obj.now)
    if obj.as_json:
        obj.emit(
            {
                **render.status_summary(found, obj.now),
                "RelatedKeys": [other.summary() for other in related],
                "Alarms": [alarm.summary() for alarm in alarms],
            }
        )
    else:
        render.key_status(obj.console, found, obj.now, alarms, related)
    if found.attention(obj.now) is not None or any(alarm.firing for alarm in alarms):
        sys.exit(ATTENTION)


@cli.command()
@click.argument("key")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
@aws_errors
def revoke(obj: Context, key: str, yes: bool) -> None:
    """Break-glass: delete the key's material now, every material of a rotated key.

    Nothing can use the key until it is resumed (``resume``): the handler refuses to import
    into a key whose material was deleted before its recorded ValidTo. Needs a principal the
    stack declared in ``break_glass_principals``."""
    kms = obj.kms()
    found = find_key(kms, key)
    if contract.TAG_VALID_TO not in found.tags:
        fail(
            ATTENTION,
            f"key {found.key_id} has no {contract.TAG_VALID_TO} record, so the handler would "
            "take a revocation for an expiry and import the material again. Deploy the key's "
            "stack (or wait for its first import), then revoke; or disable it now: aws kms "
            f"disable-key --key-id {found.key_id}",
        )
    if not yes and not obj.as_json:
        obj.console.print(
            f"This deletes the material of {found.name} ({found.key_id}) in {found.region}: "
            "every use of the key fails until it is resumed.",
            highlight=False,
        )
        click.confirm(f"Revoke {found.name}?", abort=True, err=True)
    elif not yes:
        fail(USAGE, "revoke with --json needs --yes (there is no prompt to answer).")
    outcome = revoke_material(kms, found.key_id, _metadata(kms, found))
    after = find_key(kms, found.key_id)
    if obj.as_json:
        obj.emit({"KeyId": found.key_id, "Outcome": outcome, "KeyState": after.state})
    else:
        obj.console.print(
            f"Revoked {found.name} ({found.key_id}): {outcome}; the key is {after.state}.\n"
            f"It stays revoked until: imported-keys resume {found.name}"
        )


@cli.command()
@click.argument("key")
@click.pass_obj
@aws_errors
def resume(obj: Context, key: str) -> None:
    """Undo a revocation: remove the record that makes the handler refuse to import. The
    key's next renewal (its sweep, within the hour) imports the material again."""
    kms = obj.kms()
    found = find_key(kms, key)
    if not found.revoked(obj.now):
        fail(ATTENTION, f"key {found.key_id} is {found.state} and not revoked: nothing to resume.")
    kms.untag_resource(KeyId=found.key_id, TagKeys=[contract.TAG_VALID_TO])
    # A resumed key waits in PendingImport, which makes it due: its handler restores it now.
    renewed = obj.ask_handler(handlers.renew, found)
    after = find_key(kms, found.key_id)
    if obj.as_json:
        obj.emit(
            {"KeyId": found.key_id, "Resumed": True, "Renewal": renewed, "KeyState": after.state}
        )
    else:
        obj.console.print(
            f"Resumed {found.name} ({found.key_id}): its handler imported the material again; "
            f"the key is {after.state}, valid to {_day(after.valid_to)}."
        )


@cli.command()
@click.argument("keys", nargs=-1, metavar="[KEY]...")
@click.option("--all", "every", is_flag=True, help="Every managed key of the Region.")
@click.option("--stack", help="With --all: only keys declared by this stack (its name).")
@click.pass_obj
@aws_errors
def verify(obj: Context, keys: tuple[str, ...], every: bool, stack: str | None) -> None:
    """Prove that each key holds its secret's material, by KMS's own answers (public key,
    MAC, or KMS taking the material again unchanged). The key's handler does it: it may read
    the secret; this command never does. Exit status 1 if any proof fails."""
    chosen = _chosen(obj, keys, every, stack)
    results = _through_handlers(
        obj,
        chosen,
        "Verifying",
        handlers.verify,
        lambda answer: {
            "Verified": True,
            "Proof": answer["Verified"],
            "Materials": answer.get("Materials"),
        },
        {"Verified": False},
    )
    if obj.as_json:
        obj.emit(results)
    else:
        render.outcomes(obj.console, results, "Verified", "PROOF")
    if not all(result["Verified"] for result in results):
        sys.exit(ATTENTION)


@cli.command()
@click.argument("keys", nargs=-1, metavar="[KEY]...")
@click.option("--due", is_flag=True, help="Every managed key of the Region that is due.")
@click.option("--stack", help="With --due: only keys declared by this stack (its name).")
@click.option("--dry-run", is_flag=True, help="Only say which keys would be renewed.")
@click.pass_obj
@aws_errors
def renew(obj: Context, keys: tuple[str, ...], due: bool, stack: str | None, dry_run: bool) -> None:
    """Have each key's handler import its material again now, due or not: the same material,
    a new ValidTo (a revoked key is still refused). With --due, each handler that serves a due
    key runs its sweep now instead: the quota-paced path that renews every key its due index
    holds as due. Exit status 1 if any renewal fails."""
    chosen = _chosen(obj, keys, due, stack)
    if due:
        chosen = [key for key in chosen if key.is_due(obj.now)]
        if not dry_run:
            _sweep_now(obj, chosen)
            return
    if dry_run:
        planned = [
            {"KeyId": key.key_id, "Name": key.name, "Due": key.is_due(obj.now)} for key in chosen
        ]
        if obj.as_json:
            obj.emit(planned)
        else:
            for entry in planned:
                verdict = "would be renewed" if entry["Due"] else "not due: would be left"
                obj.console.print(f"{entry['Name']}: {verdict}")
        return
    results = _through_handlers(
        obj,
        chosen,
        "Renewing",
        functools.partial(handlers.renew, now=True),
        lambda answer: {"Failed": False, **answer},
        {"Failed": True},
        # GetParametersForImport allows 1 request a second in the account and Region, shared
        # with every sweep: the command line takes no more than that.
        pause_s=RENEW_INTERVAL_S,
    )
    if obj.as_json:
        obj.emit(results)
    else:
        render.outcomes(obj.console, results, "Renewed", "RENEWED")
    if any(result["Failed"] for result in results):
        sys.exit(ATTENTION)


def _sweep_now(obj: Context, due: list[ManagedKey]) -> None:
    """One sweep per handler serving a due key (a handler's sweep paces its own imports)."""
    client = handlers.client(obj.session)
    functions: dict[str, ManagedKey] = {}
    for key in due:
        try:
            functions.setdefault(handlers.find_function(client, key.tags), key)
        except LookupError as missing:
            raise NoHandler(str(missing.args[0])) from None
    results: list[dict[str, Any]] = []
    with render.progress(obj.console, "Sweeping", len(functions), quiet=obj.as_json) as advance:
        for name, key in functions.items():
            try:
                results.append({"Function": name, **handlers.sweep(client, key.tags)})
            except HandlerError as refused:
                # A sweep raises when any key failed (Lambda counts the error): its reason
                # names the first; the figures are in the function's log.
                results.append({"Function": name, "Error": refused.reason})
            advance()
    if obj.as_json:
        obj.emit(results)
    else:
        if not results:
            obj.console.print("No managed key is due.")
        for result in results:
            if "Error" in result:
                obj.console.print(f"! {result['Function']}: {result['Error']}")
            else:
                obj.console.print(
                    f"{result['Function']}: {result.get('Renewed')} of {result.get('Due')} due "
                    f"keys renewed ({result.get('Keys')} indexed, "
                    f"{result.get('LeftForNextSweep')} left for the next sweep)"
                )
    if any("Error" in result or result.get("Failed") for result in results):
        sys.exit(ATTENTION)


@cli.command()
@click.argument("key")
@click.option(
    "--finish",
    is_flag=True,
    help="Have the primary's handler make the new material current now (once every replica "
    "holds it), rather than at its next sweep.",
)
@click.pass_obj
@aws_errors
def rotate(obj: Context, key: str, finish: bool) -> None:
    """Where a rotation to new material stands, in each Region of a multi-Region key.

    A rotation starts with a deployment: a secret version that adds the new material last,
    declared by material_version_id, deployed to the primary's stack and then to each
    replica's. KMS then needs every replica to hold the material before the primary's handler
    makes it current (at its next sweep, or now with --finish)."""
    kms = obj.kms()
    found = find_key(kms, key)
    plan = rotation_plan(found, lambda region: obj.session.client("kms", region_name=region))
    if finish:
        if plan.phase != PHASE_READY:
            fail(ATTENTION, f"nothing to finish: {plan.explanation}")
        obj.ask_handler(handlers.renew, found)
        plan = rotation_plan(
            find_key(kms, found.key_id),
            lambda region: obj.session.client("kms", region_name=region),
        )
    if obj.as_json:
        obj.emit(plan.summary())
    else:
        render.rotation(obj.console, found, plan)


def _last_renewals(obj: Context, keys: list[ManagedKey]) -> dict[str, LastRenewal]:
    """The last renewal of each key, from the log of the handler that serves it; {} (and a
    note on stderr) when the handlers or their logs cannot be read."""
    clients = Clients.of(obj.session)
    logs = obj.client("logs")
    found: dict[str, LastRenewal] = {}
    try:
        for deployment in deployments(clients.lambda_):
            name = deployment.sweep_function or deployment.function
            if name is None or not any(deployment.serves(key) for key in keys):
                continue
            configuration = clients.lambda_.get_function_configuration(FunctionName=name)
            group = log_group_of(name, configuration)
            found.update(last_renewals(logs, group, since=obj.now - HISTORY, until=obj.now))
    except ClientError as error:
        click.echo(
            f"note: last renewals unknown: {error.operation_name} was refused "
            f"({error.response.get('Error', {}).get('Code')}).",
            err=True,
        )
    return found


def _through_handlers(
    obj: Context,
    keys: list[ManagedKey],
    label: str,
    call: Callable[..., dict[str, Any]],
    answered: Callable[[dict[str, Any]], dict[str, Any]],
    refused: dict[str, Any],
    *,
    pause_s: float = 0.0,
) -> list[dict[str, Any]]:
    """``call`` for each key through its handler, one at a time with a progress bar: one
    result each, ``answered(answer)`` or ``refused`` with the handler's reason."""
    results: list[dict[str, Any]] = []
    with render.progress(obj.console, label, len(keys), quiet=obj.as_json) as advance:
        for number, key in enumerate(keys):
            if number and pause_s:
                time.sleep(pause_s)
            named = {"KeyId": key.key_id, "Name": key.name}
            try:
                results.append({**named, **answered(obj.ask_handler(call, key))})
            except HandlerError as refusal:
                results.append({**named, **refused, "Reason": refusal.reason})
            advance()
    return results


def _chosen(
    obj: Context, keys: tuple[str, ...], every: bool, stack: str | None = None
) -> list[ManagedKey]:
    if every == bool(keys):
        fail(USAGE, "name one or more keys, or use the flag for all of them (not both).")
    if stack is not None and not every:
        fail(USAGE, "--stack chooses among all keys: use it with --all or --due.")
    if every:
        found = managed_keys(obj.kms())
        return sorted(
            (key for key in found if stack is None or key.stack == stack),
            key=lambda key: key.name,
        )
    kms = obj.kms()
    return [find_key(kms, key) for key in keys]


def _day(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d}" if moment else "-"


@cli.command()
@click.argument("key")
@click.option(
    "--days",
    type=click.IntRange(1, HISTORY.days),
    default=HISTORY.days,
    show_default=True,
    help="How far back (CloudTrail's event history keeps 90 days).",
)
@click.pass_obj
@aws_errors
def audit(obj: Context, key: str, days: int) -> None:
    """Who imported, deleted, rotated, disabled or resumed the key's material, and when:
    CloudTrail's event history for the key, newest first (cloudtrail:LookupEvents)."""
    found = find_key(obj.kms(), key)
    events = key_events(
        obj.client("cloudtrail"), found.arn, since=obj.now - timedelta(days=days), until=obj.now
    )
    if obj.as_json:
        obj.emit({"KeyId": found.key_id, "Events": [event.summary() for event in events]})
    else:
        render.audit_table(obj.console, found, events, days)


@cli.command()
@click.option("--stack", help="Only the deployment of this stack (its name).")
@click.pass_obj
@aws_errors
def doctor(obj: Context, stack: str | None) -> None:
    """Check each deployment of the handler in the Region: its functions, the sweep's schedule
    and the expiry rule enabled, the dead-letter queue empty, no alarm in ALARM, and its keys;
    each problem with its fix. Exit status 1 if there is any."""
    reports = diagnose(Clients.of(obj.session), obj.now, stack)
    if obj.as_json:
        obj.emit([report.summary() for report in reports])
    else:
        render.doctor_reports(obj.console, reports, obj.session.region_name)
    if not all(report.ok for report in reports):
        sys.exit(ATTENTION)


def _metadata(kms: "KMSClient", key: ManagedKey) -> Any:
    return kms.describe_key(KeyId=key.key_id)["KeyMetadata"]


def main() -> None:
    cli(prog_name="imported-keys")
