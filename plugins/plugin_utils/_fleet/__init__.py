# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet: a Configuration Manager hierarchy upgraded in Microsoft's order, in rolling batches, and its report.

Internal to configmgr.sql_upgrade, pure and Ansible-free. One job per file:

- ``hierarchy.py``  sites, parents and the waves (CAS, secondaries, primaries)
- ``rollout.py``    batch size and failure threshold, checked before any host is touched
- ``report.py``     the run's report (Markdown, HTML, JUnit)
"""
