"""Progress is visible when output is not a terminal: plain lines, throttled, and one when a task ends."""

import io

from selfimprove.progress import LineProgress


def test_line_progress_prints_throttled_lines_and_the_end():
    out = io.StringIO()
    bar = LineProgress(every=3600, stream=out)
    with bar:
        task = bar.add_task("round 1: sampling", total=10)
        for _ in range(10):
            bar.advance(task, 1)
        other = bar.add_task("training", total=5)
        bar.update(other, completed=2, description="training (loss 0.5)")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("round 1: sampling 1/10 (10%)")  # the first update prints at once
    assert lines[1].startswith("round 1: sampling 10/10 (100%)")  # then nothing until it completes
    assert lines[-1].startswith("training (loss 0.5) 2/5 (40%)")  # an unfinished task is reported at the end
    assert len(lines) == 4
