"""Does an architecture fit its data: the fixed parts of the network (channels in, classes out, input size) are
read from the architecture file, the data's from the dataset; `nas train`, `nas train --cv` and `nas export`
all refuse a mismatch before any training, naming the file and the key."""

from nas.data.dataset import ImageData
from nas.errors import UserError
from nas.genome.architecture import Architecture


def check_fits(arch: Architecture, data: ImageData, source: str) -> None:
    """The network's fixed parts must match the data; a mismatch names the architecture file and the key."""
    for key, have, want in (
        ("in_channels", arch.in_channels, data.in_channels),
        ("num_classes", arch.num_classes, data.num_classes),
        ("input_size", arch.input_size, data.input_size),
    ):
        if have != want:
            hint = " (set dataset.resize to match)" if key == "input_size" else ""
            raise UserError(f"{source}: {key} is {have} but the dataset gives {want}{hint}")
