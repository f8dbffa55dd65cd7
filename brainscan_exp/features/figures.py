"""Before/after grid of the preprocessing, so a person can check what the model actually sees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from brainscan_exp.data.images import load_image
from brainscan_exp.preprocessing import ImageTransform


def plot_preprocessing_grid(
    paths: list[str], transform: ImageTransform, path: str | Path, titles: list[str] | None = None
) -> Path:
    """Rows: original, after the MRI steps, the model's input tensor (de-normalised)."""
    n = len(paths)
    fig = Figure(figsize=(2.2 * n, 6.6))
    axes = fig.subplots(3, n, squeeze=False)
    mean, std = np.array(transform.data_config["mean"]), np.array(transform.data_config["std"])
    for j, p in enumerate(paths):
        original = load_image(p, "L")
        after_mri = transform.mri(original, work_size=transform.work_size)
        tensor = transform(p).numpy()
        model_input = (tensor * std[:, None, None] + mean[:, None, None]).mean(0)
        for i, (img, label) in enumerate(
            [(original, "original"), (after_mri, "MRI steps"), (model_input, "model input")]
        ):
            ax = axes[i][j]
            ax.imshow(
                np.asarray(img) if isinstance(img, Image.Image) else img, cmap="gray", vmin=0, vmax=255 if i < 2 else 1
            )
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label)
            if i == 0 and titles:
                ax.set_title(titles[j], fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path
