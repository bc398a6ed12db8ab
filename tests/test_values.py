"""Richer values: datetime, Decimal, UUID, dataclasses and pydantic models as step results
and event data; the handler gets the same type on the first execution and on replay."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from decimal import Decimal

import pydantic
import pytest

from tengo_jobs import RunStatus
from tengo_jobs.serde import decode_value, dumps, encode_output
from tengo_jobs.errors import NotSerializableError


@dataclasses.dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str


@dataclasses.dataclass
class Invoice:
    id: uuid.UUID
    total: Money
    due: dt.date
    issued_at: dt.datetime


class Customer(pydantic.BaseModel):
    id: int
    email: str
    since: dt.datetime


INVOICE = Invoice(id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
                  total=Money(Decimal("12.50"), "ARS"), due=dt.date(2026, 2, 1),
                  issued_at=dt.datetime(2026, 1, 1, 9, 30, tzinfo=dt.timezone.utc))
CUSTOMER = Customer(id=7, email="a@example.com",
                    since=dt.datetime(2025, 5, 1, tzinfo=dt.timezone(dt.timedelta(hours=-3))))


def test_each_type_round_trips_through_its_envelope():
    values = [dt.datetime(2026, 1, 1, 12, 0, 0, 123456), dt.date(2026, 1, 2), dt.time(9, 5),
              Decimal("0.1"), uuid.uuid4(), INVOICE, CUSTOMER,
              {"nested": [Decimal("1"), {"when": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)}]}]
    for value in values:
        back = decode_value(encode_output(value, what="t"))
        assert back == value and type(back) is type(value)
    assert json.loads(dumps(Decimal("12.50"))) == {"__tj__": "decimal", "v": "12.50"}


def test_stored_text_never_imports_a_module_or_builds_a_class_that_is_not_a_dataclass_or_model():
    for cls in ("os:system", "subprocess:Popen", "antigravity:x", "builtins:dict",
                "tests_no_such_module:Thing"):
        text = json.dumps({"__tj__": "dataclass", "cls": cls, "v": {}})
        assert decode_value(text) == json.loads(text)  # left as the dict it is
    bad = json.dumps({"__tj__": "decimal", "v": "not a number"})
    assert decode_value(bad) == json.loads(bad)


def test_a_value_json_cannot_hold_is_still_refused_naming_the_step():
    with pytest.raises(NotSerializableError, match="step 'x'"):
        encode_output(object(), what="step 'x'")


def test_step_results_come_back_typed_on_the_first_execution_and_on_replay(jobs, tester):
    seen = []

    @jobs.function("typed-steps", event="typed.go", retries=0)
    def typed(ctx, step):
        invoice = step.run("make-invoice", lambda: INVOICE)
        customer = step.run("load-customer", lambda: CUSTOMER)
        when = step.run("when", lambda: dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))
        seen.append((invoice, customer, when))
        step.sleep("pause", "1m")  # the second execution replays the three steps
        return {"total": invoice.total.amount + 1, "customer": customer.email}

    tester.send({"name": "typed.go"})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    assert len(seen) == 2
    first, replayed = seen
    assert first == replayed == (INVOICE, CUSTOMER, dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))
    assert [type(v) for v in first] == [type(v) for v in replayed] == [Invoice, Customer, dt.datetime]
    # the run's output is JSON with the Decimal as an envelope; the step rows hold envelopes too
    assert tester.output(run) == {"total": {"__tj__": "decimal", "v": "13.50"},
                                  "customer": "a@example.com"}
    stored = {s.key: json.loads(s.output) for s in tester.steps(run.id) if s.output}
    assert stored["load-customer"]["__tj__"] == "pydantic"
    assert stored["load-customer"]["cls"] == f"{__name__}:Customer"


def test_async_steps_return_the_same_types(jobs, tester):
    seen = []

    async def amount():
        return Decimal("9.99")

    @jobs.function("typed-async", event="typed.async", retries=0)
    async def typed(ctx, step):
        value = await step.run("amount", amount)
        seen.append(value)
        await step.sleep("pause", "1m")
        return str(value)

    tester.send({"name": "typed.async"})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    assert seen == [Decimal("9.99")] * 2 and all(type(v) is Decimal for v in seen)


def test_event_data_may_hold_typed_values_and_the_handler_gets_them_back(jobs, tester):
    got = []

    @jobs.function("typed-event", event="invoice.issued", retries=0)
    def typed(ctx, step):
        got.append(ctx.event.data)
        return "ok"

    when = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
    jobs.send({"name": "invoice.issued", "data": {"invoice": INVOICE, "at": when}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    assert got == [{"invoice": INVOICE, "at": when}]
