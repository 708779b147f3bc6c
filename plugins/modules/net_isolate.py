# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: net_isolate
short_description: Take a site server off the network without locking the controller out, and put it back
version_added: 0.1.0
description:
  - Steps 4 and 6 of Microsoft KB 256202 (upgrading SQL Server on an SMS / Configuration Manager site server).
    O(state=isolated) takes the server off the network so that no remote client - an SMS Provider on another
    server, administrator consoles, site systems, WSUS downstream servers - can reach SQL Server or WMI while
    setup runs the instance in single-user mode, and the controller keeps managing it over WinRM.
  - Isolation is done with the module's own Windows Firewall B(block) rules, inbound and outbound, on every
    profile, whose remote addresses are every IPv4 and IPv6 address except what must stay reachable, and with
    every profile enabled. Windows Firewall applies block rules before allow rules, so this also closes what an
    existing allow rule admits (SQL Server's TCP 1433 rule, File and Printer Sharing, WMI over DCOM). Setting
    the default inbound action to Block would not, and "block all inbound connections" would cut WinRM too.
  - What stays reachable - the controller (O(allow_from), by default the addresses of the established
    connections to the WinRM listener, cross-checked with the address the controller connects from), the
    domain controllers for authentication only (a domain account's every new WinRM connection is validated by a
    domain controller), and O(allow_to).
  - Before any change the module refuses, naming the profile, when Group Policy would keep its rules from taking
    effect (local rules not merged, the firewall turned off, or every inbound connection blocked).
  - After isolating, the module opens a B(new) connection from the controller to prove that the channel still
    works. If it does not, the module removes the isolation at once over the connection it still has and fails,
    saying why.
  - B(The lease.) Isolating registers an on-host watchdog, a scheduled task run as SYSTEM with a time trigger at
    the lease's end and a boot trigger. If the controller disappears (crash, cancelled job, lost network), the
    watchdog puts the server back by itself when the lease ends or the server boots (network first, then WMI,
    then the services, from the journal), and it waits while SQL Server setup is recorded as running. Every call
    of this collection's modules during the window renews the lease. O(state=restored) removes the watchdog.
  - O(state=restored) removes exactly the rules recorded in the journal (and any other isolation rule of this
    collection) and puts each profile's prior on/off state back.
  - Firewall through its COM API (C(HNetCfg.FwPolicy2)) and C(netsh advfirewall), the task through
    C(schtasks.exe), connections through C(GetExtendedTcpTable), domain controllers through C(nltest.exe) - no
    WMI, as the module runs while WMI is stopped and disabled (KB 256202 steps 3 to 7).
options:
  state:
    description:
      - V(isolated) takes the server off the network (KB step 4); V(restored) puts it back (KB step 6).
    type: str
    default: isolated
    choices: [isolated, restored]
  allow_from:
    description:
      - Addresses or networks (CIDR) the controller connects from, which stay reachable both ways. IPv6
        link-local addresses need their scope (C(fe80::1%12)).
      - By default the host's established connections to the WinRM listener's port, and among them the address
        the controller connects from; when the controller's own address is not among them (address
        translation, a jump host), the only connected address, with a note in RV(allow_from_source). When
        several addresses are connected and none is the controller's, the module refuses and asks for this
        option.
      - V(0.0.0.0/0), V(::/0), loopback only, or an address that does not parse is refused.
    type: list
    elements: str
  allow_to:
    description:
      - More addresses or networks the server may still reach (outbound), for example a file server that holds
        the setup media. Same rules as O(allow_from).
    type: list
    elements: str
    default: []
  domain_controllers:
    description:
      - Domain controllers kept reachable from the server for authentication only (DNS, Kerberos, LDAP, SMB,
        RPC and its dynamic ports; every other port blocked), so that a domain account's new WinRM connections
        are still validated (NTLM pass-through, Kerberos, CredSSP and Basic all need a domain controller).
      - By default (V(auto)) the domain controllers the server uses (C(nltest /dsgetdc) and its secure
        channel, C(nltest /sc_query)) when the connection's account is a domain account, and none for a local
        account. A list of addresses replaces the lookup; an empty list keeps none.
    type: list
    elements: str
  lease_minutes:
    description:
      - Minutes after which the on-host watchdog puts the server back by itself unless a module of this
        collection renews the lease (every call does). From 5 to 1440.
    type: int
    default: 30
  probation_seconds:
    description:
      - How long a new isolation waits for the controller's new connection before the watchdog undoes it (when
        the controller cannot even reach the host to undo it itself). From 60 to 3600.
      - Five minutes by default - on a busy server the proof over a new connection (a logon a domain controller
        validates, a new shell or runspace, a host slow to answer while its services stop) can take minutes, and a
        probation that ends during it undoes an isolation that worked.
    type: int
    default: 300
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - configmgr.sql_upgrade.service_window
attributes:
  check_mode:
    support: full
    details: Returns the rules it would add (their remote address ranges), the profiles it would enable and the
      addresses it would keep reachable, and changes nothing.
  diff_mode:
    support: full
    details: Each rule, each profile and the watchdog, before and after.
  platform:
    platforms: windows
notes:
  - B(Group Policy.) A domain policy can keep local rules from taking effect (C(AllowLocalPolicyMerge=0),
    "Apply local firewall rules - No"). The module reads that per profile from
    C(HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall) and C(INetFwPolicy2.LocalPolicyModifyState) and refuses
    before any change.
  - B(Established connections.) Windows Firewall re-authorizes existing connections when its rules change, so
    a connection from a blocked address is cut, the controller's too if O(allow_from) is wrong; the lease then
    brings the server back.
seealso:
  - module: configmgr.sql_upgrade.win_service_quiesce
  - module: configmgr.sql_upgrade.wmi_disable
author:
  - configmgr.sql_upgrade maintainers (@configmgr)
"""

EXAMPLES = r"""
- name: KB 256202 step 4 - take the server off the network, keeping the controller
  configmgr.sql_upgrade.net_isolate:
    state: isolated
  register: isolation

- name: Show what stays reachable
  ansible.builtin.debug:
    msg: "controller {{ isolation.allow_from }}, domain controllers {{ isolation.domain_controllers }}"

- name: The setup media is on a file server that must stay reachable; a longer lease for a slow upgrade
  configmgr.sql_upgrade.net_isolate:
    state: isolated
    allow_to: [10.20.3.15]
    lease_minutes: 90

- name: KB 256202 step 6 - back on the network
  configmgr.sql_upgrade.net_isolate:
    state: restored
"""

RETURN = r"""
allow_from:
  description: The controller's addresses kept reachable.
  returned: when O(state=isolated) and the host was reached
  type: list
  elements: str
  sample: ["10.20.0.5"]
allow_from_source:
  description: Where RV(allow_from) came from - the option, or what the host sees and how it was cross-checked.
  returned: when O(state=isolated) and the host was reached
  type: str
  sample: "the host's connection to WinRM port 5985 from 10.20.0.5, the controller's own address"
domain_controllers:
  description: The domain controllers kept reachable for authentication only.
  returned: when O(state=isolated) and the host was reached
  type: list
  elements: str
rules:
  description: The isolation rules, as planned (O(state=isolated)) or removed (O(state=restored)).
  returned: when the host was reached
  type: list
  elements: dict
  contains:
    name:
      description: Rule name (group C(configmgr.sql_upgrade)).
      type: str
    direction:
      description: V(in) or V(out).
      type: str
    protocol:
      description: V(any), V(tcp) or V(udp).
      type: str
    remote_addresses:
      description: The blocked remote address ranges.
      type: list
      elements: str
    remote_ports:
      description: The blocked remote ports (empty - every port).
      type: list
      elements: str
profiles:
  description: Each firewall profile's on/off state before the window, as the journal records it.
  returned: when the journal has a network record
  type: dict
  sample: {"domain": true, "private": true, "public": true}
lease:
  description: The watchdog's scheduled task and when it fires unless renewed.
  returned: when a watchdog is registered after this task
  type: dict
  contains:
    task:
      description: The scheduled task's path.
      type: str
    fires:
      description: The host's local time at which it fires.
      type: str
    expired:
      description: Whether that time had passed when it was read (false right after a registration or renewal).
      type: bool
confirmed:
  description: A new connection from the controller worked after the isolation.
  returned: when O(state=isolated) changed the firewall, not in check mode
  type: bool
run_id:
  description: The journal's run id.
  returned: when a journal exists on the host or is written by this run
  type: str
journal_path:
  description: Where the on-host journal is.
  returned: when the host was reached (not when the options are refused on the controller)
  type: str
  sample: C:\ProgramData\configmgr.sql_upgrade\journal.json
failed_op:
  description: The operation that failed, the first one when several did.
  returned: when an operation failed
  type: dict
failures:
  description: Every operation that failed (a restore tries them all).
  returned: when operations of a restore failed
  type: list
  elements: dict
  contains:
    op:
      description: The operation.
      type: str
    name:
      description: The rule, profile or task it was for.
      type: str
    msg:
      description: What failed.
      type: str
"""
