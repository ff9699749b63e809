"""Write the example images the shipped detectors are checked on (tests/assets/examples/); run once.

    python tools/make_example_images.py

astronaut.jpg: the face of NASA's portrait of Eileen Collins from scikit-image's data (public domain), cropped
and resized to 224 px like a DFDC face crop. synthetic-real.jpg / synthetic-fake.jpg: dfdetect's generated
cartoon faces (the fake one carries upsampling artefacts). No DFDC image is ever copied into the repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from dfdetect.data.synthetic import make_image

OUT = Path(__file__).resolve().parents[1] / "tests" / "assets" / "examples"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    face = Image.fromarray(data.astronaut()).crop((150, 40, 330, 220)).resize((224, 224), Image.Resampling.BICUBIC)
    face.save(OUT / "astronaut.jpg", quality=90)
    for fake in (False, True):
        image = make_image(np.random.default_rng(7), 224, fake=fake)
        image.save(OUT / f"synthetic-{'fake' if fake else 'real'}.jpg", quality=90)
    print(f"wrote {sorted(p.name for p in OUT.iterdir())} to {OUT}")


if __name__ == "__main__":
    main()
