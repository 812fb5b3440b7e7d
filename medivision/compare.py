"""`python -m medivision.compare PATH_OR_GROUP`: a table and a chart comparing training runs.

PATH_OR_GROUP is a run or sweep directory (its W&B run logs are read, offline runs included) or a W&B
group (`cbam_ablation`, `optuna`, ...), looked up under outputs/ and then on the W&B server.
Each run gives one row: its experiment, the settings in which it differs from the other runs, the best
validation PSNR over its history (the checkpoint monitor) with the SSIM and bicubic baseline of that
validation, the epoch, and the wall time. Runs that differ only in `seed` (which also seeds the data split)
are then summarised as mean +- sample standard deviation. Writes runs.csv, comparison.md, comparison.png and
curves.png (each run's validation PSNR per epoch, with its bicubic baseline, and its training pixel loss).
"""

import argparse
import json
import math
import statistics
from datetime import date
from pathlib import Path

from medivision.io.errors import one_line_errors, train_extra

with train_extra("medivision.compare"):
    from matplotlib.figure import Figure

    from medivision.report.runs import load_runs
    from medivision.report.tables import markdown_table, write_csv

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


def chart(rows: list[dict], summary: list[dict], metric: str = "val/psnr") -> Figure:
    """Mean PSNR and SSIM per configuration with std error bars, each seed as a dot, bicubic dashed."""
    stage = metric.split("/")[0]
    labels = [entry["settings"] or entry["experiment"] for entry in summary]
    figure = Figure(figsize=(max(6.0, 1.6 * len(summary) + 3), 4))
    axes = figure.subplots(1, 2, squeeze=False)
    for axis, name, unit in zip(axes[0], ("psnr", "ssim"), (" (dB)", "")):
        key = f"{stage}/{name}"
        means = [entry[key] for entry in summary]
        # means as points, not bars: the axis does not start at 0, and bars would exaggerate the differences
        axis.errorbar(range(len(summary)), means, yerr=[entry[f"{key}_std"] for entry in summary], fmt="o",
                      color="#4c72b0", markersize=8, capsize=5, label="mean ± std")
        for index, entry in enumerate(summary):
            members = [r[key] for r in rows if (r["experiment"], r["settings"]) == (entry["experiment"],
                                                                                     entry["settings"])]
            axis.plot([index + 0.12] * len(members), members, "k.", markersize=5)
        bicubic = statistics.fmean(entry[f"{stage}/bicubic_{name}"] for entry in summary)
        axis.axhline(bicubic, color="#c44e52", linestyle="--", label=f"bicubic {bicubic:.4g}")
        values = [*(r[key] for r in rows), *(e[key] + sign * e[f"{key}_std"] for e in summary for sign in (-1, 1)),
                  bicubic]
        spread = max(values) - min(values) or abs(bicubic) * 0.05 or 1.0
        axis.set_ylim(min(values) - spread * 0.1, max(values) + spread * 0.15)
        axis.set_xticks(range(len(summary)), labels, rotation=20, ha="right", fontsize=8)
        axis.set_title(f"{stage} {name.upper()}{unit}: mean ± std over seeds")
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def curves(runs: list[dict], metric: str = "val/psnr") -> Figure:
    """Learning curves: `metric` per epoch of every run with its bicubic baseline dashed, and the training pixel
    loss per epoch (log scale)."""
    stage = metric.split("/")[0]
    figure = Figure(figsize=(11, 4))
    axes = figure.subplots(1, 2)
    for run in runs:
        name = run.get("name") or run["id"]
        points = learning_curve(run, metric)
        line, = axes[0].plot([e for e, _ in points], [v for _, v in points], label=name)
        baseline = learning_curve(run, f"{stage}/bicubic_psnr")
        if baseline:
            axes[0].plot([e for e, _ in baseline], [v for _, v in baseline], "--", color=line.get_color(),
                         label=f"{name}: bicubic")
        loss = learning_curve(run, "train/pixel_epoch")
        axes[1].plot([e for e, _ in loss], [v for _, v in loss], color=line.get_color(), label=name)
    axes[0].set(xlabel="epoch", ylabel=f"{metric} (dB)", title=f"{metric} of the EMA generator per epoch")
    axes[1].set(xlabel="epoch", ylabel="train/pixel_epoch", yscale="log", title="training pixel loss per epoch")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def compare(target: str, out: Path | None = None, metric: str = "val/psnr", runs_root: str = "outputs",
            project: str = "medivision", entity: str | None = None) -> tuple[list[dict], list[dict], Path]:
    """Load the runs of `target`, write runs.csv, comparison.md and comparison.png to `out`; return the
    per-run rows, the summary over seeds and the output folder."""
    runs = load_runs(target, runs_root, project, entity)
    settings = differing_settings(runs)
    rows = sorted((summarise(run, settings, metric) for run in runs), key=lambda r: (r["settings"], str(r["seed"])))
    summary = over_seeds(rows, metric)
    if out is None:
        out = Path(target) / "comparison" if Path(target).is_dir() else Path(runs_root) / "comparisons" / target
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "runs.csv", rows, list(rows[0]))
    (out / "comparison.md").write_text(markdown(rows, summary, metric, target))
    chart(rows, summary, metric).savefig(out / "comparison.png", dpi=120)
    curves(runs, metric).savefig(out / "curves.png", dpi=120)
    return rows, summary, out


@one_line_errors("medivision.compare")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medivision.compare", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a run/sweep directory, or a W&B group name")
    parser.add_argument("--out", type=Path, help="output folder (default: <dir>/comparison or "
                                                 "outputs/comparisons/<group>)")
    parser.add_argument("--metric", default="val/psnr", help="metric that picks each run's best validation")
    parser.add_argument("--runs-root", default="outputs", help="where local runs are searched for a group")
    parser.add_argument("--project", default="medivision", help="W&B project (server lookups)")
    parser.add_argument("--entity", help="W&B entity (default: your default entity)")
    args = parser.parse_args(argv)
    _, _, out = compare(args.target, args.out, args.metric, args.runs_root, args.project, args.entity)
    print((out / "comparison.md").read_text())
    print(f"written: {out / 'runs.csv'}, {out / 'comparison.md'}, {out / 'comparison.png'}, {out / 'curves.png'}")


if __name__ == "__main__":
    main()
