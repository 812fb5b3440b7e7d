"""What an enhance run did, and its summary for the person who ran it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medivision.io.jobs import Written


@dataclass
class RunSummary:
    """Files written, files skipped with the reason, LR-consistency PSNR of each image/frame, and the mean of each
    image's uncertainty map (with uncertainty=true)."""

    model: str
    ensemble: int = 1
    ignored: int = 0  # files of the input folder that are no image, DICOM or NIfTI
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    lr_psnr: list[float] = field(default_factory=list)
    maps: list[Path] = field(default_factory=list)
    mean_spread: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, written: Written, lr_psnr: list[float], mean_spread: list[float]) -> None:
        """Count one input file's outputs and its images' numbers."""
        self.written += written.outputs
        self.maps += written.maps
        self.lr_psnr += lr_psnr
        self.mean_spread += mean_spread

    def skip(self, source: Path, reason: str) -> None:
        self.skipped.append((source, reason))

    def summary(self) -> str:
        passes = " (8-fold self-ensemble)" if self.ensemble == 8 else ""
        lines = [f"enhanced {len(self.written)} files ({len(self.lr_psnr)} images/slices) in {self.seconds:.1f} s "
                 f"with {self.model}{passes}"]
        if self.lr_psnr:
            lines.append(f"LR-consistency PSNR, degrade(SR) vs input: mean {np.mean(self.lr_psnr):.2f} dB, "
                         f"lowest {np.min(self.lr_psnr):.2f} dB (higher: closer to what was measured)")
        if self.written:
            lines.append(f"outputs: {self.written[0]}" + (f" ... ({len(self.written)} files)"
                                                          if len(self.written) > 1 else ""))
        if self.maps:
            lines.append(f"uncertainty maps (std of the 8 ensemble outputs, beside each output as *_uncertainty): "
                         f"{len(self.maps)} files; mean {np.mean(self.mean_spread):.4f}, highest image "
                         f"{np.max(self.mean_spread):.4f} (in [0, 1] units of the image's intensity map)")
        if self.ignored:
            lines.append(f"ignored {self.ignored} files that are not images, DICOM or NIfTI")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} of {len(self.skipped) + len(self.written)} files: "
                         + self.skipped_text(5))
        lines.append("The outputs are model estimates, not measurements; their metadata says so.")
        return "\n".join(lines)

    def skipped_text(self, most: int) -> str:
        """The first `most` reasons for skipping, on one line."""
        return "; ".join(reason for _, reason in self.skipped[:most]) + (" ..." if len(self.skipped) > most else "")
