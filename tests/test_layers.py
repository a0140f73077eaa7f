"""The code's floors and the absence of import circles (docs/design.md#floors).

``lint-imports`` (pyproject.toml's contracts, run by ``make test``) checks that a floor
never imports a floor above it and that sibling modules do not import each other in a
circle. These tests add what its sibling contract does not see: a circle through a
package's own ``__init__`` (``methods.registry`` importing ``methods``, say), on the
module graph grimp builds from the source.
"""

from __future__ import annotations

import grimp
import pytest

PACKAGES = ("actionbench", "methods", "evaluate", "annotate_app")
ENTRY_POINTS = ("actionbench.cli", "actionbench.__main__", "actionbench.world.cli")


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of a graph ``{module: modules it imports}``: its strongly
    connected components of more than one module, each sorted (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*PACKAGES)


def test_circles_finds_a_circle_and_only_circles():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": set(), "f": {"f"}}
    assert circles(edges) == [["a", "b", "c"]]
    assert circles({"x": {"y"}, "y": set()}) == []


def test_no_module_imports_in_a_circle(graph):
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert circles(edges) == []


def test_core_imports_no_higher_floor():
    """The ground floor (``actionbench`` without its entry points) reaches no higher package,
    directly or through other modules; ``evaluate`` never reaches the app."""
    graph = grimp.build_graph(*PACKAGES)
    for entry in ENTRY_POINTS:
        graph.remove_module(entry)
    for lower, higher in [("actionbench", "methods"), ("actionbench", "evaluate"), ("actionbench", "annotate_app"),
                          ("methods", "evaluate"), ("methods", "annotate_app"), ("evaluate", "annotate_app")]:
        chains = graph.find_shortest_chains(lower, higher)
        assert not chains, f"{lower} reaches {higher}, a higher floor: {sorted(chains)[:3]}"
