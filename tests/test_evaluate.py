"""`medivision.evaluate`: the report's files exist and their numbers equal a direct computation."""

import csv
import re

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image
from scipy.ndimage import binary_dilation, binary_fill_holes
from skimage.metrics import peak_signal_noise_ratio
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from medivision.data.degradations import degrade, upsample_bicubic
from medivision.evaluate import evaluate
from medivision.export import export
from medivision.inference.models import load_model
from medivision.report.metrics import foreground_mask
from tests.clinic import compose_config
from tests.reference import ssim_map


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def evaluate_config(checkpoint, kaggle_root, cache_dir, out, *extra):
    return compose_config("evaluate", [
        f"ckpt={checkpoint}", f"data.root={kaggle_root}", f"data.cache_dir={cache_dir}", "data.num_workers=0",
        "data.batch_size=3", f"paths.output_dir={out}", *extra,
    ])


def brain_mask(hr: np.ndarray) -> np.ndarray:
    """The documented mask, computed with SciPy: HR > 0.05, holes filled, dilated by 2 pixels."""
    return binary_dilation(binary_fill_holes(hr > 0.05), structure=np.ones((5, 5), bool))


def test_report_numbers_equal_a_direct_computation(tiny_checkpoint, kaggle_root, cache_dir, tmp_path):
    onnx_file = tmp_path / "tiny.onnx"
    export(compose_config("export", [f"ckpt={tiny_checkpoint}", f"output={onnx_file}"]))
    cfg = evaluate_config(tiny_checkpoint, kaggle_root, cache_dir, tmp_path / "out", "consistency=true",
                          f"compare=[{onnx_file}]")
    result = evaluate(cfg)
    assert result.methods == ["model", "model + consistency", "tiny.onnx", "bicubic"]
    with open(tmp_path / "out" / "per_image.csv") as file:
        rows = list(csv.DictReader(file))

    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    hr = datamodule.test_set.hr.float() / 255.0
    lr = degrade(hr, 4)
    sr = torch.from_numpy(load_model(tiny_checkpoint)(lr.numpy()))
    outputs = {"model": sr, "bicubic": upsample_bicubic(lr, 4)}
    assert len(rows) == len(hr) * 4 and len(hr) == 9  # Testing/: 2 per class and the duplicate (kept in test)
    for row in rows:
        if row["method"] not in outputs:
            continue
        index = int(row["image"])
        assert row["path"] == datamodule.test_set.paths[index]
        assert row["class"] == datamodule.class_names[datamodule.test_set.labels[index]]
        x, y = outputs[row["method"]][index, 0].double().numpy(), hr[index, 0].double().numpy()
        mask = brain_mask(y)
        assert float(row["psnr"]) == pytest.approx(peak_signal_noise_ratio(y, x, data_range=1.0), abs=1e-4)
        assert float(row["ssim"]) == pytest.approx(ssim_map(y, x).mean(), abs=1e-5)
        fg_mse = ((x - y) ** 2)[mask].mean()
        assert float(row["fg_psnr"]) == pytest.approx(10 * np.log10(1 / fg_mse), abs=1e-4)
        assert float(row["fg_ssim"]) == pytest.approx(ssim_map(y, x)[mask].mean(), abs=1e-5)
        assert float(row["fg_fraction"]) == pytest.approx(mask.mean())
        back = degrade(outputs[row["method"]][index:index + 1], 4)[0, 0].double().numpy()
        lr_mse = ((back - lr[index, 0].double().numpy()) ** 2).mean()
        assert float(row["lr_psnr"]) == pytest.approx(10 * np.log10(1 / lr_mse), abs=1e-3)

    # the Markdown table holds the CSV means, which are what training logs as test/psnr and test/ssim
    psnr, ssim = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)), StructuralSimilarityIndexMeasure(data_range=1.0)
    psnr.update(sr, hr)
    ssim.update(sr, hr)
    report = (tmp_path / "out" / "report.md").read_text()
    model_row = re.search(r"^\| model \| (.*) \|$", report, re.M).group(1).split(" | ")
    assert float(model_row[0]) == pytest.approx(psnr.compute().item(), abs=0.006)
    assert float(model_row[1]) == pytest.approx(ssim.compute().item(), abs=6e-5)
    assert float(model_row[4]) == pytest.approx(np.mean([float(r["lr_psnr"]) for r in rows
                                                         if r["method"] == "model"]), abs=0.006)
    glioma = [float(r["psnr"]) for r in rows if r["method"] == "bicubic" and r["class"] == "glioma"]
    assert re.search(rf"^\| bicubic \| {np.mean(glioma):.2f} / ", report, re.M)
    onnx_row = re.search(r"^\| tiny.onnx \| (.*) \|$", report, re.M).group(1).split(" | ")
    assert onnx_row == model_row
    section = report.split("## Data-consistency step")[1]
    change = re.search(r"^\| model \+ consistency \| (.*) \|$", section, re.M).group(1).split(" | ")
    mean = {m: np.mean([float(r["lr_psnr"]) for r in rows if r["method"] == m]) for m in result.methods}
    assert float(change[4]) == pytest.approx(mean["model + consistency"] - mean["model"], abs=0.006)
    assert float(change[4]) > 5

    with Image.open(tmp_path / "out" / "cases.png") as figure:
        assert figure.width > figure.height > 300  # five columns, three rows


def test_foreground_mask_fills_holes_and_dilates():
    hr = torch.zeros(1, 1, 24, 24)
    hr[..., 4:20, 4:20] = 0.8
    hr[..., 9:15, 9:15] = 0.0  # a dark structure inside the head (ventricle)
    hr[..., 0:3, 20:24] = 0.0
    mask = foreground_mask(hr)[0, 0]
    assert mask[9:15, 9:15].all()  # filled
    assert mask[2:22, 2:22].all() and not mask[:2].any() and not mask[:, 22:].any()  # dilated by 2 exactly
    ring = torch.zeros(1, 1, 24, 24)
    ring[..., 4:20, 4:20] = 0.8
    ring[..., 9:15, 0:15] = 0.0  # a notch open to the border is background, not a hole
    assert not foreground_mask(ring, dilation=0)[0, 0, 9:15, 5:12].any()
    assert np.array_equal(foreground_mask(hr, dilation=2)[0, 0].numpy(), brain_mask(hr[0, 0].numpy()))


def test_scale_of_the_checkpoint_must_match_the_data(tiny_checkpoint, kaggle_root, cache_dir, tmp_path):
    cfg = evaluate_config(tiny_checkpoint, kaggle_root, cache_dir, tmp_path, "data.scale=2")
    with pytest.raises(ValueError, match=r"model \(last.ckpt\) upsamples 4x but data.scale=2: pass data.scale=4"):
        evaluate(cfg)


def test_logged_to_wandb_when_a_logger_is_configured(tiny_checkpoint, kaggle_root, cache_dir, tmp_path,
                                                     monkeypatch):
    from medivision.report.wandb_files import find_run_logs, read_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = evaluate(evaluate_config(tiny_checkpoint, kaggle_root, cache_dir, tmp_path, "logger=wandb",
                                      "run_name=eval-tiny"))
    (log,) = find_run_logs(tmp_path / "wandb")
    run = read_run(log)
    assert (run["group"], run["name"], run["job_type"]) == ("evaluate", "eval-tiny", "evaluate")
    logged = {key: value for row in run["history"] for key, value in row.items()}
    model_psnr = np.mean([row["psnr"] for row in result.rows if row["method"] == "model"])
    assert logged["eval/model/psnr"] == pytest.approx(model_psnr)
    assert {"eval/bicubic/fg_ssim", "eval/model/lr_psnr"} <= logged.keys()
    assert any(key.startswith("eval/per_image") for key in logged) and any(key.startswith("eval/cases")
                                                                          for key in logged)
