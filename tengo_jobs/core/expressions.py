"""CEL expressions: conditions of ``wait_for_event`` (and, later, flow-control keys).

Expressions are compiled once by cel-python and evaluated over JSON (``event`` is the
waiting run's trigger, ``async`` the incoming event) — never Python ``eval``.

So that the intake does not evaluate every waiting run's condition against every
event, :func:`match_plan` reads the condition's shape: Inngest's canonical
``async.data.userId == event.data.userId`` (either side first, alone or as one term
of a top-level ``&&``) becomes an index lookup on the value the trigger holds there
(:func:`match_key`). Only the waits whose key equals the incoming event's key are
candidates; a condition that is nothing but that equality needs no evaluation at all
("exact"). Conditions of any other shape are evaluated one by one, for the waits on
that event name only.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Callable

import celpy
from lark import Token, Tree

from ..errors import ExpressionError

_WRAPPERS = {"expr", "conditionalor", "conditionaland", "relation", "addition",
             "multiplication", "unary", "member", "primary", "paren_expr"}


#: celpy's JSON-to-CEL conversion (celpy imports it into its package without declaring it
#: public, which a strict type check refuses).
json_to_cel: Callable[[Any], Any] = celpy.json_to_cel


@functools.lru_cache(maxsize=512)
def _compiled(expression: str) -> tuple[Any, Any]:
    env = celpy.Environment()
    try:
        ast = env.compile(expression)
        return ast, env.program(ast)
    except Exception as exc:  # celpy raises its own parse errors
        raise ExpressionError(f"invalid CEL expression {expression!r}: {exc}",
                              field="if_exp") from None


def compile_expression(expression: str) -> Any:
    """Compile ``expression`` once; a syntax error is a clear :class:`ExpressionError`."""
    return _compiled(expression)[1]


def matches(expression: str | None, event: dict[str, Any], incoming: dict[str, Any]) -> bool:
    """Does ``incoming`` satisfy ``expression`` for a run triggered by ``event``?"""
    if not expression:
        return True
    program = compile_expression(expression)
    try:
        result = program.evaluate({"event": json_to_cel(event),
                                   "async": json_to_cel(incoming)})
    except Exception:  # noqa: BLE001 - a missing field means "no match", as in Inngest
        return False
    return bool(result) if not isinstance(result, Exception) else False


# -- the indexable shape ---------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MatchPlan:
    """``event.data.<event_path> == async.data.<async_path>``, and whether that is all."""

    event_path: tuple[str, ...]
    async_path: tuple[str, ...]
    exact: bool


def _unwrap(node: Any) -> Any:
    while isinstance(node, Tree) and node.data in _WRAPPERS and len(node.children) == 1:
        node = node.children[0]
    return node


def _path(node: Any) -> tuple[str, ...] | None:
    """``a.b.c`` as ``("a", "b", "c")``, or ``None`` for anything but a plain field path."""
    node = _unwrap(node)
    parts: list[str] = []
    while isinstance(node, Tree) and node.data == "member_dot":
        inner, name = node.children
        if not isinstance(name, Token):
            return None
        parts.append(str(name))
        node = _unwrap(inner)
    if isinstance(node, Tree) and node.data == "ident" and isinstance(node.children[0], Token):
        parts.append(str(node.children[0]))
        return tuple(reversed(parts))
    return None


def _conjuncts(node: Any) -> list[Any]:
    node = _unwrap(node)
    if isinstance(node, Tree) and node.data == "conditionaland" and len(node.children) == 2:
        return _conjuncts(node.children[0]) + _conjuncts(node.children[1])
    return [node]


def _operands(node: Any) -> tuple[Any, ...] | None:
    """The two sides of ``a == b``. cel-python 0.4 parses it as ``relation_eq(a, b)``;
    0.5 as ``relation(relation_eq(a), b)``."""
    if not isinstance(node, Tree):
        return None
    if node.data == "relation_eq" and len(node.children) == 2:
        return node.children[0], node.children[1]
    if (node.data == "relation" and len(node.children) == 2
            and isinstance(node.children[0], Tree) and node.children[0].data == "relation_eq"
            and len(node.children[0].children) == 1):
        return node.children[0].children[0], node.children[1]
    return None


def _equality(node: Any) -> MatchPlan | None:
    operands = _operands(node)
    if operands is None:
        return None
    left, right = _path(operands[0]), _path(operands[1])
    if not left or not right:
        return None
    sides = {left[0]: left, right[0]: right}
    if set(sides) != {"event", "async"}:
        return None
    ev, inc = sides["event"], sides["async"]
    if len(ev) < 3 or len(inc) < 3 or ev[1] != "data" or inc[1] != "data":
        return None
    return MatchPlan(event_path=ev[2:], async_path=inc[2:], exact=False)


@functools.lru_cache(maxsize=512)
def match_plan(expression: str | None) -> MatchPlan | None:
    """The index plan of a wait condition (see the module docstring), or ``None``."""
    if not expression:
        return None
    ast = _compiled(expression)[0]
    terms = _conjuncts(ast)
    for term in terms:
        plan = _equality(_unwrap(term))
        if plan is not None:
            return dataclasses.replace(plan, exact=len(terms) == 1)
    return None


def lookup(data: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in ``data`` (``None`` when any part is missing)."""
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def match_key(value: Any) -> str | None:
    """The index key of a JSON value: strings and integers only (other values never match
    through the index, they are evaluated); the PostgreSQL intake computes the same text
    with ``jsonb_typeof``."""
    if isinstance(value, str):
        return "string:" + value
    if isinstance(value, int) and not isinstance(value, bool):
        return "number:" + json.dumps(value)
    return None
