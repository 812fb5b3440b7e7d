"""The benchmark report (see medivision.benchmark) as plain text."""

from __future__ import annotations

from medivision.report.tables import text_table


def format_report(report: dict) -> str:
    machine = report["machine"]
    lines = [
        f"MediVision benchmark, {machine['date']}",
        f"command: {report['command']}",
        f"machine: {machine['cpu']}, {machine['cpu_cores']} cores; Python {machine['python']}, torch "
        f"{machine['torch']}, lightning {machine['lightning']}, "
        f"onnxruntime {machine['onnxruntime'] or 'not installed'}",
        f"device: {machine['device']} ({machine['device_name']}), {machine['threads']} threads, precision "
        f"{machine['precision']}; load average {machine['load_average']:.2f} at the start",
        f"practical peak, the generator's 3x3 64->64 convolution alone: {machine['conv_gflops_float32']:.0f} GFLOP/s "
        f"fp32, {machine['conv_gflops_bfloat16']:.0f} GFLOP/s bf16",
        f"data: {report['data_root']}" + (" (synthetic brain-like JPEGs)" if report["synthetic_data"] else ""),
    ]
    for section, formatter in (("training", _training), ("inference", _inference), ("data", _data)):
        if section in report:
            lines += ["", *formatter(report[section])]
    lines += ["", f"load average at the end: {report['load_average_at_end']:.2f}"]
    return "\n".join(lines)


def _training(training: dict) -> list[str]:
    generator = training["generator"]
    options = [name for name in ("channels_last", "compile", "on_device") if training[name]]
    rounds = training["per_round"]
    return [
        f"training: GAN stage, batch {training['batch_size']}, generator {generator['blocks']} blocks x "
        f"{generator['channels']} channels ({generator['attention']}), {training['adversarial']} GAN loss, VGG "
        f"{training['perceptual_layer']}, {training['precision']}, options: {', '.join(options) or 'none'}, "
        f"{training['num_workers']} loader workers",
        f"  {training['rounds']} rounds of {training['timed_batches']} timed batches per side after "
        f"{training['warmup_batches']} warm-up batches, medians:",
        f"  Lightning (Trainer.fit, SRModule.training_step)  {training['lightning_images_per_s']:10.2f} images/s   "
        f"rounds: {_numbers(rounds['lightning'])}",
        f"  plain PyTorch loop                              {training['plain_images_per_s']:10.2f} images/s   "
        f"rounds: {_numbers(rounds['plain'])}",
        f"  ratio Lightning / plain                         {training['ratio']:10.3f}",
        f"  {training['gflop_per_image']:.1f} GFLOP per training image: Lightning at "
        f"{training['lightning_tflop_per_s']:.3f} TFLOP/s",
        f"  whole fit calls (s): {_numbers(rounds['fit_seconds'])}; whole plain turns (s): "
        f"{_numbers(rounds['plain_loop_seconds'])}",
        f"  other processes' CPU during the timed batches (cores): Lightning "
        f"{_numbers(rounds['lightning_others_cpu'])}; plain {_numbers(rounds['plain_others_cpu'])}",
    ]


def _inference(inference: dict) -> list[str]:
    generator = inference["generator"]
    size = "x".join(str(n) for n in inference["lr_size"])
    lines = [
        f"inference: EMA generator {generator['blocks']} blocks x {generator['channels']} channels "
        f"({generator['attention']}), {inference['weights']} weights, {inference['images']} LR images of {size}, "
        f"{inference['gflop_per_image']:.2f} GFLOP per image, {inference['threads']} threads",
        f"  PSNR against HR, its change from fp32 eager (PSNR {inference['reference_psnr_db']:.2f} dB), and "
        "agreement (PSNR against fp32 eager's outputs) and max |diff| on the same inputs",
    ]
    lines += text_table(
        ["variant", "batch", "images/s", "GFLOP/s", "PSNR (dB)", "change (dB)", "agreement (dB)", "max |diff|",
         "others"],
        [[row["variant"], row["batch_size"], f"{row['images_per_s']:.2f}", f"{row['gflop_per_s']:.1f}",
          f"{row['psnr_db']:.2f}", f"{row['psnr_change_db']:+.4f}", f"{row['agreement_psnr_db']:.1f}",
          f"{row['max_abs_diff']:.2e}", _numbers([row["others_cpu"]])] for row in inference["results"]],
        indent="  ")
    lines.append("  others: cores' worth of CPU that other processes used while the variant was timed")
    lines += [f"  {variant}: not run, {reason}" for variant, reason in inference["skipped"].items()]
    return lines


def _data(data: dict) -> list[str]:
    loader = data["loader"]
    return [
        f"data: cold preprocessing of {data['files']} image files ({data['mean_file_kb']:.0f} KB on average, "
        f"{data['decode_threads']} decoding threads)",
        f"  cold (empty cache): {data['cold_seconds']:.2f} s = {data['cold_images_per_s']:.0f} images/s "
        f"(5,712 images at this rate: {data['cold_seconds_for_5712']:.1f} s)",
        f"  warm start (datamodule set up from the cache): {data['warm_start_seconds']:.2f} s; other processes' "
        f"CPU meanwhile: {_numbers([data['others_cpu']])} cores",
        f"  training batches of {loader['batch_size']} per second: DataLoader ({loader['num_workers']} workers) "
        f"{loader['dataloader_batches_per_s']:.0f}, with transfer, augmentation and degradation "
        f"{loader['dataloader_with_degradation_batches_per_s']:.0f}",
        f"  on-device batches: {loader['on_device_batches_per_s']:.0f}, with augmentation and degradation "
        f"{loader['on_device_with_degradation_batches_per_s']:.0f}; other processes' CPU meanwhile: "
        f"{_numbers([loader['others_cpu']])} cores",
    ]


def _numbers(values: list[float | None]) -> str:
    return ", ".join("n/a" if value is None else f"{value:.2f}" for value in values)
