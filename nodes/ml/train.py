"""``tonegraph train autoencoder|gan``: train the models ml.autoencoder and ml.gan run.

Both trainers are deterministic for a given ``--seed`` (data order and noise come from
it; the same machine gives the same bytes), show a progress bar, save a loss plot as
PNG, and keep a checkpoint (model, optimiser, random state, loss history) after every
epoch or every ``--checkpoint-every`` steps.  ``--resume`` continues from it up to the
``--epochs``/``--steps`` given, so an interrupted run, or one that wants more training,
picks up where it stopped; the result equals one uninterrupted run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import models
from .frontend import DEFAULT as FRONT_DEFAULT
from .frontend import audio_files, file_frames, windows

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class TrainError(Exception):
    """A problem with the training input (one line)."""


@dataclass
class Report:
    output: Path
    plot: Path | None
    seconds: float
    final_loss: float
    items: int


# -- shared pieces ----------------------------------------------------------------------


def _seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _progress(total: int, label: str, quiet: bool):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn(f"[bold]{label}[/] {{task.description}}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                    TimeRemainingColumn(), disable=quiet, transient=False)


def _plot(path: Path, series: dict[str, list[float]], xlabel: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    for name, ys in series.items():
        ax.plot(np.arange(1, len(ys) + 1), ys, label=name, linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.set_yscale("log" if all(y > 0 for ys in series.values() for y in ys) else "linear")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _save_checkpoint(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(data, tmp)
    tmp.replace(path)


def _load_checkpoint(path: Path, kind: str) -> dict:
    if not path.is_file():
        raise TrainError(f"--resume: no checkpoint at {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainError(f"--resume: {path} is not a checkpoint ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(data, dict) or data.get("checkpoint") != kind:
        raise TrainError(f"--resume: {path} is not a {kind} checkpoint")
    return data


# -- autoencoder ----------------------------------------------------------------------


def autoencoder_data(folder: Path, front: dict, context: int) -> np.ndarray:
    files = audio_files(folder)
    if not files:
        raise TrainError(f"no sound files (.wav .flac .ogg .aiff .mp3) under {folder}")
    rows = []
    for f in files:
        try:
            frames = file_frames(f, front)
        except Exception as exc:   # soundfile raises several types for unreadable files
            raise TrainError(f"{f}: cannot read it as sound ({exc})") from None
        rows.append(windows(frames, context))
    data = np.concatenate(rows)
    if len(data) < 16:
        raise TrainError(f"only {len(data)} frames of sound under {folder}; give it at least a few seconds")
    return data


def train_autoencoder(audio: Path, output: Path, *, code: int = 10, hidden: tuple[int, ...] = (512, 128),
                      context: int = 4, epochs: int = 40, batch: int = 256, lr: float = 1e-3,
                      seed: int = 0, plot: Path | None = None, checkpoint: Path | None = None,
                      resume: bool = False, quiet: bool = False, front: dict | None = None) -> Report:
    t0 = time.perf_counter()
    front = dict(front or FRONT_DEFAULT)
    checkpoint = checkpoint or output.with_name(output.name + ".ckpt")
    data = autoencoder_data(audio, front, context)
    mean = data.mean(axis=0)
    std = np.maximum(data.std(axis=0), 1e-3)
    x_all = torch.from_numpy((data - mean) / std)
    _seed_everything(seed)
    config = {"input": int(data.shape[1]), "hidden": [int(h) for h in hidden], "code": int(code),
              "context": int(context)}
    net = models.AutoEncoder(config["input"], config["hidden"], config["code"])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses: list[float] = []
    start = 0
    if resume:
        ck = _load_checkpoint(checkpoint, "autoencoder")
        if ck["config"] != config:
            raise TrainError(f"--resume: {checkpoint} was made with other settings {ck['config']}")
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        torch.set_rng_state(ck["rng"])
        losses, start = list(ck["losses"]), int(ck["epoch"])
    n = len(x_all)
    with _progress(max(epochs - start, 0), "autoencoder", quiet) as bar:
        task = bar.add_task("", total=max(epochs - start, 0))
        for epoch in range(start, epochs):
            order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(n))
            net.train()
            total = 0.0
            for i in range(0, n, batch):
                xb = x_all[order[i:i + batch]]
                _, recon = net(xb)
                loss = nn.functional.mse_loss(recon, xb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(xb)
            losses.append(total / n)
            bar.update(task, advance=1, description=f"epoch {epoch + 1}/{epochs} loss {losses[-1]:.4f}")
            _save_checkpoint(checkpoint, {"checkpoint": "autoencoder", "config": config,
                                          "model": net.state_dict(), "optim": opt.state_dict(),
                                          "rng": torch.get_rng_state(), "losses": losses,
                                          "epoch": epoch + 1})
    net.eval()
    with torch.inference_mode():
        codes, recon = net(x_all)
        errors = ((recon - x_all) ** 2).mean(dim=1)
    lo = torch.quantile(codes, 0.01, dim=0)
    hi = torch.quantile(codes, 0.99, dim=0)
    hi = torch.maximum(hi, lo + 1e-6)
    extra = {"frontend": front, "mean": torch.from_numpy(mean), "std": torch.from_numpy(std),
             "code_lo": lo, "code_hi": hi, "error_median": float(errors.median()),
             "trained_on": {"frames": int(n), "epochs": int(epochs), "seed": int(seed)}}
    models.save(output, "autoencoder", config, net, extra)
    if plot is not None:
        _plot(plot, {"reconstruction (MSE)": losses}, "epoch", f"autoencoder, {n} frames")
    return Report(output, plot, time.perf_counter() - t0, losses[-1] if losses else math.nan, n)


# -- GAN ----------------------------------------------------------------------------


def image_data(folder: Path, size: int) -> np.ndarray:
    """Every image under the folder, centre-cropped square and resized: uint8 N x 3 x S x S."""
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise TrainError(f"no images ({' '.join(IMAGE_SUFFIXES)}) under {folder}")
    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert("RGB")
                w, h = im.size
                s = min(w, h)
                im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
                im = im.resize((size, size), Image.LANCZOS)
                out[i] = np.asarray(im).transpose(2, 0, 1)
        except (UnidentifiedImageError, OSError) as exc:
            raise TrainError(f"{f}: cannot read it as an image ({exc})") from None
    return out


def _init_dcgan(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _grid(images: torch.Tensor, path: Path, cols: int = 8) -> None:
    from PIL import Image

    imgs = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    n, h, w, _ = imgs.shape
    rows = math.ceil(n / cols)
    sheet = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for i, im in enumerate(imgs):
        r, c = divmod(i, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = im
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path)


def train_gan(images: Path, output: Path, *, size: int = 64, latent: int = 64, ngf: int = 32,
              ndf: int = 16, steps: int = 1500, batch: int = 32, lr: float = 2e-4, seed: int = 0,
              checkpoint_every: int = 100, plot: Path | None = None, samples: Path | None = None,
              checkpoint: Path | None = None, resume: bool = False, quiet: bool = False) -> Report:
    t0 = time.perf_counter()
    checkpoint = checkpoint or output.with_name(output.name + ".ckpt")
    try:
        models._ups(size)
    except ValueError as exc:
        raise TrainError(f"--size: {exc}") from None
    data = torch.from_numpy(image_data(images, size))
    gen = _seed_everything(seed)
    config = {"latent": int(latent), "size": int(size), "ngf": int(ngf)}
    g = models.Generator(latent, size, ngf)
    d = models.Discriminator(size, ndf)
    _init_dcgan(g)
    _init_dcgan(d)
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.999))
    fixed = torch.randn(64, latent, generator=gen)
    hist: dict[str, list[float]] = {"discriminator": [], "generator": []}
    start = 0
    if resume:
        ck = _load_checkpoint(checkpoint, "gan")
        if ck["config"] != config or ck["ndf"] != ndf:
            raise TrainError(f"--resume: {checkpoint} was made with other settings {ck['config']}")
        g.load_state_dict(ck["g"])
        d.load_state_dict(ck["d"])
        opt_g.load_state_dict(ck["opt_g"])
        opt_d.load_state_dict(ck["opt_d"])
        gen.set_state(ck["rng"])
        hist, start = {k: list(v) for k, v in ck["losses"].items()}, int(ck["step"])
    bce = nn.functional.binary_cross_entropy_with_logits
    n = len(data)
    real_label = torch.full((batch,), 0.9)     # one-sided label smoothing
    fake_label = torch.zeros(batch)

    def save_checkpoint(step: int) -> None:
        _save_checkpoint(checkpoint, {"checkpoint": "gan", "config": config, "ndf": ndf,
                                      "g": g.state_dict(), "d": d.state_dict(),
                                      "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                                      "rng": gen.get_state(), "losses": hist, "step": step})

    with _progress(max(steps - start, 0), "gan", quiet) as bar:
        task = bar.add_task("", total=max(steps - start, 0))
        g.train()
        d.train()
        for step in range(start, steps):
            idx = torch.randint(0, n, (batch,), generator=gen)
            real = data[idx].float().div_(127.5).sub_(1.0)
            z = torch.randn(batch, latent, generator=gen)
            fake = g(z)
            loss_d = bce(d(real), real_label) + bce(d(fake.detach()), fake_label)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = bce(d(fake), torch.ones(batch))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            hist["discriminator"].append(loss_d.item())
            hist["generator"].append(loss_g.item())
            bar.update(task, advance=1, description=f"step {step + 1}/{steps} "
                                                    f"D {hist['discriminator'][-1]:.3f} G {hist['generator'][-1]:.3f}")
            if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
                save_checkpoint(step + 1)
    g.eval()
    extra = {"trained_on": {"images": int(n), "steps": int(steps), "seed": int(seed), "ndf": int(ndf)}}
    models.save(output, "gan", config, g, extra)
    if plot is not None:
        smooth = {k: _running_mean(v, 25) for k, v in hist.items()}
        _plot(plot, smooth, "step", f"DCGAN {size}x{size}, {n} images")
    if samples is not None:
        with torch.inference_mode():
            _grid(g(fixed), samples)
    final = hist["generator"][-1] if hist["generator"] else math.nan
    return Report(output, plot, time.perf_counter() - t0, final, n)


def _running_mean(values: list[float], width: int) -> list[float]:
    if not values:
        return []
    c = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    out = [(c[i + 1] - c[max(0, i + 1 - width)]) / (i + 1 - max(0, i + 1 - width)) for i in range(len(values))]
    return out


# -- procedural training images ------------------------------------------------------


def draw_squiggles(folder: Path, count: int = 2000, size: int = 64, seed: int = 0) -> int:
    """Draw ``count`` images of coloured squiggles (smooth random strokes on a dark
    ground), the kind of hand-drawn material seed 001 trained its GAN on."""
    from PIL import Image, ImageDraw, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    big = size * 4                      # drawn large, then shrunk, for smooth edges
    for i in range(count):
        ground = tuple(int(v) for v in rng.integers(0, 40, 3))
        im = Image.new("RGB", (big, big), ground)
        draw = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(1, 4))):
            hue = rng.random()
            colour = _hsv(hue, 0.55 + 0.45 * rng.random(), 0.7 + 0.3 * rng.random())
            width = int(big * (0.03 + 0.06 * rng.random()))
            pts = _stroke(rng, big)
            draw.line(pts, fill=colour, width=width, joint="curve")
            r = width // 2
            for x, y in (pts[0], pts[-1]):
                draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        im = im.filter(ImageFilter.GaussianBlur(1.5)).resize((size, size), Image.LANCZOS)
        im.save(folder / f"squiggle-{i:05d}.png")
    return count


def _stroke(rng: np.random.Generator, big: int) -> list[tuple[float, float]]:
    """A smooth random curve: a few control points through a Catmull-Rom spline."""
    k = int(rng.integers(4, 8))
    ctrl = rng.uniform(0.12 * big, 0.88 * big, (k, 2))
    pts = []
    padded = np.vstack([ctrl[:1], ctrl, ctrl[-1:]])
    for j in range(1, k):
        p0, p1, p2, p3 = padded[j - 1], padded[j], padded[j + 1], padded[j + 2]
        for t in np.linspace(0, 1, 16, endpoint=False):
            t2, t3 = t * t, t * t * t
            pts.append(tuple(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                                    + (-p0 + 3 * p1 - 3 * p2 + p3) * t3)))
    pts.append(tuple(ctrl[-1]))
    return pts


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(r * 255), int(g * 255), int(b * 255)
