"""Generated landscapes (`fitness.landscape: <family>/<instance>`): pure functions of the instance seed and the
genome, in [0, 1], the tuning and test sets disjoint, each family's defining property held by its instances."""

import json
import random
import subprocess
import sys

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.config import parse_config
from nas.errors import UserError
from nas.evaluate.landscape_family import FAMILIES, TEST_FROM, GeneratedLandscape, instances, parse_name
from nas.evaluate.objective import build_objective
from nas.genome import load_space
from nas.genome.genome import Genome
from nas.strategies.random_search import random_genome

SPACE = load_space(ROOT / "encodings" / "densenet_small.yaml")
names = st.builds(lambda f, i: f"{f}/{i}", st.sampled_from(sorted(FAMILIES)), st.integers(0, 2000))


def objective(landscape: str):
    fitness = {"objective": "synthetic", "landscape": landscape}
    config = parse_config({"encoding": str(ROOT / "encodings/densenet_small.yaml"), "fitness": fitness})
    return build_objective(config, SPACE)


def with_bit(genome: Genome, block: int, index: int) -> Genome:
    """`genome` with one shortcut bit of one block flipped."""
    bits = [b.shortcuts for b in genome.blocks]
    s = bits[block]
    bits[block] = s[:index] + ("1" if s[index] == "0" else "0") + s[index + 1 :]
    blocks = tuple((b.layers, b.growth_rate) for b in genome.blocks)
    return SPACE.genome(SPACE.encode(blocks, genome.learning_rate), tuple(bits))


@settings(max_examples=40, deadline=None)
@given(names, st.integers(0, 2**32))
def test_an_instance_is_a_pure_function_in_the_unit_interval(name, seed):
    genome = random_genome(SPACE, random.Random(seed))
    first = objective(name)(genome).fitness
    assert 0.0 <= first <= 1.0
    assert objective(name)(genome).fitness == first  # rebuilt from the name alone


def test_an_instance_scores_the_same_in_another_process():
    genome = random_genome(SPACE, random.Random(5))
    code = (
        "import sys, json; from nas.genome import load_space; from nas.genome.genome import Genome; "
        "from nas.evaluate.synthetic import SyntheticObjective; "
        f"s = load_space({str(ROOT / 'encodings/densenet_small.yaml')!r}); "
        f"g = Genome.from_dict(json.loads({json.dumps(genome.to_dict())!r})); "
        "print(repr(SyntheticObjective(s, (1, 10, 8), 0.0, landscape='rugged/7').fitness(g)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert float(out.stdout) == objective("rugged/7")(genome).fitness


def test_instances_differ_and_the_tuning_and_test_sets_are_disjoint():
    genomes = [random_genome(SPACE, random.Random(s)) for s in range(20)]
    tuning, test = instances("rugged", "tuning", 5), instances("rugged", "test", 5)
    assert not set(tuning) & set(test) and all(parse_name(n)[1] >= TEST_FROM for n in test)
    scores = {n: [objective(n)(g).fitness for g in genomes] for n in tuning + test}
    assert len({tuple(v) for v in scores.values()}) == 10


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 500), st.integers(0, 2**32), st.data())
def test_without_epistasis_a_bit_changes_only_its_own_contribution(instance, seed, data):
    """K = 0 (smooth instances draw K from 0..1): flipping bit i then bit j changes the fitness by the sum of
    the two single flips, which is what separability means."""
    landscape = GeneratedLandscape(f"smooth/{instance}", SPACE, 1)
    landscape.k = 0
    genome = random_genome(SPACE, random.Random(seed))
    block = data.draw(st.integers(0, len(genome.blocks) - 1))
    n = len(genome.blocks[block].shortcuts)
    i, j = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, n - 1))
    if i == j:
        return
    s = landscape.shortcut_score
    both = s(with_bit(with_bit(genome, block, i), block, j)) - s(genome)
    alone = s(with_bit(genome, block, i)) - s(genome) + s(with_bit(genome, block, j)) - s(genome)
    assert both == pytest.approx(alone, abs=1e-12)


def test_with_epistasis_a_bit_changes_what_its_neighbours_contribute():
    genome = next(g for s in range(100) if len((g := random_genome(SPACE, random.Random(s))).blocks[0].shortcuts) >= 6)
    landscape = GeneratedLandscape("rugged/1", SPACE, 1)
    assert landscape.k >= 2
    s = landscape.shortcut_score
    gaps = []
    for i in range(len(genome.blocks[0].shortcuts)):
        for j in range(i + 1, len(genome.blocks[0].shortcuts)):
            both = s(with_bit(with_bit(genome, 0, i), 0, j)) - s(genome)
            gaps.append(abs(both - (s(with_bit(genome, 0, i)) + s(with_bit(genome, 0, j)) - 2 * s(genome))))
    assert max(gaps) > 1e-3


def test_the_global_peak_scores_one_at_its_centre_and_local_peaks_less():
    for instance in range(20):
        landscape = GeneratedLandscape(f"deceptive/{instance}", SPACE, 1)
        peaks = landscape.peaks
        assert len(peaks) >= 2 and peaks[0].height == 1.0 and all(p.height < 1 for p in peaks[1:])
        assert peaks[0].value(list(peaks[0].centre)) == 1.0
        assert peaks[0].width < min(p.width for p in peaks[1:])  # narrow global, broad local


def test_noise_and_cost_appear_only_in_their_families():
    genomes = [random_genome(SPACE, random.Random(s)) for s in range(30)]
    for instance in range(5):
        noisy = GeneratedLandscape(f"noisy/{instance}", SPACE, 1)
        assert 0.01 <= noisy.noise <= 0.03
        assert any(noisy.fitness(g, 0) != noisy.true_fitness(g, 0) for g in genomes)
        costly = objective(f"costly/{instance}")
        big, small = costly.landscape, GeneratedLandscape(f"costly/{instance}", SPACE, 1)
        small.cost = 0.0
        assert big.cost > 0 and all(big.fitness(g, 10**9) <= small.fitness(g, 10**9) for g in genomes)
        smooth = GeneratedLandscape(f"smooth/{instance}", SPACE, 1)
        assert smooth.noise == 0 and smooth.cost == 0


@pytest.mark.parametrize("bad", ["smooth", "smooth/", "flat/3", "smooth/-1", "smooth/1e3", "Smooth/1"])
def test_a_bad_landscape_name_is_a_one_line_error_naming_the_key(bad):
    with pytest.raises(UserError) as info:
        objective(bad)
    assert info.value.key == "fitness.landscape" and "\n" not in str(info.value)
