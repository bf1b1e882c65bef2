"""The HTML report: self-contained, every plot present, the question browser works in a real headless Chromium."""

import json
import re
import shutil
import subprocess

import pytest
from fake_run import make_run

from selfimprove.outputs.report import ReportError, calibration, load_run, write_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def test_report_is_self_contained_with_every_plot(tmp_path):
    make_run(tmp_path)
    page = write_report(tmp_path).read_text()
    for name in ("accuracy", "agreement", "calibration", "diversity", "length", "gates"):
        assert re.search(rf"<figure class='plot' id='plot-{name}'><svg", page), name
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "nothing is fetched from the network"
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1))
    assert [r["round"] for r in data] == [1, 2]
    q0 = data[0]["questions"][0]
    assert q0["vote"] == "0" and len(q0["samples"]) == 4 and q0["examples"]
    assert "every artifact matches its checksum" in page and load_run(tmp_path).problems == []


def test_calibration_bins_vote_share_against_hidden_gold():
    votes = [{"question_id": "a", "answer": "1", "share": 1.0}, {"question_id": "b", "answer": "2", "share": 0.9},
             {"question_id": "c", "answer": "3", "share": 0.3}, {"question_id": "d", "answer": None, "share": 0.0}]
    curve = calibration(votes, {"a": "1", "b": "7", "c": "3", "d": "4"})
    assert [(c["lo"], c["n"], c["accuracy"]) for c in curve] == [(0.2, 1, 1.0), (0.8, 2, 0.5)]


def test_calibration_uses_the_tasks_equivalence():
    from selfimprove.tasks import get_task

    votes = [{"question_id": "a", "answer": "0.5", "share": 1.0}, {"question_id": "b", "answer": "7", "share": 1.0}]
    gold = {"a": "1/2", "b": "7.00"}
    assert calibration(votes, gold)[0]["accuracy"] == 0.0  # exact strings differ
    assert calibration(votes, gold, get_task("gsm8k").is_equivalent)[0]["accuracy"] == 1.0


def test_missing_and_damaged_inputs_are_named(tmp_path):
    with pytest.raises(ReportError, match="no manifest.json: not a run directory"):
        write_report(tmp_path)
    store = make_run(tmp_path)
    (tmp_path / "pool_gold.jsonl").unlink()
    votes = tmp_path / "rounds/r02/votes.jsonl"
    votes.write_bytes(votes.read_bytes()[:-10])  # half-written
    page = write_report(tmp_path).read_text()
    assert "pool_gold.jsonl is missing: no calibration curve" in page
    assert "rounds/r02/votes.jsonl: checksum does not match" in page and "half-written" in page
    damaged = load_run(tmp_path).problems  # what `selfimprove report` names on the console (and exits 1)
    assert sorted(p.name for p in damaged) == ["pool_gold.jsonl", "rounds/r02/votes.jsonl"]
    store.remove("rounds")
    with pytest.raises(ReportError, match="no finished round yet"):
        write_report(tmp_path)


def test_report_renders_in_headless_chromium(tmp_path):
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium) to open the report in")
    make_run(tmp_path / "run")
    report = write_report(tmp_path / "run")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,2000"]
    dom = subprocess.run(cmd + ["--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120).stdout
    # The script ran: the first question is open with its sampled rationales and verdicts.
    detail = dom[dom.index('id="detail"'):]
    assert "Step 0 for q0. The answer is 0." in detail and detail.count('class="sample kept"') >= 3
    assert "failed majority" in detail and "5 shown of 5 questions" in dom
    assert dom.count("<svg") >= 6
    shot = tmp_path / "report.png"
    subprocess.run(cmd + [f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=120)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    plots = pixels[200:800, :, :3]  # the plot grid under the metrics table
    assert (plots < 0.5).mean() > 0.005, "the plots area is not blank"
    print(f"screenshot: {shot}")
