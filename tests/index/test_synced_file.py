"""A faiss file kept in step with a catalog table: checked, rebuilt by a writer, searched in memory by a reader."""
import pytest

from index.catalog.schema import Image
from index.directory import IndexStore
from index.errors import RetrError
from index.synced_file import FileRecord, SyncedFile
from tests.index.small_index import ids_of, unit


class RecordedInMemory(SyncedFile):
    """The image vectors in ``test.faiss``, its record kept in a shared dict instead of the manifest."""

    name = "test.faiss"
    table = Image
    noun = "test vectors"
    absent = "has no test file"

    def __init__(self, store: IndexStore, records: dict):
        super().__init__(store)
        self.records = records

    def recorded(self):
        return self.records.get("file")

    def record(self, record: FileRecord) -> None:
        self.records["file"] = record


@pytest.fixture
def records(store):
    """The shared records, with test.faiss written from the store's three images."""
    records: dict = {}
    synced = RecordedInMemory(store, records)
    with store.write_access():
        synced.record(synced.write("flat", store.dim))
    return records


def nearest(synced, *query):
    _, ids = synced.searcher().search(unit(*query)[None], 3)
    return [int(i) for i in ids[0] if i >= 0]


def test_a_written_file_is_recorded_and_served(store, records):
    synced = RecordedInMemory(store, records)
    record = records["file"]
    assert (record.index_type, record.factory, record.vectors) == ("flat", "Flat", 3)
    assert synced.consistent() and not synced.reconcile()
    ids = ids_of(store)
    assert nearest(synced, 1, 2, 0, 0) == [ids["c"], ids["b"], ids["a"]]
    assert store.repairs == []


def test_a_checksum_mismatch_is_rebuilt_by_a_writer(store, records):
    synced = RecordedInMemory(store, records)
    synced.path.write_bytes(synced.path.read_bytes()[:-8])  # truncated
    assert "does not match its checksum in the manifest" in synced.problem()
    assert nearest(synced, 1, 0, 0, 0)[0] == ids_of(store)["a"]
    assert "rebuilt it from the catalog's 3 test vectors" in store.repairs[0]
    assert synced.consistent() and records["file"].checksum is not None


def test_an_ids_digest_mismatch_is_rebuilt_by_a_writer(store, records):
    ids = ids_of(store)
    store.catalog.delete_images([ids["c"]])
    synced = RecordedInMemory(store, records)
    assert synced.problem() == f"{synced.path} is out of step with the catalog"
    assert synced.reconcile()
    assert synced.consistent() and records["file"].vectors == 2
    assert nearest(synced, 1, 2, 0, 0) == [ids["b"], ids["a"]]


def test_a_reader_searches_in_memory_and_leaves_the_file_and_record_alone(store, records):
    ids = ids_of(store)
    synced = RecordedInMemory(store, records)
    damaged = synced.path.read_bytes()[:-8]
    synced.path.write_bytes(damaged)
    before = records["file"]
    with IndexStore.open(store.dir) as reader:
        fresh = RecordedInMemory(reader, records)
        assert nearest(fresh, 1, 2, 0, 0) == [ids["c"], ids["b"], ids["a"]]
        assert "searching the catalog's 3 test vectors in memory" in reader.repairs[0]
        # the writer of the fixture holds the lock: a reader cannot repair the file, and says so
        assert not fresh.reconcile() and "it was not rewritten" in reader.repairs[1]
    assert synced.path.read_bytes() == damaged and records["file"] == before


def test_nothing_recorded_is_a_problem_and_nothing_to_rebuild(store):
    synced = RecordedInMemory(store, {})
    assert synced.problem() == f"the index at {store.dir} has no test file"
    assert not synced.reconcile()
    with pytest.raises(RetrError, match="has no test file: there is no test.faiss to rebuild"):
        synced.rebuild()
    assert not synced.path.exists()
