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
from pathlib import Path

from medivision.io.errors import one_line_errors, train_extra

with train_extra("medivision.compare"):
    from medivision.report.run_charts import chart, curves
    from medivision.report.run_comparison import differing_settings, markdown, over_seeds, summarise
    from medivision.report.runs import load_runs
    from medivision.report.tables import write_csv


def compare(target: str, out: Path | None = None, metric: str = "val/psnr", runs_root: str = "outputs",
            project: str = "medivision", entity: str | None = None) -> tuple[list[dict], list[dict], Path]:
    """Load the runs of `target`, write runs.csv, comparison.md, comparison.png and curves.png to `out`; return the
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
