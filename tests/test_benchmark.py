"""`python -m medivision.benchmark` on tiny settings: every section runs and reports numbers from real runs."""

import json

import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from medivision.benchmark import benchmark
from medivision.benchmarks.synthetic import CLASSES, write_kaggle_layout
from medivision.benchmarks.table import format_report
from tests.training import CONF_DIR


@pytest.fixture(autouse=True)
def quiet_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def compose_benchmark(out, *extra):
    """medivision/conf/benchmark.yaml with a tiny model, a few generated 96x96 JPEGs and every output under `out`."""
    overrides = [
        f"paths.output_dir={out}", f"paths.cache_dir={out / 'cache'}", "data.root=null",
        "benchmark.synthetic.train_images=16", "benchmark.synthetic.test_images=4", "benchmark.synthetic.size=96",
        "model.generator.channels=8", "model.generator.blocks=1", "model.generator.reduction=4",
        "model.discriminator.base_channels=4", "model.loss.perceptual.layer=conv1_2",
        "data.batch_size=2", "data.num_workers=0", "trainer=cpu", "+trainer.enable_progress_bar=false",
        "benchmark.training.warmup=1", "benchmark.training.steps=2", "benchmark.training.rounds=2",
        "benchmark.inference.images=4", "benchmark.inference.batch_sizes=[1,2]", "benchmark.inference.repeats=1",
        "benchmark.inference.variants=[eager,channels_last,bf16,onnxruntime]", "benchmark.data.loader_batches=3",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("benchmark", overrides=overrides)


@pytest.mark.slow
def test_every_section_reports_real_measurements(tmp_path):
    cfg = compose_benchmark(tmp_path)
    report = benchmark(cfg)
    assert json.loads((tmp_path / "benchmark.json").read_text()) == report
    assert report["synthetic_data"] and report["machine"]["device"] == "cpu"
    assert report["machine"]["threads"] >= 1 and report["machine"]["conv_gflops_float32"] > 0

    training = report["training"]
    assert len(training["per_round"]["lightning"]) == len(training["per_round"]["plain"]) == 2
    assert all(speed > 0 for side in ("lightning", "plain") for speed in training["per_round"][side])
    assert training["ratio"] == pytest.approx(training["lightning_images_per_s"] / training["plain_images_per_s"])
    assert training["gflop_per_image"] > 0

    inference = report["inference"]
    rows = {(row["variant"], row["batch_size"]): row for row in inference["results"]}
    assert set(rows) == {(variant, size) for variant in ("eager", "channels_last", "bf16", "onnxruntime")
                         for size in (1, 2)}
    assert all(row["images_per_s"] > 0 and row["gflop_per_s"] > 0 for row in rows.values())
    assert inference["gflop_per_image"] > 0 and inference["weights"] == "random"
    # The differences come from the outputs: float32 ways agree to rounding, bf16 visibly differs.
    assert rows["channels_last", 2]["max_abs_diff"] < 1e-5 and rows["onnxruntime", 2]["max_abs_diff"] < 1e-5
    assert rows["bf16", 2]["max_abs_diff"] > 1e-4
    assert rows["eager", 2]["psnr_change_db"] == 0.0
    assert rows["eager", 2]["psnr_db"] == pytest.approx(inference["reference_psnr_db"])

    data = report["data"]
    assert data["files"] == 20 and not data["cold_cache_hit"] and data["warm_cache_hit"]
    assert data["cold_images_per_s"] > 0 and 0 < data["warm_start_seconds"]
    assert all(rate > 0 for key, rate in data["loader"].items() if key.endswith("_per_s"))

    table = format_report(report)
    for heading in ("training: GAN stage", "ratio Lightning / plain", "inference: EMA generator", "onnxruntime",
                    "cold (empty cache)", "warm start", "on-device batches"):
        assert heading in table


def test_sections_can_be_chosen(tmp_path):
    report = benchmark(compose_benchmark(tmp_path, "benchmark.sections=[data]"))
    assert "data" in report and "training" not in report and "inference" not in report


@pytest.mark.parametrize("override, message", [
    ("benchmark.sections=[speed]", r"benchmark.sections=\['speed'\]"),
    ("benchmark.inference.variants=[tensorrt]", "benchmark.inference.variants"),
    ("benchmark.training.warmup=0", "benchmark.training.warmup=0 must be at least 1"),
    ("benchmark.inference.batch_sizes=[16,0]", r"benchmark.inference.batch_sizes\[1\]=0"),
])
def test_bad_settings_name_the_key(override, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        benchmark(compose_benchmark(tmp_path, override))


def test_a_warmup_longer_than_the_split_says_so(tmp_path):
    cfg = compose_benchmark(tmp_path, "benchmark.sections=[training]", "benchmark.training.warmup=50")
    with pytest.raises(ValueError, match="benchmark.training.warmup=50"):
        benchmark(cfg)


def test_synthetic_set_has_the_kaggle_layout_and_is_written_once(tmp_path):
    root = write_kaggle_layout(tmp_path / "set", train_images=8, test_images=4, size=64)
    for folder, count in (("Training", 2), ("Testing", 1)):
        for name in CLASSES:
            files = sorted((root / folder / name).glob("*.jpg"))
            assert len(files) == count
            with Image.open(files[0]) as image:
                assert image.size == (64, 64) and image.mode == "RGB"
    first = next((root / "Training" / "glioma").glob("*.jpg"))
    written = first.stat().st_mtime_ns
    write_kaggle_layout(root, train_images=8, test_images=4, size=64)
    assert first.stat().st_mtime_ns == written  # the same settings: reused as it is
    write_kaggle_layout(root, train_images=12, test_images=4, size=64)
    assert len(list((root / "Training" / "glioma").glob("*.jpg"))) == 3
