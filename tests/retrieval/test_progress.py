from retrieval.progress import StageBars, progress_bar, stage_progress


def test_a_bar_draws_only_when_enabled(capsys):
    with progress_bar(3, desc="embedding", enabled=False) as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""
    with progress_bar(3, desc="embedding") as bar:
        bar.update(3)
    drawn = capsys.readouterr().err
    assert "embedding" in drawn and "3/3" in drawn


def test_a_bar_over_an_iterable_yields_every_item():
    assert list(progress_bar(iterable=[2, 3, 4], desc="clustering", unit="k", enabled=False)) == [2, 3, 4]


def test_stage_bars_draw_one_bar_per_stage_and_none_when_off(capsys):
    assert stage_progress(False) is None  # the index layer then reports to no one
    bars = stage_progress(True)
    assert isinstance(bars, StageBars)
    for done in range(4):
        bars("filling shards", done, 3)
    bars("merging shards", 0, 1)
    bars("merging shards", 1, 1)
    drawn = capsys.readouterr().err
    assert "filling shards" in drawn and "3/3" in drawn and "merging shards" in drawn and "1/1" in drawn
    assert bars._bar is None  # each bar closed as its stage completed
