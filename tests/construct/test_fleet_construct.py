"""ImportedKeyFleet: many keys from code or a manifest, over nested stacks that never move a key."""

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from stacks import NO_BUNDLING, SECRET_ARN, key_in

from imported_key_cdk import FleetKey, ImportedKeyFleet, MaterialExpiration, load_manifest
from imported_key_cdk.fleet import MAX_KEYS_PER_STACK, group_of
from imported_key_handler import contract

ENV = cdk.Environment(account="111122223333", region="eu-west-1")


def fleet_app(names: list[str], nested_stacks: int = 4, **props: Any) -> tuple[cdk.Stack, Any]:
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Fleet", env=ENV)
    keys = [FleetKey(name=name, secret=f"byok/{name}", alias=f"alias/{name}") for name in names]
    fleet = ImportedKeyFleet(stack, "Keys", keys=keys, nested_stacks=nested_stacks, **props)
    return stack, fleet


def key_logical_ids(fleet: ImportedKeyFleet) -> dict[str, tuple[str, str]]:
    """Per key: its nested stack's path and the key resource's logical id in it."""
    result = {}
    for name, key in fleet.keys.items():
        stack = cdk.Stack.of(key)
        cfn = key.external_key.node.default_child
        assert isinstance(cfn, cdk.CfnElement)
        result[name] = (stack.node.path, stack.resolve(cfn.logical_id))
    return result


@pytest.fixture(scope="module")
def sixty() -> tuple[cdk.Stack, ImportedKeyFleet]:
    stack, fleet = fleet_app([f"key-{n:03d}" for n in range(60)])
    cdk.App.of(stack).synth()  # type: ignore[union-attr]
    return stack, fleet


def test_keys_spread_over_nested_stacks_with_one_handler_in_the_fleets_stack(
    sixty: tuple[cdk.Stack, ImportedKeyFleet],
) -> None:
    stack, fleet = sixty
    parent = Template.from_stack(stack).to_json()["Resources"]
    types = [r["Type"] for r in parent.values()]
    assert types.count("AWS::CloudFormation::Stack") == len(fleet.stacks) == 4
    assert types.count("AWS::KMS::Key") == 0
    assert types.count("AWS::Lambda::Function") == 2  # the import and the sweep
    for nested in fleet.stacks.values():
        resources = Template.from_stack(nested).to_json()["Resources"]
        keys = [r for r in resources.values() if r["Type"] == "AWS::KMS::Key"]
        assert len(resources) == 3 * len(keys) < 500  # key, alias, import: nothing else
        assert not [r for r in resources.values() if r["Type"].startswith("AWS::Lambda")]
    assert len(fleet.keys) == 60


def test_each_key_is_bound_to_its_nested_stack_and_served_by_the_parents_handler(
    sixty: tuple[cdk.Stack, ImportedKeyFleet],
) -> None:
    stack, fleet = sixty
    key = fleet.keys["key-007"]
    nested = cdk.Stack.of(key)
    assert nested is fleet.stacks[group_of("key-007", 4)]
    _, logical_id = key_logical_ids(fleet)["key-007"]
    resource = Template.from_stack(nested).to_json()["Resources"][logical_id]
    tags = {t["Key"]: t["Value"] for t in resource["Properties"]["Tags"]}
    assert tags[contract.TAG_STACK] == {"Ref": "AWS::StackId"}  # the nested stack's own id
    assert tags[contract.TAG_KEY_RESOURCE] == logical_id
    # The parent's handler: its RoleId arrives as a parameter of the nested stack.
    (parameter,) = [
        name
        for name in Template.from_stack(nested).to_json().get("Parameters", {})
        if name.endswith("RoleId")
    ]
    assert tags[contract.TAG_HANDLER] == {"Ref": parameter}
    handler_stack = cdk.Stack.of(fleet.handler)
    assert handler_stack is stack


def test_adding_removing_or_reordering_keys_moves_no_other_key() -> None:
    names = [f"payments-{n}" for n in range(40)]
    _, before = fleet_app(names)
    _, after = fleet_app(["new-key", *reversed(names[5:]), "another"])
    old, new = key_logical_ids(before), key_logical_ids(after)
    for name in names[5:]:
        assert new[name] == old[name], name


def test_a_manifest_in_json_or_yaml_declares_the_same_fleet(tmp_path: Path) -> None:
    entries = [
        {"name": "cards", "secret": SECRET_ARN, "alias": "cards", "validity_days": 90},
        {"name": "ledger", "secret": "byok/ledger", "key_spec": "HMAC_256", "tags": {"team": "l"}},
        {"name": "archive", "secret": "byok/archive", "validity_days": None},
    ]
    as_json = tmp_path / "fleet.json"
    as_json.write_text(json.dumps({"keys": entries}))
    as_yaml = tmp_path / "fleet.yaml"
    as_yaml.write_text(
        "keys:\n"
        f"  - {{name: cards, secret: '{SECRET_ARN}', alias: cards, validity_days: 90}}\n"
        "  - {name: ledger, secret: byok/ledger, key_spec: HMAC_256, tags: {team: l}}\n"
        "  - {name: archive, secret: byok/archive, validity_days: null}\n"
    )
    assert load_manifest(as_json) == load_manifest(as_yaml)
    keys = load_manifest(as_json)
    assert [k.validity_days for k in keys] == [90, 365, None]
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Fleet", env=ENV)
    fleet = ImportedKeyFleet(stack, "Keys", manifest=as_json)
    assert fleet.keys["archive"].renewal is None  # never expires: nothing to renew
    assert fleet.keys["cards"].expiration.validity_days == 90


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"keys": [{"name": "a"}]}, "#0 (a): 'secret' must be a string"),
        ({"keys": [{"name": "a", "secret": "s", "colour": "red"}]}, "unknown field(s) colour"),
        ({"keys": [{"name": "a", "secret": "s", "validity_days": 400}]}, "validity_days=400"),
        ({"keys": [{"name": "a", "secret": "s", "tags": {"x": 1}}]}, "tags must map strings"),
        ({"keys": "nope"}, 'expected {"keys": [...]}'),
        ([1, 2], 'expected {"keys": [...]}'),
    ],
)
def test_a_bad_manifest_names_the_entry_and_the_field(
    tmp_path: Path, document: object, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError) as caught:
        load_manifest(path)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([FleetKey("a", "s"), FleetKey("a", "t")], "name 'a' is also entry #0"),
        ([FleetKey("1bad", "s")], "name '1bad'"),
        ([FleetKey("a", "s", alias="x"), FleetKey("b", "s", alias="alias/x")], "'alias/x'"),
    ],
)
def test_bad_entries_are_refused_before_anything_is_built(
    keys: list[FleetKey], message: str
) -> None:
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Fleet", env=ENV)
    with pytest.raises(ValueError) as caught:
        ImportedKeyFleet(stack, "Keys", keys=keys)
    assert message in str(caught.value)
    assert stack.node.try_find_child("Keys") is None


def test_a_nested_stack_over_its_capacity_is_refused_naming_it() -> None:
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Fleet", env=ENV)
    keys = [FleetKey(f"k{n}", "s") for n in range(MAX_KEYS_PER_STACK + 1)]
    with pytest.raises(ValueError, match="nested stack Keys000 would hold 151 keys"):
        ImportedKeyFleet(stack, "Keys", keys=keys, nested_stacks=1)
    with pytest.raises(ValueError, match="nested_stacks: 0"):
        ImportedKeyFleet(stack, "Keys", keys=keys, nested_stacks=0)


def test_a_key_cannot_share_a_handler_of_an_unrelated_stack() -> None:
    app = cdk.App(context=NO_BUNDLING)
    one = cdk.Stack(app, "One", env=ENV)
    two = cdk.Stack(app, "Two", env=ENV)
    first = key_in(one)
    with pytest.raises(ValueError, match="Invalid import_handler"):
        key_in(two, import_handler=first.renewal.node.scope)  # type: ignore[union-attr]


def test_the_renewal_window_is_an_import_property_so_a_change_reaches_the_index() -> None:
    """The handler indexes a key by the window in its declared tag; the window is also a
    property of the import, so changing it (or upgrading to the due index) sends an Update."""
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Fleet", env=ENV)
    expiring = key_in(stack, "Expiring", renew_before=cdk.Duration.days(20))
    never = key_in(stack, "Never", expiration=MaterialExpiration.never())
    template = Template.from_stack(stack).to_json()["Resources"]

    def properties(key: Any) -> dict[str, Any]:
        logical_id = stack.resolve(key.material_import.node.default_child.logical_id)
        return dict(template[logical_id]["Properties"])

    assert properties(expiring)[contract.PROP_RENEW_BEFORE_SECONDS] == str(20 * 86400)
    assert contract.PROP_RENEW_BEFORE_SECONDS not in properties(never)
