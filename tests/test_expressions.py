"""CEL wait conditions: which shapes the intake matches through the index (match_plan), and
that evaluation agrees with it."""

from __future__ import annotations

import pytest

from tengo_jobs.core.expressions import MatchPlan, match_key, match_plan, matches
from tengo_jobs.errors import ExpressionError


@pytest.mark.parametrize("expression", [
    "async.data.orderId == event.data.orderId",
    "event.data.orderId == async.data.orderId",
    "(async.data.orderId == event.data.orderId)",
])
def test_the_canonical_equality_is_an_exact_index_lookup(expression):
    assert match_plan(expression) == MatchPlan(("orderId",), ("orderId",), exact=True)


def test_an_equality_inside_a_conjunction_is_looked_up_then_evaluated():
    plan = match_plan("event.data.user.id == async.data.userId && async.data.amount > 10")
    assert plan == MatchPlan(("user", "id"), ("userId",), exact=False)


@pytest.mark.parametrize("expression", [
    "async.data.amount > 10",
    "async.data.a != event.data.a",
    "async.data.a == event.data.a || async.data.b == event.data.b",
    "async.data.a == 'literal'",
    "event.data.a == event.data.b",
    "async.name == event.name",
])
def test_other_shapes_are_evaluated_one_by_one(expression):
    assert match_plan(expression) is None


def test_index_keys_distinguish_strings_from_numbers_and_skip_other_values():
    assert match_key("7") != match_key(7)
    assert match_key(True) is None and match_key(1.5) is None and match_key(None) is None


def test_evaluation_agrees_with_the_index():
    expression = "async.data.orderId == event.data.orderId"
    assert matches(expression, {"data": {"orderId": "o1"}}, {"data": {"orderId": "o1"}})
    assert not matches(expression, {"data": {"orderId": "o1"}}, {"data": {"orderId": "o2"}})
    assert not matches(expression, {"data": {"orderId": "o1"}}, {"data": {}})


def test_a_syntax_error_names_the_expression():
    with pytest.raises(ExpressionError, match="async.data.==="):
        match_plan("async.data.=== 1")
