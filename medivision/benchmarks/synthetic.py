"""Synthetic stand-ins for the research set: brain-like slices written as 512x512 JPEGs in the Kaggle layout.

They let the benchmark time decoding, caching and training on a machine without the real data. They are
not MRI: a smooth head with a skull ring, grey-white texture, ventricles and a lesion, plus scanner noise.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def brain_slice(rng: np.random.Generator, size: int) -> np.ndarray:
    """One synthetic axial slice: uint8 [size, size], black background, head of random shape and contrast."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cy, cx = 0.5 + rng.uniform(-0.03, 0.03, 2)
    ry, rx = rng.uniform(0.36, 0.44), rng.uniform(0.30, 0.38)
    radius = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    folds = np.sin(xx * rng.uniform(40, 70) + np.cos(yy * rng.uniform(20, 40)) * 3)
    tissue = 110 + 25 * folds * (radius > 0.45) - 70 * (radius < rng.uniform(0.12, 0.2))  # cortex, ventricles
    image = np.where(radius < 0.9, tissue, 0.0) + np.where((radius >= 0.9) & (radius < 1.0), 200.0, 0.0)
    ly, lx = cy + rng.uniform(-0.5, 0.5) * ry, cx + rng.uniform(-0.5, 0.5) * rx
    lesion = np.hypot(yy - ly, xx - lx) < rng.uniform(0.03, 0.08)
    image = np.where(lesion & (radius < 0.9), 180.0, image)
    image += rng.normal(0, 4, image.shape) * (radius < 1.0)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_kaggle_layout(root: Path, train_images: int, test_images: int, size: int = 512, seed: int = 0) -> Path:
    """Write `train_images` JPEGs under root/Training/<class>/ and `test_images` under root/Testing/<class>/.

    Grayscale stored as RGB, quality 90, as most of the research set is. Written once: a folder whose
    `synthetic.json` records the same settings is reused as it is. Returns root.
    """
    settings = {"train_images": train_images, "test_images": test_images, "size": size, "seed": seed}
    marker = root / "synthetic.json"
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return root
    jobs = [(folder, index) for folder, count in (("Training", train_images), ("Testing", test_images))
            for index in range(count)]

    def write(job: tuple[str, int]) -> None:
        folder, index = job
        rng = np.random.default_rng([seed, folder == "Testing", index])
        name = CLASSES[index % len(CLASSES)]
        path = root / folder / name / f"{folder[:2]}-{name[:2]}_{index:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        gray = brain_slice(rng, size)
        Image.fromarray(np.stack([gray] * 3, axis=-1)).save(path, quality=90)

    with ThreadPoolExecutor() as pool:
        list(pool.map(write, jobs))
    marker.write_text(json.dumps(settings))
    return root
