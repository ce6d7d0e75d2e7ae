from retrieval.progress import progress_bar


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
