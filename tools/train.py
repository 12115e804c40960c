"""``tonegraph train autoencoder|gan``: train the models ml.autoencoder and ml.gan run.

Both trainers are deterministic for a given ``--seed`` (data order and noise come from
it; the same machine gives the same bytes), show a progress bar, save a loss plot as
PNG, and keep a checkpoint (model, optimiser, random state, loss history) after every
epoch or every ``--checkpoint-every`` steps.  ``--resume`` continues from it up to the
``--epochs``/``--steps`` given, so an interrupted run, or one that wants more training,
picks up where it stopped; the result equals one uninterrupted run.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tonegraph.engine.files import written_whole

from tonegraph.nodes.ml import models
from tonegraph.nodes.ml.frontend import DEFAULT as FRONT_DEFAULT
from tonegraph.nodes.ml.frontend import AUDIO_SUFFIXES, audio_files, file_frames, windows

from .progress import progress as _progress

#: The discriminator a GAN checkpoint holds (one of another make cannot be resumed).
CRITIC = "spectral+mbstd"
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
    #: GANs: how like the training images 256 samples are (see :func:`compare`).
    likeness: dict[str, float] | None = None
    #: GANs trained with ``keep="best"``: the step whose weights were saved.
    kept_step: int | None = None
    #: Onset detectors: clicks of a click track at 10 a second heard, of how many.
    clicks: tuple[int, int] | None = None
    #: Onset detectors of several networks: the clicks each network alone hears.
    network_clicks: list[int] | None = None


# -- shared pieces ----------------------------------------------------------------------


def _seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


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
    with written_whole(path) as tmp:
        torch.save(data, tmp)


def _resumed(path: Path, kind: str) -> dict | None:
    """``--resume``'s checkpoint, or None (said in one line) when there is none yet: a run
    stopped before its first checkpoint starts again from the beginning."""
    if not path.exists():
        print(f"--resume: no checkpoint at {path} yet: starting from the beginning", file=sys.stderr)
        return None
    return _load_checkpoint(path, kind)


@contextlib.contextmanager
def _saved_on_interrupt(save, done):
    """Ctrl-C during training writes a checkpoint of the ``done()`` steps (or epochs)
    finished, if any, before it stops the run, so ``--resume`` goes on from there."""
    try:
        yield
    except KeyboardInterrupt:
        finished = done()
        if finished:
            save(finished)
        raise


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
        raise TrainError(f"no sound files ({' '.join(AUDIO_SUFFIXES)}) under {folder}")
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
    ck = _resumed(checkpoint, "autoencoder") if resume else None
    if ck is not None:
        if ck["config"] != config:
            raise TrainError(f"--resume: {checkpoint} was made with other settings {ck['config']}")
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        torch.set_rng_state(ck["rng"])
        losses, start = list(ck["losses"]), int(ck["epoch"])
    n = len(x_all)

    def save(epoch: int) -> None:
        _save_checkpoint(checkpoint, {"checkpoint": "autoencoder", "config": config,
                                      "model": net.state_dict(), "optim": opt.state_dict(),
                                      "rng": torch.get_rng_state(), "losses": losses, "epoch": epoch})
    with _progress(max(epochs - start, 0), "autoencoder", quiet) as bar, \
            _saved_on_interrupt(save, lambda: len(losses)):
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
            save(epoch + 1)
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

    imgs = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    n, h, w, _ = imgs.shape
    rows = math.ceil(n / cols)
    sheet = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for i, im in enumerate(imgs):
        r, c = divmod(i, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = im
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path)


def train_gan(images: Path, output: Path, *, size: int = 128, latent: int = 64, ngf: int = 32,
              ndf: int = 32, steps: int = 4000, batch: int = 32, lr: float = 2e-4, seed: int = 0,
              checkpoint_every: int = 100, plot: Path | None = None, samples: Path | None = None,
              checkpoint: Path | None = None, resume: bool = False, quiet: bool = False,
              arch: str = "upsample", ema: float = 0.999, device: str = "cpu",
              keep: str = "last", temperature: float = 1.0) -> Report:
    """Train ml.gan's generator.  The generator upsamples and convolves (``arch``
    ``upsample``; ``palette`` paints each image with a few colours of its own;
    ``dcgan`` for transposed convolutions), the discriminator has spectral
    normalisation and sees how alike the images of a batch are (minibatch standard
    deviation, so a generator that draws one look for every latent is caught), every
    batch is flipped and turned at random (strokes have no up or left), and the weights
    saved are an exponential moving average of the generator's over the steps (``ema``;
    0 saves the last step's), which draws cleaner than any single step.  ``device``
    ``cuda`` (or ``auto`` on a machine with a GPU) trains there; random numbers are
    drawn on the CPU either way.

    ``keep`` ``best``: at every checkpoint the weights that would be saved are measured
    against the training images (:func:`compare`, 64 fixed latents against 256 fixed
    images, scored by the worst of its measures), and the best so far is what the
    model file gets, not the last step's (a GAN's likeness swings from checkpoint to
    checkpoint).  The measurement draws its own random numbers: the training is the
    same either way.

    ``temperature`` (``palette`` only): the sampling temperature the model file carries
    (see :class:`models.Generator`); the training does not use it, the samples, the
    likeness and ``keep`` ``best`` are drawn at it."""
    t0 = time.perf_counter()
    if keep not in ("last", "best"):
        raise TrainError(f"--keep: {keep!r} is not last or best")
    if temperature != 1.0 and arch != "palette":
        raise TrainError(f"--temperature: only a palette generator (--arch palette) has one, not {arch}")
    if not 0 < temperature <= 100:
        raise TrainError(f"--temperature: {temperature} is outside 0 (not included) to 100")
    checkpoint = checkpoint or output.with_name(output.name + ".ckpt")
    try:
        models._ups(size)
    except ValueError as exc:
        raise TrainError(f"--size: {exc}") from None
    try:
        dev = models.pick_device(device)
    except models.ModelError as exc:
        raise TrainError(f"--device: {exc}") from None
    data = torch.from_numpy(image_data(images, size))
    gen = _seed_everything(seed)
    config = {"latent": int(latent), "size": int(size), "ngf": int(ngf), "arch": arch}
    if temperature != 1.0:
        config["temperature"] = float(temperature)
    g = models.Generator(latent, size, ngf, arch)
    d = models.Discriminator(size, ndf, spectral=True, mbstd=True)
    _init_dcgan(g)
    _init_dcgan(d)
    g, d = g.to(dev), d.to(dev)
    g_ema = copy.deepcopy(g).eval()
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.999))
    fixed = torch.randn(64, latent, generator=gen)
    hist: dict[str, list[float]] = {"discriminator": [], "generator": []}
    start = 0
    final = g_ema if ema > 0 else g
    to_u8 = lambda t: ((t.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()  # noqa: E731
    probe_gen = torch.Generator().manual_seed(int(seed) + 1)
    probe = torch.randn(64, latent, generator=probe_gen)
    probe_real = data[torch.randperm(len(data), generator=probe_gen)[:256]].permute(0, 2, 3, 1).numpy()
    best: dict = {"score": -1.0, "step": 0, "state": None}

    def likeness(z: torch.Tensor, real: np.ndarray) -> dict[str, float]:
        with torch.inference_mode():
            made = torch.cat([final(part.to(dev), temperature) for part in z.split(64)])
        return compare(to_u8(made), real)

    def measure(step: int) -> None:
        training = final.training
        final.eval()
        score = min(likeness(probe, probe_real).values())
        final.train(training)
        if score > best["score"]:
            best.update(score=score, step=step, state=copy.deepcopy(final.state_dict()))

    ck = _resumed(checkpoint, "gan") if resume else None
    if ck is not None:
        if ck["config"] != config or ck["ndf"] != ndf or ck.get("critic") != CRITIC:
            raise TrainError(f"--resume: {checkpoint} was made with other settings {ck['config']}")
        g.load_state_dict(ck["g"])
        g_ema.load_state_dict(ck["g_ema"])
        d.load_state_dict(ck["d"])
        opt_g.load_state_dict(ck["opt_g"])
        opt_d.load_state_dict(ck["opt_d"])
        gen.set_state(ck["rng"])
        hist, start = {k: list(v) for k, v in ck["losses"].items()}, int(ck["step"])
        if "best" in ck:
            best.update(ck["best"])
    softplus = nn.functional.softplus
    n = len(data)

    def save_checkpoint(step: int) -> None:
        _save_checkpoint(checkpoint, {"checkpoint": "gan", "config": config, "ndf": ndf, "critic": CRITIC,
                                      "g": g.state_dict(), "g_ema": g_ema.state_dict(),
                                      "d": d.state_dict(), "opt_g": opt_g.state_dict(),
                                      "opt_d": opt_d.state_dict(), "rng": gen.get_state(),
                                      "losses": hist, "step": step}
                         | ({"best": best} if keep == "best" else {}))

    with _progress(max(steps - start, 0), "gan", quiet) as bar, \
            _saved_on_interrupt(save_checkpoint, lambda: len(hist["generator"])):
        task = bar.add_task("", total=max(steps - start, 0))
        g.train()
        d.train()
        for step in range(start, steps):
            idx = torch.randint(0, n, (batch,), generator=gen)
            real = _augment(data[idx].float().div_(127.5).sub_(1.0), gen).to(dev)
            z = torch.randn(batch, latent, generator=gen).to(dev)
            fake = g(z)
            # The non-saturating loss (logistic), on a spectrally normalised critic.
            loss_d = softplus(-d(real)).mean() + softplus(d(fake.detach())).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = softplus(-d(fake)).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            _ema_update(g_ema, g, ema)
            hist["discriminator"].append(loss_d.item())
            hist["generator"].append(loss_g.item())
            bar.update(task, advance=1, description=f"step {step + 1}/{steps} "
                                                    f"D {hist['discriminator'][-1]:.3f} G {hist['generator'][-1]:.3f}")
            if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
                if keep == "best":
                    measure(step + 1)
                save_checkpoint(step + 1)
    g.eval()                          # the moving average (g_ema) is never trained
    extra = {"trained_on": {"images": int(n), "steps": int(steps), "seed": int(seed), "ndf": int(ndf),
                            "ema": float(ema)}}
    kept = int(best["step"]) if keep == "best" and best["state"] is not None else None
    if kept is not None:
        final.load_state_dict(best["state"])
        extra["trained_on"]["kept_step"] = kept
    models.save(output, "gan", config, final, extra, half=True)
    if plot is not None:
        smooth = {k: _running_mean(v, 25) for k, v in hist.items()}
        _plot(plot, smooth, "step", f"GAN {size}x{size} ({arch}), {n} images")
    if samples is not None:
        with torch.inference_mode():
            _grid(final(fixed.to(dev), temperature), samples)
    z = torch.cat([torch.randn(64, latent, generator=gen) for _ in range(4)])
    pick = torch.randperm(n, generator=gen)[:256]
    alike = likeness(z, data[pick].permute(0, 2, 3, 1).numpy())
    last = hist["generator"][-1] if hist["generator"] else math.nan
    return Report(output, plot, time.perf_counter() - t0, last, n, alike, kept)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image flipped and turned by a multiple of 90 degrees at random."""
    k = int(torch.randint(0, 4, (1,), generator=gen))
    x = torch.rot90(x, k, dims=(2, 3))
    flip = torch.rand(len(x), generator=gen) < 0.5
    x[flip] = torch.flip(x[flip], dims=(3,))
    return x


def _ema_update(average: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        if decay <= 0:
            average.load_state_dict(model.state_dict())
            return
        for a, p in zip(average.parameters(), model.parameters()):
            a.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
        for a, b in zip(average.buffers(), model.buffers()):
            a.copy_(b)


def _running_mean(values: list[float], width: int) -> list[float]:
    if not values:
        return []
    c = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    out = [(c[i + 1] - c[max(0, i + 1 - width)]) / (i + 1 - max(0, i + 1 - width)) for i in range(len(values))]
    return out


# -- procedural training images ------------------------------------------------------


def draw_squiggles(folder: Path, count: int = 2000, size: int = 128, seed: int = 0,
                   quiet: bool = True) -> int:
    """Draw ``count`` images of hand-drawn-looking marks on a dark ground, the kind of
    material seed 001 trained its GAN on: strokes of varied width (tapering as a brush
    does), density and colour (a palette of neighbouring hues and an accent per image),
    now and then a spiral, a ring or a spray of dots.  A progress bar unless ``quiet``."""
    with _progress(count, "draw", quiet) as bar:
        task = bar.add_task("", total=count)
        for i in _drawn(folder, count, size, seed):
            bar.update(task, completed=i + 1)
    return count


def _drawn(folder: Path, count: int, size: int, seed: int):
    """Draw and write the squiggles one by one, yielding each one's number."""
    from PIL import Image, ImageDraw, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    big = size * 4                      # drawn large, then shrunk, for smooth edges
    for i in range(count):
        a, b = rng.integers(0, 36, 3), rng.integers(0, 36, 3)
        ramp = np.linspace(0.0, 1.0, big)[:, None, None]
        ground = (a * (1 - ramp) + b * ramp).astype(np.uint8) * np.ones((1, big, 1), np.uint8)
        im = Image.fromarray(ground, "RGB")
        draw = ImageDraw.Draw(im)
        base = rng.random()
        palette = [_hsv((base + rng.normal(0, 0.06)) % 1.0, 0.55 + 0.45 * rng.random(),
                        0.7 + 0.3 * rng.random()) for _ in range(3)]
        palette.append(_hsv((base + 0.5) % 1.0, 0.9, 1.0))          # the accent
        for _ in range(int(rng.integers(1, 7))):
            colour = palette[int(rng.integers(0, len(palette)))]
            width = big * (0.008 + 0.09 * rng.random() ** 2)
            pts = _stroke(rng, big)
            _brush(draw, pts, colour, width, taper=rng.random() < 0.6)
        extra = rng.random()
        if extra < 0.2:                                             # a spiral
            c, turns = rng.uniform(0.3 * big, 0.7 * big, 2), rng.uniform(1.5, 4.0)
            t = np.linspace(0, 1, 200)
            r = 0.05 * big + 0.3 * big * t
            pts = [tuple(c + r_ * np.array([np.cos(6.28318 * turns * t_), np.sin(6.28318 * turns * t_)]))
                   for r_, t_ in zip(r, t)]
            _brush(draw, pts, palette[0], big * 0.015, taper=True)
        elif extra < 0.35:                                          # a ring
            c, r = rng.uniform(0.25 * big, 0.75 * big, 2), rng.uniform(0.08, 0.25) * big
            draw.ellipse((c[0] - r, c[1] - r, c[0] + r, c[1] + r), outline=palette[1],
                         width=int(big * 0.02))
        elif extra < 0.5:                                           # a spray of dots
            c = rng.uniform(0.2 * big, 0.8 * big, 2)
            for p in c + rng.normal(0, 0.1 * big, (int(rng.integers(8, 30)), 2)):
                r = big * 0.006 * (1 + 2 * rng.random())
                draw.ellipse((p[0] - r, p[1] - r, p[0] + r, p[1] + r), fill=palette[2])
        im = im.filter(ImageFilter.GaussianBlur(1.0)).resize((size, size), Image.LANCZOS)
        # Written whole or not at all (a stopped run leaves no half image to train on).
        with written_whole(folder / f"squiggle-{i:05d}.png") as part:
            im.save(part, format="PNG")
        yield i


def _brush(draw, pts: list, colour, width: float, taper: bool) -> None:
    """A stroke through ``pts``: round-capped, thinning toward its ends when ``taper``."""
    n = len(pts)
    for j in range(n - 1):
        f = math.sin(math.pi * (j + 0.5) / (n - 1)) ** 0.6 if taper else 1.0
        w = max(1, int(width * (0.25 + 0.75 * f)))
        draw.line([pts[j], pts[j + 1]], fill=colour, width=w)
        x, y = pts[j + 1]
        r = w / 2
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)


def compare(samples: np.ndarray, training: np.ndarray) -> dict[str, float]:
    """How close generated images are to the training images (both uint8 N x H x W x 3):
    per measure, the ratio of the smaller mean to the larger (1.0: the same).
    ``sharpness``: mean gradient energy of the luminance (blur and mush lower it, noise
    raises it); ``brightness``, ``saturation`` and ``colourfulness``: mean luminance,
    mean HSV saturation and the spread of hues (the circular variance of the hue of
    saturated pixels)."""
    def stats(x: np.ndarray) -> dict[str, float]:
        f = x.astype(np.float32) / 255.0
        y = f @ np.array([0.299, 0.587, 0.114], np.float32)
        gx, gy = np.diff(y, axis=2), np.diff(y, axis=1)
        mx, mn = f.max(axis=3), f.min(axis=3)
        sat = np.where(mx > 1e-3, (mx - mn) / np.maximum(mx, 1e-3), 0.0)
        r, g, b = f[..., 0], f[..., 1], f[..., 2]
        hue = np.arctan2(np.sqrt(3.0) * (g - b), 2 * r - g - b)
        w = (sat > 0.3).astype(np.float32)
        spread = 1.0 - np.hypot((np.cos(hue) * w).sum(), (np.sin(hue) * w).sum()) / max(w.sum(), 1.0)
        return {"sharpness": float((gx ** 2).mean() + (gy ** 2).mean()), "brightness": float(y.mean()),
                "saturation": float(sat.mean()), "colourfulness": float(spread)}

    a, b = stats(samples), stats(training)
    return {k: min(a[k], b[k]) / max(a[k], b[k]) if max(a[k], b[k]) > 0 else 1.0 for k in a}


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
