"""The run directory's ownership: a run that stops before any work removes what it wrote, and only that."""

from selfimprove.run.identity import disown, names_before


def test_a_run_that_did_no_work_removes_only_what_it_wrote(tmp_path):
    root = tmp_path / "run"
    assert names_before(root) == set()  # not there yet
    root.mkdir()
    (root / "notes.txt").write_text("the user's")
    before = names_before(root)
    for name in ("config.yaml", "environment.json", "manifest.json", "pool.jsonl", ".lock"):
        (root / name).write_text("")
    (root / "cache/requests").mkdir(parents=True)
    disown(root, before)
    assert sorted(p.name for p in root.iterdir()) == [".lock", "notes.txt"]  # the lock goes with its holder


def test_a_directory_that_holds_a_run_is_never_disowned(tmp_path):
    (tmp_path / "config.yaml").write_text("run: {}\n")
    assert names_before(tmp_path) is None
