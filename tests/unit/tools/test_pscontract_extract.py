"""pscontract: reading the Ansible.Basic spec from a .ps1 parse tree."""

import pytest

from pscontract import Delegate, SpecError, contract_for, extract_spec, module_paths

EMULATED = ["win_ping", "win_service", "win_service_info", "win_stat", "win_file"]


def wrap(spec_text: str) -> str:
    return f"#AnsibleRequires -CSharpUtil Ansible.Basic\n$spec = {spec_text}\n" \
           "$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)\n"


@pytest.mark.parametrize("name", EMULATED)
def test_emulated_ansible_windows_modules_extract(name):
    ps1, _doc = module_paths(f"ansible.windows.{name}")
    spec = extract_spec(ps1.read_text(encoding="utf-8-sig"), str(ps1))
    assert spec["options"] and spec["supports_check_mode"] is True


def test_win_service_details():
    spec = contract_for("ansible.windows.win_service").spec
    options = spec["options"]
    assert options["name"] == {"type": "str", "required": True}
    assert options["password"]["no_log"] is True
    assert options["dependency_action"] == {"type": "str", "default": "set", "choices": ["add", "remove", "set"]}
    assert options["failure_actions"]["elements"] == "dict"
    sub = options["failure_actions"]["options"]
    assert sub["delay_ms"]["aliases"] == ["delay"]  # `aliases = , 'delay'`
    assert sub["delay_ms"]["type"] == Delegate("uint32Type", "UInt32")
    assert spec["required_by"] == {"password": ["username"]}


def test_win_stat_and_win_file():
    stat = contract_for("ansible.windows.win_stat").spec["options"]
    assert stat["path"] == {"type": "path", "required": True, "aliases": ["dest", "name"]}
    assert stat["checksum_algorithm"]["choices"] == ["md5", "sha1", "sha256", "sha384", "sha512"]
    win_file = contract_for("ansible.windows.win_file").spec
    assert win_file["legacy"] is True
    assert win_file["options"]["state"]["choices"] == ["absent", "directory", "file", "touch"]
    assert win_file["options"]["path"]["required"] is True


def test_literal_forms():
    spec = extract_spec(wrap("""@{
    options = @{
        a = @{ type = "str"; default = "x`ty" }
        'b' = @{ type = 'int'; default = -5 }
        c = @{ type = 'list'; elements = 'str'; default = @() }
        d = @{ type = 'float'; default = 1.5 }
        e = @{ type = 'str'; choices = @('one'); default = $null }
        f = @{ type = 'str'; aliases = 'g', 'h' }
        i = @{ type = 'str'; default = 'it''s' }
    }
    mutually_exclusive = @(, @('a', 'b'))
    required_if = @(@('a', 'x', @('b')), @('c', 'y', @('d', 'e'), $true))
    required_one_of = , @('a', 'f')
    required_together = @(
        , @('d', 'e')
    )
    supports_check_mode = $false
}"""))
    options = spec["options"]
    assert options["a"]["default"] == "x\ty"
    assert options["b"]["default"] == -5
    assert options["c"]["default"] == []
    assert options["d"]["default"] == 1.5
    assert options["e"] == {"type": "str", "choices": ["one"], "default": None}
    assert options["f"]["aliases"] == ["g", "h"]
    assert options["i"]["default"] == "it's"
    assert spec["mutually_exclusive"] == [["a", "b"]]
    assert spec["required_if"] == [["a", "x", ["b"]], ["c", "y", ["d", "e"], True]]
    assert spec["required_one_of"] == [["a", "f"]]
    assert spec["required_together"] == [["d", "e"]]
    assert spec["supports_check_mode"] is False


@pytest.mark.parametrize(("value", "construct"), [
    ("$env:TEMP", "variable"),
    ('"$HOME\\x"', "interpolation"),
    ("(Get-Date).ToString()", "not a literal"),
    ("'a' + 'b'", "not a literal"),
    ('"$(whoami)"', "interpolation"),
])
def test_dynamic_values_are_refused(value, construct):
    source = wrap(f"@{{ options = @{{ a = @{{ type = 'str'; default = {value} }} }} }}")
    with pytest.raises(SpecError, match=construct) as error:
        extract_spec(source, "dyn.ps1")
    assert str(error.value).startswith("dyn.ps1:2:")


def test_spec_modified_at_run_time_is_refused():
    source = wrap("@{ options = @{ a = @{ type = 'str' } } }") + "$spec.options.b = @{ type = 'str' }\n"
    source = source.replace("$module = ", "$spec.options.b = @{}\n$module = ")
    with pytest.raises(SpecError, match=r"m\.ps1:\d+:\d+: \$spec is modified at run time"):
        extract_spec(source, "m.ps1")


def test_hashtable_addition_is_refused():
    source = wrap("@{ options = @{ a = @{ type = 'str' } } } + $extra")
    with pytest.raises(SpecError, match="not a literal"):
        extract_spec(source, "m.ps1")


def test_fragment_merge_is_not_statically_readable():
    ps1, _doc = module_paths("ansible.windows.win_get_url")
    with pytest.raises(SpecError, match="merged with fragments at run time"):
        extract_spec(ps1.read_text(encoding="utf-8-sig"), str(ps1))


def test_invalid_spec_key_and_type_are_refused():
    with pytest.raises(SpecError, match="invalid key 'requried'"):
        extract_spec(wrap("@{ options = @{ a = @{ type = 'str'; requried = $true } } }"))
    with pytest.raises(SpecError, match="type 'string' is unsupported"):
        extract_spec(wrap("@{ options = @{ a = @{ type = 'string' } } }"))


def test_unrolled_group_list_is_refused():
    # PowerShell's @() unrolls a single inner array: @(@('a', 'b')) is @('a', 'b'), not a list of lists.
    with pytest.raises(SpecError, match="required_together must be a list of lists"):
        extract_spec(wrap("@{ options = @{ a = @{}; b = @{} }; required_together = @(@('a', 'b')) }"))


def test_no_create_call():
    with pytest.raises(SpecError, match="no \\[Ansible.Basic.AnsibleModule\\]::Create"):
        extract_spec("$x = 1\n", "none.ps1")
