"""Plain-text tables of PSNR/SSIM, model next to the bicubic baseline."""


def metrics_table(results: dict[str, dict[str, float]]) -> str:
    """Rows model and bicubic, a PSNR (dB) and an SSIM column per split.

    results: {"val": {"val/psnr": ..., "val/ssim": ..., "val/bicubic_psnr": ..., "val/bicubic_ssim": ...},
    "test": {...}}; splits without numbers are left out.
    """
    splits = [split for split, values in results.items() if values]
    header = f"{'':<14}" + "".join(f"{f'{s} PSNR (dB)':>16}{f'{s} SSIM':>11}" for s in splits)
    lines = [header]
    for label, prefix in (("model (EMA)", ""), ("bicubic", "bicubic_")):
        cells = "".join(
            f"{results[s][f'{s}/{prefix}psnr']:>16.2f}{results[s][f'{s}/{prefix}ssim']:>11.4f}" for s in splits
        )
        lines.append(f"{label:<14}{cells}")
    return "\n".join(lines)
