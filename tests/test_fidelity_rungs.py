"""Successive halving's bookkeeping (nas.run.fidelity): rungs, sync promotion, ASHA, the fitness strategies see.
Property tests: these are pure functions."""

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from nas.run.fidelity import Asha, promote, promotion_count, rung_epochs, told_fitness

accuracies = st.one_of(st.none(), st.floats(0, 1, allow_nan=False))


def test_rungs_of_the_usual_settings():
    assert rung_epochs(1, 3, 9) == [1, 3, 9]
    assert rung_epochs(1, 3, 10) == [1, 3, 9, 10]
    assert rung_epochs(2, 2, 6) == [2, 4, 6]
    assert rung_epochs(1, 3, 2) == [1, 2]
    with pytest.raises(ValueError):
        rung_epochs(3, 3, 3)


@given(st.integers(1, 50), st.integers(2, 6), st.integers(2, 400))
def test_rungs_grow_by_eta_and_end_at_the_budget(min_epochs, eta, epochs):
    if min_epochs >= epochs:
        return
    rungs = rung_epochs(min_epochs, eta, epochs)
    assert rungs[0] == min_epochs and rungs[-1] == epochs
    assert all(b == a * eta for a, b in zip(rungs[:-2], rungs[1:-1], strict=True))
    assert all(a < b for a, b in zip(rungs, rungs[1:], strict=False))
    assert len(rungs) == 1 + math.ceil(math.log(epochs / min_epochs, eta) - 1e-9)


@given(st.lists(accuracies, max_size=40), st.integers(2, 5))
def test_promotion_takes_the_best_of_a_rung(fitness, eta):
    chosen = promote(fitness, eta)
    ok = [i for i, f in enumerate(fitness) if f is not None]
    assert chosen == sorted(set(chosen)) and set(chosen) <= set(ok)
    assert len(chosen) == min(len(ok), promotion_count(len(fitness), eta))
    if fitness:
        assert promotion_count(len(fitness), eta) == max(1, len(fitness) // eta)
    worst_chosen = min((fitness[i] for i in chosen), default=math.inf)
    assert all(fitness[i] <= worst_chosen for i in ok if i not in chosen)


@given(st.lists(st.floats(0, 1, allow_nan=False), unique=True, max_size=30), st.integers(2, 5), st.randoms())
def test_promotion_does_not_depend_on_order_given_distinct_fitness(fitness, eta, rnd):
    order = list(range(len(fitness)))
    rnd.shuffle(order)
    shuffled = [fitness[i] for i in order]
    assert {shuffled[i] for i in promote(shuffled, eta)} == {fitness[i] for i in promote(fitness, eta)}


def test_nine_candidates_eta_three():
    fitness = [0.1, 0.9, 0.5, None, 0.7, 0.2, 0.8, 0.3, 0.4]
    assert promote(fitness, 3) == [1, 4, 6]
    assert promote([0.5, 0.5, 0.5], 3) == [0]  # ties: ask order
    assert promote([None, None], 3) == []


@given(st.lists(st.tuples(st.integers(0, 2), st.floats(0, 1, allow_nan=False)), max_size=25))
@example(pairs=[(0, 0.9999999999999999), (1, 0.0)])  # a rung's best ties the next rung's worst in floating point
def test_told_fitness_ranks_by_rung_then_accuracy(pairs):
    levels = 3
    told = [(told_fitness(a, lv, levels), lv, a) for lv, a in pairs]
    for t1, l1, a1 in told:
        assert 0 <= t1 <= 1
        for t2, l2, a2 in told:
            if (l1, a1) >= (l2, a2):
                assert t1 >= t2, "never out of (rung, accuracy) order"
            if l1 > l2 and a2 < 1 or l1 == l2 and a1 > a2 + 1e-9:
                assert t1 > t2


@given(st.lists(st.one_of(st.none(), st.floats(0, 1, allow_nan=False)), max_size=60), st.integers(2, 4),
       st.integers(2, 4))  # fmt: skip
def test_asha_continues_exactly_the_top_of_what_its_rung_has_seen(arrivals, eta, levels):
    """The stopping rule against a brute-force reading of it: a result continues when fewer than ceil(n / eta)
    of the n results its rung has seen (itself included) are strictly better; failures and the top never do."""
    asha = Asha(levels, eta)
    for i, fitness in enumerate(arrivals):
        level = i % levels
        earlier = [f for j, f in enumerate(arrivals[:i]) if j % levels == level and f is not None]
        goes_on = asha.decide(level, fitness)
        if fitness is None or level == levels - 1:
            assert not goes_on
            continue
        n = len(earlier) + 1
        assert goes_on == (sum(f > fitness for f in earlier) < math.ceil(n / eta)), (level, fitness, earlier)
    assert all(rung == sorted(rung) for rung in asha.seen)


@pytest.mark.parametrize("eta", [2, 3, 4])
@pytest.mark.parametrize("seed", range(5))
def test_asha_continues_one_in_eta_of_a_stream_in_random_order(seed, eta):
    """In a stream in random order the n-th result's rank among the first n is uniform and independent of the
    others, so how many continue is a sum of independent coin flips of p_n = ceil(n / eta) / n: about 1/eta
    of the stream. Checked within 4 standard deviations of that exact mean (fixed seeds)."""
    import random

    n = 600
    arrivals = random.Random(seed).sample(range(10**6), n)
    asha = Asha(2, eta)
    went_on = sum(asha.decide(0, float(f)) for f in arrivals)
    p = [math.ceil(k / eta) / k for k in range(1, n + 1)]
    mean, sd = sum(p), math.sqrt(sum(q * (1 - q) for q in p))
    assert abs(went_on - mean) <= 4 * sd, (went_on, mean, sd)
    assert n / eta <= mean <= n / eta + 2 * math.log(n), "about 1 in eta"


def test_asha_the_first_result_of_a_rung_continues_and_a_worse_second_stops():
    asha = Asha(3, 3)
    assert asha.decide(0, 0.5), "nothing better seen: the rule cannot know better"
    assert not asha.decide(0, 0.4), "second of 2: not in the top ceil(2 / 3) = 1"
    assert asha.decide(0, 0.5), "a tie with the best is not strictly worse"
    assert not asha.decide(0, 0.45), "third of 4: outside the top ceil(4 / 3) = 2"
    assert not asha.decide(0, 0.42), "fourth of 5: outside the top ceil(5 / 3) = 2"
    assert asha.decide(0, 0.6) and not asha.decide(0, 0.47), "first of 6 goes on, fourth of 7 stops (top 3)"
    assert not asha.decide(0, None) and asha.seen[0] == [0.4, 0.42, 0.45, 0.47, 0.5, 0.5, 0.6], "a failure ranks no one"
    assert asha.decide(1, 0.1) and not asha.decide(2, 0.99), "the top rung never continues"


# --- rung state files: sealed on write, checked on read (nas.evaluate.rungfile, nas.run.rungs.RungStore) ---------

KEY, OTHER = "a" * 64, "b" * 64


def synthetic_state(key: str = KEY, epochs: int = 1) -> bytes:
    """What the synthetic objective returns for a rung: a tensor-free state."""
    from nas.evaluate.rungfile import metadata_only

    return metadata_only({"epochs_done": epochs, "key": key})


def tensor_state(epochs: int = 1) -> bytes:
    """A state with tensors and a header the way `trainstate.capture` lays them out (without torch)."""
    import json

    import numpy as np
    from safetensors.numpy import save

    from nas.evaluate.rungfile import FORMAT, META_KEY

    tensors = {"model.w": np.arange(12, dtype=np.float32).reshape(3, 4), "rng.batch": np.arange(7, dtype=np.uint8)}
    meta = {"format": FORMAT, "epochs_done": epochs, "optim_scalars": {"0": {"step": 3}}, "batch_device": "cpu"}
    return save(tensors, metadata={META_KEY: json.dumps(meta)})


class Warnings(list):
    """The warning lines of `nas.run.rungs` while it is in use."""

    def __enter__(self):
        import logging

        self.handler = logging.Handler(logging.WARNING)
        self.handler.emit = lambda record: self.append(record.getMessage())  # type: ignore[method-assign]
        logging.getLogger("nas.run.rungs").addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        import logging

        logging.getLogger("nas.run.rungs").removeHandler(self.handler)


@pytest.mark.parametrize("make", [synthetic_state, tensor_state], ids=["tensor-free", "tensors"])
def test_a_sealed_state_passes_its_check_and_keeps_its_tensors_and_header(make):
    from safetensors.numpy import load

    from nas.evaluate.rungfile import check, read_header, seal

    raw = make(epochs=3)
    sealed = seal(raw, KEY, 3)
    assert check(sealed, KEY, 3) is None
    meta = read_header(sealed)
    assert meta["key"] == KEY and meta["epochs_done"] == 3 and len(meta["sha256"]) == 64
    assert {k: v for k, v in meta.items() if k not in ("key", "sha256")} == {
        k: v for k, v in read_header(raw).items() if k != "key"
    }
    original, loaded = load(raw), load(sealed)
    assert original.keys() == loaded.keys() and all((original[k] == loaded[k]).all() for k in original)
    assert seal(sealed, KEY, 3) == sealed, "sealing is idempotent: a sealed state seals to itself"
    assert (8 + int.from_bytes(sealed[:8], "little")) % 8 == 0, "the tensors start 8-aligned, as safetensors writes"


def test_the_check_names_what_is_wrong():
    from nas.evaluate.rungfile import check, seal

    sealed = seal(tensor_state(1), KEY, 1)
    assert check(sealed, OTHER, 1) == "is the state of another candidate (aaaaaaaaaaaa)"
    assert check(sealed, KEY, 3) == "holds 1 epochs, not 3"
    assert check(tensor_state(1), KEY, 1) == "has no checksum", "an unsealed state (older evonas) is not trusted"
    assert "not a rung state" in check(sealed[:100], KEY, 1)
    assert "not a rung state" in check(b"", KEY, 1)
    flipped = bytearray(sealed)
    flipped[-3] ^= 1  # one bit of a tensor
    assert check(bytes(flipped), KEY, 1) == "does not match its checksum (damaged)"
    assert check(sealed + b"\0", KEY, 1) == "does not match its checksum (damaged)", "bytes appended"
    with pytest.raises(ValueError, match="holds 1 epochs, not 3"):
        seal(tensor_state(1), KEY, 3)
    with pytest.raises(ValueError, match="names candidate"):
        seal(synthetic_state(OTHER), KEY, 1)
    with pytest.raises(ValueError, match="not a rung state"):
        seal(b"garbage", KEY, 1)


def test_the_checksum_covers_every_byte_of_the_file():
    """Any single changed byte, header or tensors, digest included, fails the check (sha256 over the raw file
    with the digest zeroed, not over what the header parses to)."""
    from nas.evaluate.rungfile import check, seal

    sealed = seal(tensor_state(1), KEY, 1)
    for offset in range(len(sealed)):
        for new in {0x20, 0x30, sealed[offset] ^ 0x01}:
            if new == sealed[offset]:
                continue
            bad = sealed[:offset] + bytes([new]) + sealed[offset + 1 :]
            assert check(bad, KEY, 1) is not None, (offset, new)


def test_the_store_loads_only_a_sealed_regular_file_of_that_key_and_those_epochs(tmp_path):
    import os

    from nas.evaluate.rungfile import seal
    from nas.run.rungs import RungStore

    store = RungStore(tmp_path, max_bytes=4096)
    store.save(KEY, 1, synthetic_state())
    path = store.file(KEY, 1)
    good = path.read_bytes()
    with Warnings() as warned:
        assert store.load(KEY, 1) == good
    assert warned == []

    def damaged(how) -> list[str]:
        if path.is_dir():
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
        how()
        with Warnings() as warned:
            assert store.load(KEY, 1) is None
        assert len(warned) == 1 and str(path) in warned[0] and "trains again from epoch 0" in warned[0], warned
        return warned

    outside = tmp_path.parent / f"{tmp_path.name}-outside.safetensors"
    outside.write_bytes(good)
    assert "is missing" in damaged(lambda: None)[0]
    assert "not a regular file" in damaged(lambda: os.mkfifo(path))[0], "a FIFO is never opened (no hang)"
    assert "is a link" in damaged(lambda: path.symlink_to("/dev/zero"))[0]
    assert "is a link" in damaged(lambda: path.symlink_to(outside))[0], "a link is refused even to a good state"
    assert "over the 4096" in damaged(lambda: os.truncate(path.write_bytes(good) and path, 4097))[0], "sparse"
    assert "not a rung state" in damaged(lambda: path.write_bytes(good[: len(good) // 2]))[0]
    assert "another candidate" in damaged(lambda: path.write_bytes(seal(synthetic_state(OTHER), OTHER, 1)))[0]
    assert "has no checksum" in damaged(lambda: path.write_bytes(synthetic_state()))[0]
    assert "was a folder" in damaged(lambda: path.mkdir())[0] and not path.exists(), "an empty folder is removed"
    path.mkdir()
    (path / "inside").write_text("kept")
    with Warnings() as warned:
        assert store.load(KEY, 1) is None
    aside = path.with_name(path.name + ".moved-1")
    assert len(warned) == 1 and "moved aside to" in warned[0] and (aside / "inside").read_text() == "kept"
    assert not path.exists() and store.kept() == {}, "set aside under a name that is not a state's"


def test_a_folder_in_the_way_of_a_write_or_a_removal_is_set_aside_with_one_warning(tmp_path):
    from nas.run.rungs import RungStore

    store = RungStore(tmp_path)
    path = store.file(KEY, 1)
    (path / "sub").mkdir(parents=True)
    with Warnings() as warned:
        store.save(KEY, 1, synthetic_state())
    assert len(warned) == 1 and "moved aside" in warned[0]
    assert store.load(KEY, 1) is not None and (tmp_path / "rungs" / f"{path.name}.moved-1" / "sub").is_dir()
    other = store.file(OTHER, 3)
    other.mkdir()
    with Warnings() as warned:
        store.discard_all_but(set())  # the driver's removals: no DiskWriteError ("resume once it is writable")
    assert len(warned) == 1 and "empty one: removed" in warned[0]
    assert store.kept() == {} and not other.exists()


def test_a_state_that_cannot_be_sealed_or_is_too_large_is_not_kept(tmp_path):
    from nas.run.rungs import RungStore

    store = RungStore(tmp_path, max_bytes=100)
    with Warnings() as warned:
        store.save(KEY, 1, synthetic_state(epochs=2))
        store.save(KEY, 1, tensor_state())
    assert len(warned) == 2 and "holds 2 epochs" in warned[0] and "over the 100" in warned[1]
    assert store.kept() == {}


def test_the_rungs_folder_must_be_a_folder_of_the_run(tmp_path):
    import os

    from nas.errors import UserError
    from nas.run.rungs import prepare_folder

    prepare_folder(tmp_path)  # none yet: nothing to do
    rungs = tmp_path / "rungs"
    rungs.write_text("x")
    with pytest.raises(UserError, match=r"rungs is a file, not a folder; move it away and resume"):
        prepare_folder(tmp_path)
    rungs.unlink()
    rungs.symlink_to("/proc")
    with pytest.raises(UserError, match=r"rungs is a link, not a folder .*move it away and resume"):
        prepare_folder(tmp_path)
    rungs.unlink()
    os.mkfifo(rungs)
    with pytest.raises(UserError, match=r"rungs is a FIFO, a device or a socket, not a folder"):
        prepare_folder(tmp_path)


def test_resume_removes_what_a_killed_state_write_staged_and_nothing_else(tmp_path):
    from nas.run.rungs import RungStore, prepare_folder

    store = RungStore(tmp_path)
    store.save(KEY, 1, synthetic_state())
    rungs = tmp_path / "rungs"
    staged = [rungs / f".{KEY}.e1.safetensors.k2j_x9a0.tmp", rungs / f".{OTHER}.e27.safetensors.abcdefgh.tmp"]
    for p in staged:
        p.write_bytes(b"half a state")
    kept = [rungs / "notes.tmp", rungs / ".other.abcdefgh.tmp", rungs / f"{KEY}.e1.safetensors.abcdefgh.tmp"]
    for p in kept:
        p.write_text("not ours")
    folder = rungs / f".{KEY}.e3.safetensors.abcdefgh.tmp"
    folder.mkdir()  # a folder under a staged name: never removed
    prepare_folder(tmp_path)
    assert not any(p.exists() for p in staged)
    assert all(p.exists() for p in kept) and folder.is_dir()
    assert store.load(KEY, 1) is not None


def test_staged_names_are_the_ones_atomic_writes_use(tmp_path, monkeypatch):
    import os

    from nas import atomicfile

    seen = []
    real = os.replace

    def replace(src, dst):
        seen.append(atomicfile.staged_target(os.path.basename(src)))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    atomicfile.atomic_write_bytes(tmp_path / f"{KEY}.e1.safetensors", b"x")
    assert seen == [f"{KEY}.e1.safetensors"]
    assert atomicfile.staged_target(f".{KEY}.e1.safetensors.k2j_x9a0.tmp") == f"{KEY}.e1.safetensors"
    assert atomicfile.staged_target("plain.tmp") is None
