"""``aioserversync demo`` (what ``make demo`` runs): converges, narrates, leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import run_cli
from tests.conftest import MS


async def test_demo_converges_reports_the_conflict_and_cleans_up(tmp_path: Path) -> None:
    work, tmp = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    code, out, err = await run_cli("demo", cwd=work, timeout=60_000 * MS, env={"TMPDIR": str(tmp)})
    assert code == 0, out + err
    assert "converged: hub, write edge and read edge hold the same 6 documents" in out
    assert "conflict reported by the write edge on 'pen'" in out
    assert "lost to the hub's 13.9" in out
    assert err == ""
    assert list(work.iterdir()) == []  # nothing left in the working directory
    assert list(tmp.iterdir()) == []  # the temporary directory is gone


async def test_demo_json_steps(tmp_path: Path) -> None:
    import json

    code, out, err = await run_cli("demo", "--json", cwd=tmp_path, timeout=60_000 * MS)
    assert code == 0, out + err
    steps = [json.loads(line) for line in out.splitlines()]
    names = [s["step"] for s in steps]
    assert names[:3] == ["hub", "edges", "online"]
    assert names[-1] == "done"
    (conflict,) = [s for s in steps if s["step"] == "conflict"]
    assert conflict["id"] == "pen"
    assert conflict["local"]["price"] == 11.0 and conflict["remote"]["price"] == 13.9
    converged = next(s for s in steps if s["step"] == "converged")
    assert [d["_id"] for d in converged["documents"]] == [
        "glue",
        "ink",
        "marker",
        "notebook",
        "pen",
        "ruler",
    ]
