"""The identifiers in an events file (steps 2 and 5 of a load, :mod:`omnibank.events.loader`): finding the
customer of the lines that name none, and learning the identifiers that lines bind to their customer.

Apart from staging because it is the load's one tie to the store's customers
(:mod:`omnibank.customers.identity`): staging hands each checked slice here and gets it back with its
customers filled in; what the slices bind (``card.issued``, ``identity.linked``) is kept in memory and
recorded in the store once the log has published (first binding wins; conflicts counted in the report).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.exc import SQLAlchemyError

from omnibank.config import Settings
from omnibank.customers.identity import BINDINGS_SCHEMA, RESOLVE_FIELDS, Resolver, learn_identifiers
from omnibank.errors import AppError
from omnibank.events.columns import LEARNT_FROM
from omnibank.kit.crypto import FieldCipher

_LEARNING_TYPES = pa.array(list(LEARNT_FROM), pa.string())


class Identities:
    """The identifiers of one load: those its lines bind (:data:`BINDINGS_SCHEMA`), kept to learn once the
    log publishes, and the :class:`Resolver` that finds the customer of lines that name none."""

    def __init__(self, settings: Settings, cipher: FieldCipher):
        self.cipher = cipher
        self.bindings: list[pa.Table] = []  # identifiers bound by good lines (BINDINGS_SCHEMA)
        self.resolver = Resolver(settings, cipher)
        self.resolved: Counter[str] = Counter()  # lines whose customer was found, by the field that found it

    def bind(self, result: pa.Table, *, explicit: bool) -> None:
        """Keep the identifiers that lines of ``result`` bind to their customer (``card.issued``,
        ``identity.linked``), to learn them after the load publishes. Those of lines that name their
        customer themselves (``explicit``) also resolve later lines of the file."""
        types = result.column("type")
        if not pc.any(pc.is_in(types, value_set=_LEARNING_TYPES)).as_py():
            return
        customer = result.column("customer_id")
        for type_name, learnt in LEARNT_FROM.items():
            is_type = pc.and_(pc.equal(types, type_name), pc.is_valid(customer))
            if not pc.any(is_type).as_py():
                continue
            rows = result.filter(is_type)
            for column, kind in learnt:
                values = rows.column(column)
                if values.null_count == rows.num_rows:
                    continue
                got = rows.filter(pc.is_valid(values))
                columns = [got.column(c) for c in ("customer_id", "event_id", "line_no", "ts")]
                # a card's number itself, to be kept encrypted beside its token
                clear = (
                    got.column("x_card_clear") if kind == "card_id" else pa.nulls(got.num_rows, pa.string())
                )
                table = pa.Table.from_arrays(
                    [pa.array([kind] * got.num_rows, pa.string()), got.column(column), *columns, clear],
                    names=BINDINGS_SCHEMA.names,
                ).cast(BINDINGS_SCHEMA)
                self.bindings.append(table)
                if explicit:
                    self.resolver.note(table)

    def resolve(self, result: pa.Table, rejects: list[tuple[int, str, str]]) -> pa.Table:
        """Find the customer of the lines without a customer_id (through the identifiers they carry);
        the lines whose customer is not found are rejected with the reason."""
        customer = result.column("customer_id").combine_chunks()
        missing = pc.is_null(customer)
        x_columns = [f"x_{name}" for name in RESOLVE_FIELDS]
        pending = result.select(["line_no", "type", "payload", *x_columns]).filter(missing)
        lines = pending.column("line_no").to_pylist()
        fields = {
            name: pending.column(f"x_{name}").to_pylist()
            for name in RESOLVE_FIELDS
            if pending.column(f"x_{name}").null_count < pending.num_rows
        }
        found, via, reasons = self.resolver.resolve(lines, fields)
        self.resolved.update(v for v in via if v is not None)
        if any(why is not None for why in reasons):
            payloads = pending.column("payload").to_pylist()
            for line, why, raw in zip(lines, reasons, payloads, strict=True):
                if why is not None:
                    rejects.append((line, why, raw))
        filled = pc.replace_with_mask(customer, missing, pa.array(found, customer.type))
        result = result.set_column(result.schema.get_field_index("customer_id"), "customer_id", filled)
        if pc.any(pc.is_in(pending.column("type"), value_set=_LEARNING_TYPES)).as_py():
            self.bind(result.filter(pc.and_(missing, pc.is_valid(filled))), explicit=False)
        return result.filter(pc.is_valid(filled)) if filled.null_count else result

    def binding_table(self, leave_out: np.ndarray) -> pa.Table:
        """The identifiers bound by the staged lines (:data:`BINDINGS_SCHEMA`), leaving out the lines in
        ``leave_out`` (sorted line numbers: repeats of an event id earlier in the file)."""
        if not self.bindings:
            return BINDINGS_SCHEMA.empty_table()
        table = pa.concat_tables(self.bindings)
        if len(leave_out):
            line_no = table.column("line_no").to_numpy()
            at = np.minimum(np.searchsorted(leave_out, line_no), len(leave_out) - 1)
            table = table.filter(pa.array(leave_out[at] != line_no))
        return table

    def learn(self, settings: Settings, repeats: np.ndarray) -> dict[str, Any]:
        """Learn the identifiers bound by the file's lines, once the log has published them: in the store,
        first binding wins. Lines whose event was already in the log count too (a repeated id is the same
        event), so loading a file again learns what an interrupted load could not; repeats of an id within
        the file do not. The report's part: counts only."""
        from omnibank.db import unit_of_work

        report: dict[str, Any] = {}
        if self.resolved:
            report["resolved"] = dict(self.resolved)
        bindings = self.binding_table(repeats)
        if bindings.num_rows:
            try:
                with unit_of_work(settings) as session:
                    learnt = learn_identifiers(session, bindings, cipher=self.cipher)
            except SQLAlchemyError as exc:
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                raise AppError(
                    "the events were loaded, but the identifiers they bind could not be recorded "
                    f"({reason}); loading the same file again records them"
                ) from exc
            report.update(learnt.as_report())
        return report
