# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every action plugin of configmgr.sql_upgrade shares: the run of an executor (``base.py``), the task
options' domain checks (``checks.py``) and the one error a plan raises (``errors.py``).

Internal to configmgr.sql_upgrade; controller-side only.
"""
