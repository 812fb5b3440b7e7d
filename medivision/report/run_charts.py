"""The figures of a run comparison: each configuration's PSNR and SSIM over seeds, and every run's learning
curves. Rows and summary are those of medivision.report.run_comparison."""

import statistics

from matplotlib.figure import Figure

from medivision.report.run_comparison import learning_curve


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
