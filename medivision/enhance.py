"""`python -m medivision.enhance input=PATH output=PATH [ckpt=PATH]`: 4x super-resolution of files a clinic has.

Inputs: PNG/JPEG/TIFF images (8- or 16-bit, gray or RGB, any size), DICOM files or series, NIfTI volumes
(in-plane, slice by slice across `axis`), or a folder of any of them. The input is the low-resolution
image: every output is `scale` times larger in-plane. Stored values map to [0, 1] and back by the intensity
policy the model was trained with (medivision.io.intensity: per image; per series or volume for DICOM and
NIfTI, so slices stay comparable). Each output says in its metadata that it is a model estimate, and which
model made it; without `ckpt`, the bundled general model does. The run reports how far degrade(SR) lies from
the input (LR-consistency PSNR). ensemble=8 averages the 8 flips/rotations; with uncertainty=true their spread
is written beside each output as an uncertainty map, in the input's format (medivision.inference.ensemble).
Runs on the CPU unless device=cuda.

through_plane=true: thick-slice NIfTI volumes and DICOM series (slices 1.5 to 8 times coarser than in-plane) made
isotropic at the in-plane spacing, as NIfTI, by a through-plane model (without `ckpt`, the bundled general_thick
prior), fine-tuned on each scan's own in-plane slices first where PyTorch is installed (adapt=auto;
medivision.inference.thick_volumes).
"""

from __future__ import annotations

import logging
import time

import hydra
from omegaconf import DictConfig
from tqdm import tqdm

from medivision.data.degradation_options import DegradationOptions, ForwardModel
from medivision.data.options import option_problems
from medivision.data.slice_profile import PROFILES
from medivision.inference.ensemble import Ensemble, check_ensemble
from medivision.inference.model_file import BUNDLED_THICK_MODEL
from medivision.inference.models import load_model
from medivision.inference.pipeline import Upscaler, process
from medivision.inference.thick_volumes import ThickSettings, check_through_plane, enhance_volumes, resolve_adapt
from medivision.io.command_line import command_line
from medivision.io.errors import one_line_errors
from medivision.io.handlers import jobs
from medivision.io.intensity import INTENSITY_POLICIES
from medivision.io.jobs import Notes, attempt
from medivision.io.outputs import Plan, plan
from medivision.io.run_summary import RunSummary

logger = logging.getLogger(__name__)


@command_line("enhance", __doc__)
@hydra.main(version_base="1.3", config_path="conf", config_name="enhance")
@one_line_errors("medivision.enhance")
def main(cfg: DictConfig) -> None:
    print(enhance(cfg).summary())


def enhance(cfg: DictConfig) -> RunSummary:
    """Super-resolve cfg.input into cfg.output (see medivision/conf/enhance.yaml).

    A file that fails at any step (read, decode, model, write) is skipped with its reason and the rest is
    done. Raises ValueError when nothing was written, or with cfg.strict when anything was skipped.
    """
    ensemble = check(cfg)
    todo = plan(cfg.input, cfg.output, cfg.dicom_format, cfg.overwrite, cfg.allow_inside_input, cfg.uncertainty)
    if cfg.through_plane:
        return enhance_thick(cfg, todo)
    model = load_model(cfg.ckpt, cfg.device, cfg.precision, cfg.threads)
    intensity = intensity_for(cfg, model)
    # without degradation=, the model's own, with any degradation_options given laid over its recorded ones
    options = dict(cfg.degradation_options or {}) if cfg.degradation else {**model.degradation_options,
                                                                             **(cfg.degradation_options or {})}
    forward = ForwardModel.of(cfg.degradation or model.degradation, DegradationOptions.from_config(options))
    upscaler = Upscaler(model, forward, cfg.tile, cfg.overlap, cfg.batch_size, cfg.consistency,
                        cfg.consistency_iterations, ensemble)
    run = RunSummary(model.name, ensemble, todo.ignored)
    notes = Notes.of(model.scale, model.name, cfg.uncertainty)
    start = time.perf_counter()
    # the bar counts images: one per file until a file is read, then its slices or frames
    with tqdm(total=len(todo.pairs), unit="image", disable=len(todo.pairs) < 2 and not todo.nifti, leave=False) as bar:
        def skip(source, reason):
            run.skip(source, reason)
            bar.update()

        for job in jobs(todo, intensity, cfg.axis, cfg.dicom_format, model.scale, notes, skip):
            bar.total += len(job.unit) - 1
            done = attempt(skip, [job.source], lambda job=job: process(job, upscaler, bar.update))
            if done is not None:
                run.add(*done)
    return finish(cfg, run, start, len(todo.pairs))


def enhance_thick(cfg: DictConfig, todo: Plan) -> RunSummary:
    """Thick-slice volumes made isotropic (through_plane=true)."""
    adapt = resolve_adapt(cfg.adapt, cfg.ckpt)
    model = load_model(cfg.ckpt, cfg.device, cfg.precision, cfg.threads, BUNDLED_THICK_MODEL, on_torch=adapt)
    check_through_plane(model)
    settings = ThickSettings(adapt, cfg.adapt_seconds, cfg.slice_thickness, cfg.slice_profile, cfg.uncertainty,
                             cfg.overwrite, cfg.batch_size, cfg.tile, cfg.overlap)
    intensity = intensity_for(cfg, model)
    run = RunSummary(model.name, 1, todo.ignored)
    start = time.perf_counter()
    enhance_volumes(todo, model, settings, intensity, run)
    return finish(cfg, run, start, len(todo.pairs))


def intensity_for(cfg: DictConfig, model) -> str:
    """The intensity policy of the run: cfg.intensity, or the model's own (a warning when they differ)."""
    intensity = cfg.intensity or model.intensity
    if intensity != model.intensity:
        logger.warning("intensity=%s: %s was trained on data mapped with %s; its outputs may be off",
                       intensity, model.name, model.intensity)
    return intensity


def finish(cfg: DictConfig, run: RunSummary, start: float, inputs: int) -> RunSummary:
    """The run's time set; ValueError when nothing was written, or with cfg.strict when anything was skipped."""
    run.seconds = time.perf_counter() - start
    if not run.written:
        raise ValueError(run.skipped[0][1] if len(run.skipped) == 1 else (
            f"none of the {len(run.skipped)} input files could be enhanced: {run.skipped_text(3)}"))
    if cfg.strict and run.skipped:
        raise ValueError(f"strict=true: {len(run.skipped)} of {inputs} files were skipped "
                         f"({run.skipped_text(3)}); the other {len(run.written)} outputs are written")
    return run


def check(cfg: DictConfig) -> Ensemble:
    """The values of cfg that need no file to be wrong: ValueError naming the key and the fix. Returns the
    checked ensemble."""
    ensemble = check_ensemble(cfg.ensemble, cfg.uncertainty and not cfg.through_plane)
    if cfg.through_plane and cfg.ensemble != 1:
        raise ValueError("ensemble=8 is for the in-plane mode; through_plane=true averages its two through-plane "
                         "orientations instead, and uncertainty=true maps where they disagree")
    if cfg.axis not in (0, 1, 2):
        raise ValueError(f"axis={cfg.axis} must be 0, 1 or 2 (the NIfTI array axis slices are cut across)")
    if cfg.intensity is not None and cfg.intensity not in INTENSITY_POLICIES:
        raise ValueError(f"intensity={cfg.intensity!r} is not one of {', '.join(INTENSITY_POLICIES)}, or null for "
                         "the model's own")
    if cfg.slice_profile not in PROFILES:
        raise ValueError(f"slice_profile={cfg.slice_profile!r} is not one of {', '.join(PROFILES)}")
    if cfg.adapt_seconds <= 0:
        raise ValueError(f"adapt_seconds={cfg.adapt_seconds} must be positive")
    problems = option_problems(cfg.degradation_options, DegradationOptions)
    if problems:
        raise ValueError("; ".join("degradation_options" + problem for problem in problems))
    return ensemble


if __name__ == "__main__":
    main()
