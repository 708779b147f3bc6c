# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQL Server steps, decided on the controller: KB 256202 step 1 (the media), the gate before step 5, step 5
(setup) and the preflight before anything changes.

Internal to configmgr.sql_upgrade, pure and Ansible-free. One job per file:

- ``media.py``      step 1: sources, checksums, chunks and resume, space, staged media
- ``gate.py``       the single-user gate: which sessions would take setup's one connection
- ``setup.py``      step 5: versions, the WMI rule, setup's command line, the product key, Summary.txt
- ``preflight.py``  what refuses a host before step 1
"""
