# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service dependency graph: closures, dependents, start order and stop order (a cycle is an error).

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .._action.errors import PlanError
from .facts import ServiceFact


def _index(facts: Sequence[ServiceFact]) -> dict[str, ServiceFact]:
    return {f.name.casefold(): f for f in facts}


def dependency_closure(roots: Iterable[str], facts: Sequence[ServiceFact]) -> list[str]:
    """Every service the roots depend on, transitively (roots included). Names not among the facts
    (drivers such as HTTP, which ServiceController.GetServices() does not list) are kept as given."""
    index = _index(facts)
    seen: dict[str, str] = {}
    stack = list(roots)
    while stack:
        name = stack.pop()
        key = name.casefold()
        if key in seen:
            continue
        fact = index.get(key)
        seen[key] = fact.name if fact else name
        if fact:
            stack.extend(fact.dependencies)
    return sorted(seen.values(), key=str.casefold)


def dependents_map(facts: Sequence[ServiceFact]) -> dict[str, list[ServiceFact]]:
    """casefolded name → services that depend on it directly."""
    result: dict[str, list[ServiceFact]] = {}
    for fact in facts:
        for dep in fact.dependencies:
            result.setdefault(dep.casefold(), []).append(fact)
    return result


def _find_cycle(nodes: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[str]:
    """A cycle in the graph restricted to nodes (casefolded keys), as a list that starts and ends alike."""
    colour: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        path.append(node)
        for nxt in edges.get(node, ()):
            if colour.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if colour.get(nxt, 0) == 0:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        colour[node] = 2
        return None

    for node in sorted(nodes):
        if colour.get(node, 0) == 0:
            found = visit(node)
            if found:
                return found
    return []


def order_dependencies_first(names: Iterable[str], facts: Sequence[ServiceFact]) -> list[str]:
    """Topological order of names with each service after the services it depends on (start order).
    Ties break by name, so the order is deterministic. A cycle is an error naming it."""
    index = _index(facts)
    spelled = {n.casefold(): (index[n.casefold()].name if n.casefold() in index else n) for n in names}
    keys = set(spelled)
    deps: dict[str, list[str]] = {}
    for key in keys:
        fact = index.get(key)
        deps[key] = sorted({d.casefold() for d in (fact.dependencies if fact else ()) if d.casefold() in keys})
    done: list[str] = []
    placed: set = set()
    remaining = set(keys)
    while remaining:
        ready = sorted(k for k in remaining if all(d in placed for d in deps[k]))
        if not ready:
            cycle = _find_cycle(sorted(remaining), deps)
            raise PlanError(
                "dependency cycle between services: {}; fix the services' dependencies "
                "(sc.exe config NAME depend= ...) before quiescing".format(" -> ".join(spelled[c] for c in cycle))
            )
        for key in ready:
            placed.add(key)
            remaining.discard(key)
            done.append(spelled[key])
    return done


def order_dependents_first(names: Iterable[str], facts: Sequence[ServiceFact]) -> list[str]:
    """Stop order: every service before the services it depends on."""
    return list(reversed(order_dependencies_first(names, facts)))


def running_dependents(root: str, facts: Sequence[ServiceFact]) -> list[str]:
    """Running services that depend on root, directly or transitively (stopping root stops them)."""
    dependents = dependents_map(facts)
    seen: dict[str, str] = {}
    stack = [root]
    while stack:
        for fact in dependents.get(stack.pop().casefold(), []):
            if fact.is_running and fact.name.casefold() not in seen:
                seen[fact.name.casefold()] = fact.name
                stack.append(fact.name)
    return sorted(seen.values(), key=str.casefold)
