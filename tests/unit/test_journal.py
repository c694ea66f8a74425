from comfyui_remote.engine.journal import Journal
from comfyui_remote.engine import redaction


def test_create_update_outputs_and_listing(tmp_path):
    j = Journal(tmp_path / "j.sqlite3")
    for i in range(5):
        j.create(f"t{i}", profile="p", provider="sandbox", state="queued" if i % 2 else "succeeded")
    j.update("t1", progress=0.5, node="KSampler #3", remote_data={"a": 1})
    row = j.get("t1")
    assert row["progress"] == 0.5 and row["remote_data"] == {"a": 1}
    j.set_outputs("t0", [{"n": 0, "kind": "image", "filename": "a.png", "path": "/x/a.png"}])
    assert j.outputs("t0")[0]["filename"] == "a.png"
    page, nxt = j.list(limit=2)
    assert [r["id"] for r in page] == ["t4", "t3"] and nxt is not None
    page2, _ = j.list(limit=2, before=nxt)
    assert [r["id"] for r in page2] == ["t2", "t1"]
    active, _ = j.list(state="active")
    assert {r["id"] for r in active} == {"t1", "t3"}
    assert {r["id"] for r in j.unfinished()} == {"t1", "t3"}


def test_journal_survives_reopen_and_scrubs_secrets(tmp_path):
    redaction.register("journal-canary-secret")
    j = Journal(tmp_path / "j.sqlite3")
    j.create("a", profile="p", provider="x", state="failed", error="bad key journal-canary-secret")
    j.close()
    j2 = Journal(tmp_path / "j.sqlite3")
    assert j2.get("a")["error"] == "bad key ***"
    assert b"journal-canary-secret" not in (tmp_path / "j.sqlite3").read_bytes()


def test_a_journal_from_before_previews_gains_the_column_and_keeps_its_outputs(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    j = Journal(path)
    j.set_outputs("t", [{"n": 0, "kind": "image", "filename": "a.png", "path": "/x/a.png"}])
    j.close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE outputs DROP COLUMN preview")  # as a journal written before the column existed
    db.commit()
    db.close()
    j = Journal(path)
    assert j.outputs("t")[0]["filename"] == "a.png" and j.outputs("t")[0]["preview"] is None
    j.set_outputs("t", [{"n": 0, "kind": "image", "filename": "p.png", "path": "/x/p.png", "preview": 1}])
    assert j.outputs("t")[0]["preview"] == 1
