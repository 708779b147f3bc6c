"""Raw PowerShell commands at the emulation API, in the exact text Ansible and win_reboot send them."""

import pytest
from ansible.plugins.loader import shell_loader

from twin.emulation import UnknownCommand, run_raw
from twin.emulation.raw import fire_due_shutdown, normalise
from twin.host import load_host
from twin.winrm.payload import decode_command_line

LOGON_UI_KEY = r"HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon\AutoLogonChecked"
BOOT_TIME = ("(Get-CimInstance -ClassName Win32_OperatingSystem -Property LastBootUpTime)"
             ".LastBootUpTime.ToFileTime()")
RC_SUFFIX = "; If (-not $?) { If (Get-Variable LASTEXITCODE -ErrorAction SilentlyContinue) { exit $LASTEXITCODE } " \
    "Else { exit 1 } }"


def reboot_script(delay=2, clear_key=True):
    """ansible.windows 3.3.0 plugin_utils/_reboot.py's reboot_command, filled in as it does."""
    return (
        "$ErrorActionPreference = 'Continue'\n"
        f"if (${clear_key}) {{\n"
        f"    Remove-Item -LiteralPath '{LOGON_UI_KEY}' -Force -ErrorAction SilentlyContinue\n"
        "}\n\n$stdout = $null\n"
        f"$stderr = . {{ C:\\Windows\\System32\\shutdown.exe /r /t {delay} /c 'Reboot initiated by Ansible' "
        "| Set-Variable stdout } 2>&1 | ForEach-Object ToString\n\n"
        "ConvertTo-Json -Compress -InputObject @{\n"
        "    stdout = (@($stdout) -join \"`n\")\n"
        "    stderr = (@($stderr) -join \"`n\")\n"
        "    rc = $LASTEXITCODE\n}"
    )


def as_sent_by_reboot(command):
    return command + RC_SUFFIX


def as_sent_by_shell(script):
    """What the winrm connection's exec_command makes of a script: ShellModule._encode_script, decoded."""
    parts = shell_loader.get("powershell")._encode_script(script, as_list=True)
    return decode_command_line(parts[0], " ".join(parts[1:]))


@pytest.fixture
def host():
    return load_host(name="site01", seed=1)


def test_remove_item_of_the_module_temp_dir(host):
    host.fs.mkdir("C:\\Users\\Administrator\\AppData\\Local\\Temp\\ansible-tmp-1\\sub")
    script = shell_loader.get("powershell").remove("C:\\Users\\Administrator\\AppData\\Local\\Temp\\ansible-tmp-1",
                                                   recurse=True)
    text = decode_command_line(*script.split(" ", 1))
    assert normalise(text).endswith("-Force -Recurse;")
    assert run_raw(host, text) == (0, "", "")
    assert not host.fs.exists("C:\\Users\\Administrator\\AppData\\Local\\Temp\\ansible-tmp-1")
    rc, _out, err = run_raw(host, text)  # already gone: Remove-Item fails, the shell's suffix exits 1
    assert rc == 1 and "Remove-Item" in err


def test_boot_time_needs_wmi(host):
    rc, out, _err = run_raw(host, as_sent_by_reboot(BOOT_TIME))
    assert rc == 0 and int(out) == host.boot_time_filetime
    host.scm.stop("Winmgmt", force=True)
    host.scm.set_start_mode("Winmgmt", "disabled")
    rc, out, err = run_raw(host, as_sent_by_reboot(BOOT_TIME))
    assert rc == 1 and out == "" and "Get-CimInstance" in err and "0x80070422" in err


def test_reboot_is_scheduled_then_happens_at_reconnect(host):
    before = host.boot_time_filetime
    host.registry.create_key(LOGON_UI_KEY)
    rc, out, _err = run_raw(host, as_sent_by_reboot(reboot_script(delay=5)))
    assert rc == 0 and out.strip() == '{"stdout":"","stderr":"","rc":0}'
    assert not host.registry.key_exists(LOGON_UI_KEY)  # removed before shutdown.exe
    assert host.boot_time_filetime == before  # nothing yet: shutdown.exe only schedules
    # A second request while one is pending: ERROR_SHUTDOWN_IS_SCHEDULED, reported in the JSON's rc.
    _rc, again, _err = run_raw(host, as_sent_by_reboot(reboot_script()))
    assert '"rc":1190' in again
    now = host.clock.now()
    assert fire_due_shutdown(host) is True
    assert host.clock.now() >= now + 5
    assert host.boot_time_filetime != before
    assert host.registry.key_exists(LOGON_UI_KEY)  # LogonUI after boot: win_reboot's test command sees it
    assert fire_due_shutdown(host) is False


def test_abort_cancels_a_pending_shutdown_and_fails_without_one(host):
    run_raw(host, as_sent_by_reboot(reboot_script()))
    assert run_raw(host, as_sent_by_reboot(r"C:\Windows\System32\shutdown.exe /a")) == (0, "", "")
    assert fire_due_shutdown(host) is False
    rc, _out, err = run_raw(host, as_sent_by_reboot(r"C:\Windows\System32\shutdown.exe /a"))
    assert rc == 1116 and "(1116)" in err


def test_post_reboot_test_command_echoes_its_token_only_when_the_key_exists(host):
    command = as_sent_by_reboot(f"Get-Item -LiteralPath '{LOGON_UI_KEY}' -ErrorAction Stop; 'success-123'")
    if host.registry.key_exists(LOGON_UI_KEY):
        host.registry.delete(LOGON_UI_KEY)
    rc, _out, err = run_raw(host, command)
    assert rc == 1 and "does not exist" in err
    host.registry.create_key(LOGON_UI_KEY)
    rc, out, _err = run_raw(host, command)
    assert rc == 0 and out.rstrip().endswith("success-123")


@pytest.mark.parametrize("script", [
    "Get-Date",
    "Stop-Service -Name SMS_EXECUTIVE",
    "Get-Item -LiteralPath 'C:\\Windows' -ErrorAction Stop; 'x'",
    "Get-WmiObject Win32_Service",
])
def test_unknown_commands_are_refused_by_name_even_when_wmi_is_down(host, script):
    host.scm.stop("Winmgmt", force=True)
    host.scm.set_start_mode("Winmgmt", "disabled")
    with pytest.raises(UnknownCommand, match="not modelled"):
        run_raw(host, as_sent_by_shell(script))


def test_shell_suffix_and_strict_mode_are_undone_but_a_scripts_own_semicolon_stays():
    assert normalise(as_sent_by_shell("Remove-Item 'C:\\a' -Force;")) == "Remove-Item 'C:\\a' -Force;"
    assert normalise(as_sent_by_reboot(BOOT_TIME)) == BOOT_TIME
