# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: sql_media
short_description: Stage SQL Server setup media on a local disk and prove it is the right media
version_added: 0.1.0
description:
  - Step 1 of Microsoft KB 256202 (upgrading SQL Server on an SMS / Configuration Manager site server) - copy the
    SQL Server media to a local disk, so that setup (step 5) does not need the network the window takes away
    (step 4).
  - "Three sources, exactly one per task. O(src): a file (an ISO image) or a folder on the controller, sent in
    chunks of O(chunk_size_mib); a run that was cut off resumes with the chunks that already arrived. O(url):
    the host downloads it (ansible.windows' WebRequest util). O(share_path): the host copies it from a UNC path
    with O(share_user) and O(share_password) - a WinRM session cannot pass its own credentials on to a share
    (the double hop)."
  - The source is proven with SHA-256 against O(checksum) or a line of O(checksum_file). Media staged from the
    controller is always proven against the controller's own files. Media that does not match is removed; it
    never reaches O(dest).
  - Media is staged in O(dest) followed by C(.partial) and moved to O(dest) only once proven, with a record in
    C(dest\\.configmgr_sql_upgrade) (source and checksums, and a SHA-256 of every file). A re-run proves the
    media in O(dest) again from that record and copies nothing when it holds (C(changed=false)).
  - An ISO image is extracted (C(Mount-DiskImage), which needs WMI - step 1 runs before step 3 stops it).
  - Reports the media's SQL Server version from the version resource of its C(setup.exe), whether its
    C(x64\\DefaultSetup.ini) carries a product key (the key is never returned), and whether setup of that version
    needs WMI running (RV(wmi_during_setup)).
  - Free space is checked before anything is copied. Files in O(dest) that this collection did not stage are
    never replaced.
options:
  dest:
    description:
      - The local folder for the media, for example C(C:\\SQLMedia\\SQL2019). Missing parent folders are created.
    type: str
    required: true
  src:
    description:
      - A file (an ISO image) or a folder of setup media on the controller. A relative path is looked up as
        Ansible looks up files (a role's C(files) folder first).
    type: str
  url:
    description:
      - An C(http://) or C(https://) URL of an ISO image that the host downloads.
    type: str
  url_username:
    description:
      - The user name for O(url).
    type: str
  url_password:
    description:
      - The password for O(url). Never logged.
    type: str
  validate_certs:
    description:
      - Whether the host checks the certificate of an C(https://) O(url).
    type: bool
    default: true
  share_path:
    description:
      - A UNC path of an ISO image or of a folder of setup media, for example C(\\\\fileserver\\media\\SQL2019).
    type: str
  share_user:
    description:
      - The account the host uses for O(share_path) (C(DOMAIN\\user)). Needed with O(share_password).
    type: str
  share_password:
    description:
      - The password of O(share_user). Never logged.
    type: str
  checksum:
    description:
      - The SHA-256 of the source file (an ISO image), 64 hexadecimal digits, optionally prefixed C(sha256:).
    type: str
  checksum_file:
    description:
      - A file on the controller in C(sha256sum)'s format (C(HASH  name) per line). For an ISO image its line is
        found by file name; for a folder every file of the folder must have a line.
    type: str
  chunk_size_mib:
    description:
      - The size of the chunks O(src) is sent in, in MiB (1 to 1024).
    type: int
    default: 64
  force:
    description:
      - Replace media that this collection staged in O(dest) from another source. Files it did not stage are
        never replaced.
    type: bool
    default: false
notes:
  - Supports check mode (what would be staged, and how many chunks would be sent) and is idempotent.
  - Facts and sources (setup.exe's version resource, DefaultSetup.ini, Mount-DiskImage and WMI) are in the
    collection's docs/sql-setup.md.
seealso:
  - module: configmgr.sql_upgrade.sql_setup
  - module: ansible.windows.win_get_url
author:
  - configmgr.sql_upgrade maintainers (@configmgr)
"""

EXAMPLES = r"""
- name: KB 256202 step 1 - stage the media from the controller, proven by its checksum
  configmgr.sql_upgrade.sql_media:
    src: /srv/media/SQLServer2019-x64-ENU.iso
    checksum: sha256:3b0ad0c0ee13a3cf0d5a5c7b4e4fd12ff6d0bb7a6e2e0e40ffcd3e9bf39fd0c1
    dest: C:\SQLMedia\SQL2019
  register: media

- name: Or let the host copy it from a share (no double hop - explicit credentials)
  configmgr.sql_upgrade.sql_media:
    share_path: \\fileserver\media\SQL2019
    share_user: CONTOSO\svc-sqlmedia
    share_password: "{{ vault_share_password }}"
    checksum_file: files/SQL2019.sha256
    dest: C:\SQLMedia\SQL2019

- name: Or download it on the host
  configmgr.sql_upgrade.sql_media:
    url: https://repo.contoso.com/media/SQLServer2019-x64-ENU.iso
    checksum: 3b0ad0c0ee13a3cf0d5a5c7b4e4fd12ff6d0bb7a6e2e0e40ffcd3e9bf39fd0c1
    dest: C:\SQLMedia\SQL2019

- name: Report what was staged
  ansible.builtin.debug:
    msg: "{{ media.product }} {{ media.setup_version }}; key in media {{ media.product_key_in_media }}"
"""

RETURN = r"""
dest:
  description: The media folder.
  returned: always
  type: str
  sample: C:\SQLMedia\SQL2019
source:
  description: Where the media came from - controller, url or share.
  returned: always
  type: str
location:
  description: The source's path or URL.
  returned: always
  type: str
setup_version:
  description: The ProductVersion of the media's setup.exe.
  returned: when media is in dest
  type: str
  sample: 15.0.2000.5
product:
  description: The SQL Server release of that version.
  returned: when media is in dest
  type: str
  sample: SQL Server 2019
product_key_in_media:
  description: The media's x64\DefaultSetup.ini carries a product key (PID=). The key is not returned.
  returned: when media is in dest
  type: bool
wmi_during_setup:
  description:
    - running when setup of this version checks that WMI runs (rule WmiServiceStateCheck, SQL Server 2005 and
      later), stopped for the setup KB 256202 was written for. Feed it to
      M(configmgr.sql_upgrade.wmi_disable) (C(state=running_for_setup)) before step 5.
  returned: when media is in dest
  type: str
sha256:
  description: The SHA-256 of each source file as staged (relative name to hash).
  returned: when media was staged
  type: dict
bytes:
  description: The size of the source.
  returned: when media was staged
  type: int
chunks_sent:
  description: Chunks sent to the host by this run (O(src) only).
  returned: when the source is on the controller and media was staged
  type: int
chunks_resumed:
  description: Chunks already on the host from a run that was cut off, not sent again (O(src) only).
  returned: when the source is on the controller and media was staged
  type: int
msg:
  description: What was done.
  returned: always
  type: str
"""
