"""`python -m medivision.thick_benchmark [ckpt=PATH] [volumes=[...]] [cases=...] [adapt_seconds=120]`: the
thick-slice benchmark.

Each volume of medivision.data.isotropic_volumes is cut into thick slabs along one axis for each case (slice
spacing `factor` in-plane pixels, slab `thickness`, rect or Gaussian profile; medivision.data.slice_profile) and
made isotropic again by linear and cubic B-spline interpolation, by the through-plane prior (without ckpt, the
bundled general_thick) and by the prior adapted to that volume for `adapt_seconds` (medivision.inference.adapt).
Each result is scored against the volume itself: PSNR over the volume, SSIM over its through-plane images, and
the LR-consistency of the model's output (its slabs re-profiled against the simulated acquisition).

With require_gate=true a prior that does not beat cubic B-spline in PSNR and SSIM in every case of every volume
that is evidence (not the training anatomy) is an error naming those cases (what `make bundle-thick` runs).

Writes into the run directory (outputs/thick_benchmark/<time>/): results.csv, report.md and reformats_<volume>.png
(orthogonal planes of each method with its error, for the case at `figure_factor` without a gap).
"""

from __future__ import annotations

import time
from pathlib import Path

from medivision.io.command_line import command_line
from medivision.io.errors import one_line_errors, train_extra

with train_extra("medivision.thick_benchmark"):
    import hydra
    import numpy as np
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from medivision.data.isotropic_volumes import ISOTROPIC_VOLUMES, TRAINING_ANATOMY, VOLUME_NAMES, read_volume
    from medivision.data.slice_profile import PROFILES, SliceGeometry, acquire
    from medivision.inference.adapt import adapt
    from medivision.inference.consistency import slab_consistent
    from medivision.inference.model_file import BUNDLED_THICK_MODEL
    from medivision.inference.models import load_model
    from medivision.inference.thick_volumes import check_through_plane
    from medivision.inference.through_plane import ThroughPlane, interpolate
    from medivision.report.tables import text_table, write_csv
    from medivision.report.thick_slices import (
        GATE_BASELINE,
        THICK_METHODS,
        gate_failures,
        reformats,
        report_lines,
        volume_scores,
    )


@command_line("thick_benchmark", __doc__)
@hydra.main(version_base="1.3", config_path="conf", config_name="thick_benchmark")
@one_line_errors("medivision.thick_benchmark")
def main(cfg: DictConfig) -> None:
    cases = check(cfg)
    out = Path(HydraConfig.get().runtime.output_dir)
    model = load_model(cfg.ckpt, "cpu", "fp32", cfg.threads, BUNDLED_THICK_MODEL, on_torch=True)
    check_through_plane(model)
    if cfg.adapt and not hasattr(model, "generator"):
        raise ValueError(f"ckpt={cfg.ckpt} is ONNX; adapt=true fine-tunes with PyTorch: pass its .safetensors twin or "
                         "the checkpoint, or adapt=false")
    rows = []
    for volume in (v for v in ISOTROPIC_VOLUMES if v.name in cfg.volumes):
        unit, _ = read_volume(volume, model.intensity)
        isotropic = np.ascontiguousarray(np.moveaxis(unit, volume.axis, 0))
        for geometry in cases:
            row, estimates, truth = run_case(model, isotropic, geometry, cfg.adapt, cfg.adapt_seconds)
            rows.append({"volume": volume.name, **row})
            print(f"{volume.name} {row['case']}: " + ", ".join(f"{m} {row[m + ' psnr']:.2f} dB" for m in estimates))
            if geometry.spacing == cfg.figure_factor and geometry.thickness == geometry.spacing:
                reformats(out / f"reformats_{volume.name}.png", truth, estimates, f"{volume.name}, {row['case']}")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    write_csv(out / "results.csv", rows, columns)
    notes = [f"{v.name}: {v.note}" for v in ISOTROPIC_VOLUMES if v.name in cfg.volumes]
    notes.append(f"model: {model.name}; adaptation {cfg.adapt_seconds:g} s per volume and case")
    (out / "report.md").write_text("\n".join(report_lines(rows, notes)) + "\n")
    methods = [m for m in THICK_METHODS if f"{m} psnr" in rows[0]]
    print("\n".join(text_table(["volume", "case", *[f"{m} (dB)" for m in methods]],
                               [[r["volume"], r["case"], *[f"{r[m + ' psnr']:.2f}" for m in methods]] for r in rows])))
    print(f"\nreport: {out / 'report.md'}")
    failed = gate_failures(rows, [name for name in cfg.volumes if name not in TRAINING_ANATOMY])
    if cfg.require_gate and failed:
        raise ValueError(f"the prior does not beat {GATE_BASELINE} in PSNR and SSIM in {len(failed)} cases, so it "
                         f"is not shipped: {'; '.join(failed)}")


def run_case(model, isotropic: np.ndarray, geometry: SliceGeometry, adapt_too: bool,
             seconds: float) -> tuple[dict, dict, np.ndarray]:
    """One simulated acquisition of `isotropic` [N, a, b] (slice axis first): its row of numbers, each method's
    estimate [n, a, b] and the truth it is scored against (the first n = geometry.pixels(m) slices)."""
    slices = geometry.slices(len(isotropic))
    truth = isotropic[:geometry.pixels(slices)]
    acquired = acquire(truth, geometry, slices)
    cubic = interpolate(acquired, geometry, 3)
    estimates = {"linear": interpolate(acquired, geometry, 1), "cubic B-spline": cubic,
                 "cubic B-spline, consistent": slab_consistent(cubic, acquired, geometry)}
    start = time.perf_counter()
    prior = ThroughPlane(model, geometry)(acquired)
    row = {"case": f"{geometry.spacing:g}x, {geometry.thickness:g} px {geometry.profile}", "slices": slices,
           "prior seconds": time.perf_counter() - start, "lr_psnr": prior.lr_psnr}
    estimates["prior"] = prior.volume
    if adapt_too:
        start = time.perf_counter()
        adapted = adapt(model, acquired, (geometry, geometry), seconds)  # isotropic in-plane
        result = ThroughPlane(adapted.model, geometry)(acquired)
        estimates["prior + adaptation"] = result.volume
        row.update({"adapt steps": adapted.steps, "best step": adapted.best_step,
                    "adapt seconds": time.perf_counter() - start, "lr_psnr": result.lr_psnr})
    for method, estimate in estimates.items():
        row.update({f"{method} {key}": value for key, value in volume_scores(estimate, truth).items()})
    return row, estimates, truth


def check(cfg: DictConfig) -> list[SliceGeometry]:
    """The config's cases as geometries; ValueError naming the key for a bad value."""
    unknown = [name for name in cfg.volumes if name not in VOLUME_NAMES]
    if unknown or not cfg.volumes:
        raise ValueError(f"volumes={list(cfg.volumes)} must be a non-empty list of {', '.join(VOLUME_NAMES)}")
    if cfg.profile not in PROFILES:
        raise ValueError(f"profile={cfg.profile!r} is not one of {', '.join(PROFILES)}")
    if cfg.adapt_seconds <= 0:
        raise ValueError(f"adapt_seconds={cfg.adapt_seconds} must be positive")
    if not cfg.cases:
        raise ValueError("cases=[] must list at least one case, e.g. cases=[{factor: 4}]")
    cases = []
    for case in cfg.cases:
        factor, thickness = case.get("factor"), case.get("thickness") or case.get("factor")
        try:
            cases.append(SliceGeometry(float(factor), float(thickness), cfg.profile))
        except (TypeError, ValueError) as error:
            raise ValueError(f"cases: {dict(case)} needs factor (slice spacing in in-plane pixels) and at most that "
                             f"thickness: {error}") from error
    return cases


if __name__ == "__main__":
    main()
