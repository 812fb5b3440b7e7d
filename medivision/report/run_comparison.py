"""Training runs compared (medivision.compare and notebooks/compare_runs.ipynb): one row per run (its best
validation, the settings in which it differs from the others), the rows summarised over seeds, and the Markdown
page. Runs are the dicts of medivision.report.runs.load_runs."""

import json
import math
import statistics
from datetime import date

from medivision.report.tables import markdown_table

# Config keys that say where or how a run was logged, not what was trained.
NOT_SETTINGS = ("paths.", "hydra.", "logger.", "callbacks.", "data.root", "data.cache_dir", "run_name", "group",
                "overrides", "trainer.default_root_dir", "_")


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """{"model": {"generator": {"attention": "cbam"}}} -> {"model.generator.attention": "cbam"} (JSON values)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value)
    return flat


def differing_settings(runs: list[dict]) -> list[str]:
    """Config keys whose values are not the same in all runs, logging keys left out."""
    flats = [flatten(run["config"]) for run in runs]
    keys = sorted(set().union(*flats))
    return [key for key in keys
            if not key.startswith(NOT_SETTINGS) and len({flat.get(key) for flat in flats}) > 1]


def summarise(run: dict, settings: list[str], metric: str = "val/psnr") -> dict:
    """One table row: the run's best `metric` over its history and the other numbers of that validation."""
    flat = flatten(run["config"])
    rows = [row for row in run["history"] if row.get(metric) is not None]
    best = max(rows, key=lambda row: row[metric]) if rows else {}
    experiment = next((o.split("=", 1)[1] for o in run["config"].get("overrides", []) if o.startswith("+experiment=")),
                      run.get("group") or "")
    runtimes = [row["_runtime"] for row in run["history"] if "_runtime" in row]
    stage = metric.split("/")[0]
    return {
        "run": run.get("name") or run["id"],
        "experiment": experiment,
        "settings": " ".join(f"{key}={json.loads(flat[key])}" for key in settings if not _is_seed(key) and key in flat),
        "seed": json.loads(flat.get("seed", "null")),
        metric: best.get(metric, math.nan),
        **{f"{stage}/{name}": best.get(f"{stage}/{name}", math.nan)
           for name in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim") if f"{stage}/{name}" != metric},
        # the gain over bicubic on the same images: splits follow the seed, so this pairs each run with its own baseline
        f"{stage}/psnr_gain": best.get(f"{stage}/psnr", math.nan) - best.get(f"{stage}/bicubic_psnr", math.nan),
        "epoch": best.get("epoch"),
        "wall_time_s": max([*runtimes, run.get("runtime") or 0]) or None,
    }


def learning_curve(run: dict, metric: str = "val/psnr") -> list[tuple[int, float]]:
    """(epoch, value) of each validation during fitting; train.py's final validation of the best
    checkpoint comes after the last training row and is left out."""
    rows = run["history"]
    last_train = max((index for index, row in enumerate(rows) if any(k.startswith("train/") for k in row)),
                     default=len(rows))
    return [(row["epoch"], row[metric]) for row in rows[:last_train + 1] if metric in row and "epoch" in row]


def _is_seed(key: str) -> bool:
    """`seed` and the keys that follow it (data.seed: the split; sampler seeds)."""
    return key == "seed" or key.endswith(".seed")


def over_seeds(rows: list[dict], metric: str = "val/psnr") -> list[dict]:
    """Rows grouped by experiment and settings: n, and mean/std of each number (std is 0 for one seed)."""
    stage = metric.split("/")[0]
    numbers = [f"{stage}/psnr", f"{stage}/ssim", f"{stage}/bicubic_psnr", f"{stage}/bicubic_ssim", f"{stage}/psnr_gain"]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["experiment"], row["settings"]), []).append(row)
    summary = []
    for (experiment, settings), members in groups.items():
        entry = {"experiment": experiment, "settings": settings, "n": len(members),
                 "seeds": sorted(str(m["seed"]) for m in members)}
        for name in numbers:
            values = [m[name] for m in members if not math.isnan(m[name])]
            entry[name] = statistics.fmean(values) if values else math.nan
            entry[f"{name}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        summary.append(entry)
    return sorted(summary, key=lambda entry: entry[f"{stage}/psnr"], reverse=True)


def markdown(rows: list[dict], summary: list[dict], metric: str, source: str) -> str:
    """The comparison page: the summary over seeds first, then every run."""
    stage = metric.split("/")[0]
    lines = [f"# Comparison of {source}", "",
             f"{len(rows)} runs, {date.today().isoformat()}; best `{metric}` of each run over its validations, "
             f"with that validation's SSIM and bicubic baseline; mean ± sample std over seeds. PSNR gain: the run's "
             f"PSNR minus bicubic's on the same images (the split follows the seed).", ""]
    psnr, ssim, gain = f"{stage}/psnr", f"{stage}/ssim", f"{stage}/psnr_gain"
    lines += markdown_table(
        ["experiment", "settings", "seeds", f"{stage} PSNR (dB)", f"{stage} SSIM", "bicubic PSNR", "bicubic SSIM",
         "PSNR gain"],
        [[entry["experiment"], entry["settings"] or "-", entry["n"], f"{entry[psnr]:.2f} ± {entry[psnr + '_std']:.2f}",
          f"{entry[ssim]:.4f} ± {entry[ssim + '_std']:.4f}", f"{entry[f'{stage}/bicubic_psnr']:.2f}",
          f"{entry[f'{stage}/bicubic_ssim']:.4f}", f"{entry[gain]:+.2f} ± {entry[gain + '_std']:.2f}"]
         for entry in summary])
    lines.append("")
    lines += markdown_table(
        ["run", "seed", "PSNR (dB)", "SSIM", "PSNR gain", "epoch", "wall time (s)"],
        [[row["run"], row["seed"], f"{row[psnr]:.2f}", f"{row[ssim]:.4f}", f"{row[gain]:+.2f}", row["epoch"],
          f"{row['wall_time_s']:.1f}" if row["wall_time_s"] is not None else "-"] for row in rows])
    return "\n".join(lines) + "\n"
