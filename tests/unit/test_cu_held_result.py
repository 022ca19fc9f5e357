"""``GET /result`` of a result the store still holds: which requests the lean path answers."""

from __future__ import annotations

from types import SimpleNamespace

from pyao.abc import Evaluation
from pyao.cu import open_result_store
from pyao.cu._server import held_result
from pyao.data import b64url_encode

PID = b64url_encode(bytes([1]) * 32)
MID = b64url_encode(bytes([2]) * 32)
OTHER = b64url_encode(bytes([3]) * 32)


def test_only_plain_result_requests_of_held_results_are_answered(tmp_path):
    store = open_result_store(f"sqlite:///{tmp_path}/cu.db")
    try:
        store.put([Evaluation.of(PID, 1, MID, 1, None, 5, 7, {"Output": "held"})])
        unit = SimpleNamespace(engine=SimpleNamespace(store=store))
        assert held_result(unit, f"/result/{MID}", f"process-id={PID}".encode()) == b'{"Output":"held"}'
        assert held_result(unit, f"/result/{MID}", f"no-busy=1&process-id={PID}".encode()) is not None
        # the last process-id wins (as Starlette reads it): here an id with no held result
        assert held_result(unit, f"/result/{MID}", f"process-id={PID}&process-id={OTHER}".encode()) is None
        refused = [
            (f"/result/{MID}", b""),  # no process id: the route answers 400
            (f"/result/{MID}", f"process-id={PID}&x=%20".encode()),  # escapes: the route decodes them
            (f"/result/{MID}", f"process-id={PID}&x=a+b".encode()),
            (f"/result/{MID[:-1]}", f"process-id={PID}".encode()),  # not an id
            (f"/result/{MID}/x", f"process-id={PID}".encode()),
            (f"/results/{PID}", b""),
            (f"/result/{OTHER}", f"process-id={PID}".encode()),  # not held
        ]
        assert [held_result(unit, path, query) for path, query in refused] == [None] * len(refused)
    finally:
        store.close()
