"""Batch augmentation: every output is one of the transformations the recipe allows, and every one of them occurs."""

from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from nas.evaluate.augment import augment_batch, crop_padding, random_crop, random_dihedral, random_flip

# On a GPU the same checks run on CUDA too: every random draw must land on the images' device.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def images(n: int, c: int = 2, size: int = 5, dtype=torch.uint8) -> torch.Tensor:
    """`n` images whose pixels are all distinct within an image, so that every window is recognisable."""
    x = torch.arange(n * c * size * size) % 251 + 1
    return x.view(n, c, size, size).to(dtype)


def windows(image: torch.Tensor, pad: int) -> list[tuple[int, int, torch.Tensor]]:
    """(dy, dx, window) of every size x size window of the zero-padded image."""
    h, w = image.shape[-2:]
    padded = F.pad(image, (pad, pad, pad, pad))
    return [(dy, dx, padded[:, dy : dy + h, dx : dx + w]) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]


def offset_of(out: torch.Tensor, image: torch.Tensor, pad: int) -> tuple[int, int]:
    found = [(dy, dx) for dy, dx, win in windows(image, pad) if torch.equal(out, win)]
    assert found, "the output is a window of the zero-padded image"
    return found[0]


def test_crop_padding_is_an_eighth_of_the_side_and_at_least_one():
    assert [crop_padding(s) for s in (4, 8, 15, 16, 32, 64)] == [1, 1, 1, 2, 4, 8]


@pytest.mark.parametrize("device", DEVICES)
def test_random_crop_draws_every_offset_independently_per_image(device):
    x = images(300, size=5).to(device)
    out = random_crop(x, 2, torch.Generator(device).manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    out, x = out.cpu(), x.cpu()
    offsets = [offset_of(out[i], x[i], 2) for i in range(len(x))]
    assert set(offsets) == {(dy, dx) for dy in range(5) for dx in range(5)}, "all 25 windows occur, corners too"


@pytest.mark.parametrize("device", DEVICES)
def test_random_flip_mirrors_about_half_of_the_images(device):
    x = images(400, size=4).to(device)
    out = random_flip(x, torch.Generator(device).manual_seed(0)).cpu()
    x = x.cpu()
    flipped = [bool(torch.equal(out[i], x[i].flip(2))) for i in range(len(x))]
    assert all(flipped[i] or torch.equal(out[i], x[i]) for i in range(len(x)))
    assert 150 < sum(flipped) < 250


@pytest.mark.parametrize("device", DEVICES)
def test_dihedral_gives_every_one_of_the_eight_symmetries_equally_often(device):
    x = images(400, c=1, size=3).to(device)
    out = augment_batch(x, "dihedral", torch.Generator(device).manual_seed(1))
    assert out.device == x.device
    seen = Counter()
    for i in range(len(x)):
        symmetries = [torch.rot90(x[i], k, dims=(1, 2)) for k in range(4)]
        symmetries += [s.flip(2) for s in symmetries]
        matches = [j for j, s in enumerate(symmetries) if torch.equal(out[i], s)]
        assert matches, "the output is a symmetry of the square"
        seen[matches[0]] += 1
    assert set(seen) == set(range(8)) and all(25 <= n <= 75 for n in seen.values()), seen


def test_dihedral_of_images_with_more_channels_than_pixels_and_its_seed():
    x = images(30, c=5, size=3)
    a = augment_batch(x, "dihedral", torch.Generator().manual_seed(7))
    assert a.shape == x.shape
    assert torch.equal(a, random_dihedral(x, torch.Generator().manual_seed(7))), "same seed, same symmetries"
    assert not torch.equal(a, random_dihedral(x, torch.Generator().manual_seed(8)))
    y = images(30, c=1, size=5)
    assert torch.equal(augment_batch(y, "dihedral", torch.Generator().manual_seed(3)),
                       augment_batch(y, "dihedral", torch.Generator().manual_seed(3)))  # fmt: skip


def test_dihedral_refuses_non_square_images():
    x = torch.zeros(2, 1, 4, 6)
    with pytest.raises(ValueError, match="dihedral augmentation needs square images, got 4x6"):
        augment_batch(x, "dihedral", torch.Generator())


def test_crop_flip_pads_by_an_eighth_then_mirrors():
    """16x16 images: crops come from a 2-pixel zero border (offsets 0..4), then half the crops are mirrored."""
    x = images(300, c=1, size=16)
    out = augment_batch(x, "crop-flip", torch.Generator().manual_seed(2))
    offsets, mirrored = set(), 0
    for i in range(len(x)):
        for candidate, flip in ((out[i], False), (out[i].flip(2), True)):
            found = [(dy, dx) for dy, dx, win in windows(x[i], 2) if torch.equal(candidate, win)]
            if found:
                offsets.add(found[0])
                mirrored += flip
                break
        else:
            raise AssertionError(f"image {i} is neither a crop nor a mirrored crop")
    assert {dy for dy, _ in offsets} == set(range(5)) and {dx for _, dx in offsets} == set(range(5))
    assert 100 < mirrored < 200


def test_crop_flip_pads_by_an_eighth_of_the_width():
    """8 rows by 16 columns: the border is 16 // 8 = 2 pixels, so some crops shift by 2 rows."""
    x = images(200, c=1, size=16)[:, :, :8, :]
    out = augment_batch(x, "crop-flip", torch.Generator().manual_seed(4))
    padded = F.pad(x, (2, 2, 2, 2))
    rows = set()
    for i in range(len(x)):
        found = [dy for dy in range(5) for dx in range(5) for im in (out[i], out[i].flip(2))
                 if torch.equal(im, padded[i, :, dy : dy + 8, dx : dx + 16])]  # fmt: skip
        assert found
        rows.add(found[0])
    assert rows == set(range(5))


def test_same_generator_seed_same_batch_and_none_is_the_identity():
    x = images(20, size=8)
    a = augment_batch(x, "crop-flip", torch.Generator().manual_seed(5))
    b = augment_batch(x, "crop-flip", torch.Generator().manual_seed(5))
    c = augment_batch(x, "crop-flip", torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert augment_batch(x, "none", torch.Generator()) is x


def test_unknown_augmentation_is_refused():
    with pytest.raises(ValueError, match=r"unknown augmentation 'blur' \(known: crop-flip, dihedral, none\)"):
        augment_batch(images(1), "blur", torch.Generator())
