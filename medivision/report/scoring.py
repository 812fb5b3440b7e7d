"""Models scored on a test split: whether a model fits the data, the one pass over the test split that evaluate
and the model-by-condition matrices share, and evaluate's per-image rows."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from medivision.data.datamodule import SRDataModule
from medivision.data.degradation_options import ForwardModel
from medivision.data.degradations import upsample_bicubic
from medivision.inference.consistency import make_consistent
from medivision.inference.ensemble import Ensemble, self_ensemble
from medivision.inference.models import SRModel
from medivision.report.evaluation import CONSISTENT, ENSEMBLED
from medivision.report.metrics import (
    METRICS,
    UNCERTAINTY_METRICS,
    background_mean,
    foreground_mask,
    image_metrics,
    uncertainty_agreement,
)


def check_compatible(model: SRModel, data: SRDataModule, name: str) -> None:
    """ValueError naming the model (`name`) and the data key to pass, unless `model` upsamples by data.scale and
    was trained on images mapped to [0, 1] by data.intensity (else the same file would give it other inputs)."""
    scale, intensity = data.lowres.scale, data.source.intensity
    if model.scale != scale:
        raise ValueError(f"{name} upsamples {model.scale}x but data.scale={scale}: pass data.scale={model.scale} "
                         f"or a {scale}x checkpoint")
    if model.intensity != intensity:
        raise ValueError(f"{name} was trained on data mapped to [0, 1] by the {model.intensity} policy, but "
                         f"data.intensity={intensity}: pass data.intensity={model.intensity}")


class Method(NamedTuple):
    """A way to super-resolve the test images: a model, in one pass or as its 8-fold self-ensemble."""

    model: SRModel
    ensemble: Ensemble = 1


class SplitBatch(NamedTuple):
    """One batch of a test split through every method, on the CPU."""

    start: int  # the split position of its first image (the loader keeps the split's order)
    batch: dict[str, Tensor]  # as evaluation_batches gives it: "hr" [B, 1, H, W], "lr" [B, 1, h, w], "label" [B]
    outputs: dict[str, Tensor]  # each method's SR, float [B, 1, H, W] in [0, 1]
    spreads: dict[str, Tensor]  # each self-ensembled method's uncertainty map, float [B, 1, H, W] in [0, 1] units
    bicubic: Tensor  # the bicubic baseline of the same LR, float [B, 1, H, W] in [0, 1]


@torch.inference_mode()
def through_test_split(datamodule: SRDataModule, methods: Mapping[str, Method],
                       seconds: dict[str, float] | None = None) -> Iterator[SplitBatch]:
    """The datamodule's test split, batch by batch (LR made by its degradation, seeded per image, so every method
    sees the same LR), through every method and bicubic; each method's time is added to `seconds` when given.
    ValueError naming the fix when the split is empty."""
    start = 0
    for batch in datamodule.evaluation_batches("test"):
        unit = batch["lr"].numpy()
        outputs, spreads = {}, {}
        for name, method in methods.items():
            began = time.perf_counter()
            sr, spread = self_ensemble(method.model, unit, method.ensemble)
            if seconds is not None:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - began
            outputs[name] = torch.from_numpy(sr)
            if spread is not None:
                spreads[name] = torch.from_numpy(spread)
        yield SplitBatch(start, batch, outputs, spreads, upsample_bicubic(batch["lr"], datamodule.lowres.scale))
        start += len(batch["hr"])
    if start == 0:
        raise ValueError(f"the test split of data.source={datamodule.source.source} is empty: raise data.test_fraction")


@dataclass
class Measured:
    """evaluate's per-image numbers, added up over the test splits it measures (one per LR kind)."""

    methods: list[str]  # table order: "model", its ENSEMBLED and CONSISTENT variants, compare models, "bicubic"
    rows: list[dict] = field(default_factory=list)  # per image and method: COLUMNS of report.evaluation
    agreement: list[dict] = field(default_factory=list)  # per image, with the ensemble: UNCERTAINTY_COLUMNS
    seconds: dict[str, float] = field(default_factory=dict)  # each timed method's time over the splits

    @classmethod
    def of(cls, models: Iterable[str], ensemble: Ensemble = 1, consistency: bool = False) -> Measured:
        """Nothing measured yet, for `models` ("model" first, then the compare models): with ensemble=8 and
        `consistency` the model's ENSEMBLED and CONSISTENT variants are methods too."""
        variants = [*(["model" + ENSEMBLED] if ensemble == 8 else []), *(["model" + CONSISTENT] if consistency else [])]
        return cls(["model", *variants, *list(models)[1:], "bicubic"])


@torch.inference_mode()
def measure(datamodule: SRDataModule, models: dict[str, SRModel], measured: Measured, iterations: int = 20,
            foreground: tuple[float, int] = (0.05, 2)) -> None:
    """Every method of measured.methods on the datamodule's test split, appended to `measured`.

    models: "model" first, then the compare models. "model + ensemble" is the model's 8-fold self-ensemble, whose
    uncertainty map is scored against the error per image; "model + consistency" is the model's output after
    `iterations` back-projection steps. foreground: the level and dilation of the brain mask
    (medivision.report.metrics.foreground_mask).
    """
    ensembled = "model" + ENSEMBLED in measured.methods
    methods = {name: Method(model) for name, model in models.items()}
    if ensembled:
        methods["model" + ENSEMBLED] = Method(models["model"], 8)
    forward = ForwardModel.of(datamodule.lowres.degradation, datamodule.lowres.options)
    for part in through_test_split(datamodule, methods, measured.seconds):
        hr, lr = part.batch["hr"], part.batch["lr"]
        outputs = {**part.outputs, "bicubic": part.bicubic}
        if "model" + CONSISTENT in measured.methods:
            outputs["model" + CONSISTENT] = torch.from_numpy(make_consistent(
                part.outputs["model"].numpy(), lr.numpy(), datamodule.lowres.scale, forward, iterations))
        mask = foreground_mask(hr, *foreground)
        images = _images(datamodule, part)
        if ensembled:
            numbers = uncertainty_agreement(part.spreads["model" + ENSEMBLED], outputs["model" + ENSEMBLED], hr, mask)
            measured.agreement += [{"image": image["image"], "class": image["class"], "lr": image["lr"],
                                    **{name: float(numbers[name][offset]) for name in UNCERTAINTY_METRICS}}
                                   for offset, image in enumerate(images)]
        fractions = mask.float().flatten(1).mean(1)
        true_background = background_mean(hr, mask)
        for method in measured.methods:
            numbers = image_metrics(outputs[method], hr, lr, mask, datamodule.lowres.scale,
                                    datamodule.lowres.degradation, datamodule.lowres.options)
            measured.rows += [{**image, "method": method, **{name: float(numbers[name][offset]) for name in METRICS},
                               "fg_fraction": float(fractions[offset]), "hr_bg_mean": float(true_background[offset])}
                              for offset, image in enumerate(images)]


def _images(datamodule: SRDataModule, part: SplitBatch) -> list[dict]:
    """The columns that say which test image each of the batch is: image (split position), path, slice_index,
    class, lr (the degradation that made its LR)."""
    test_set = datamodule.test_set
    return [{"image": index, "path": test_set.paths[index], "slice_index": int(test_set.slice_index[index]),
             "class": datamodule.class_names[label], "lr": datamodule.lowres.degradation}
            for index, label in enumerate(part.batch["label"].tolist(), start=part.start)]
