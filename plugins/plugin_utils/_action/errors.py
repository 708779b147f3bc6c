# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error a plan raises.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations


class PlanError(ValueError):
    """A plan cannot be made: the message names the services / options involved and the fix."""
