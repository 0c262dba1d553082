"""Write the first N images of the digits test split as PNG files, `OUT/<class>/<index>.png`.

The test split is fixed (`nas.data.digits`), so these images are never trained on; the PNGs hold the pixels as
evonas stores them (0-16 scaled to 0-255), which is what `nas predict` reads back. Used by `make demo`:

    python examples/digits_test_images.py runs/demo/test-images 12
    nas predict runs/demo/retrained runs/demo/test-images
"""

import sys
from pathlib import Path

from PIL import Image

from nas.data.digits import digits_arrays


def main(out: str, count: int) -> None:
    arrays = digits_arrays(None, 1.0)
    for i, (image, label) in enumerate(zip(arrays["x_test"][:count], arrays["y_test"][:count], strict=True)):
        folder = Path(out) / str(arrays["class_names"][label])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0]).save(folder / f"{i:04d}.png")
    print(f"wrote {min(count, len(arrays['y_test']))} test digits under {out}/<class>/")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 12)
