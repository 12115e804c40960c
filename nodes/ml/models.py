"""The networks behind ml.autoencoder and ml.gan, their weights files, and shared runners.

Weights files are ``torch.save`` of plain data: a dict with ``tonegraph`` (the kind:
``autoencoder`` or ``gan``), ``version``, ``config`` (numbers and strings that rebuild
the network), ``state`` (its tensors) and ``extra`` (normalisation tensors and the
front end's settings).  They are read with ``torch.load(weights_only=True)``, which
never runs pickled code, and within bounds: a regular file of at most 64 MiB whose
parts unpack to no more (engine/files.py), describing a network of at most
:data:`MAX_PARAMETERS` numbers (counted on torch's ``meta`` device, where nothing is
allocated, before the network is built), so no file makes a node allocate more than a
model of that size; each refusal is one line naming the file.

Nodes that load the same file on the same device share one :class:`Runner`, so the
engine can run their requests in one forward pass (engine/batch.py).
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import threading
import weakref
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tonegraph.engine.files import DATA_LIMIT, read_bounded, size_text, written_whole

log = logging.getLogger("tonegraph.ml")

FORMAT_VERSION = 1
#: Numbers (weights and buffers) a network described by a weights file may have: as
#: many as the largest file holds in float16.
MAX_PARAMETERS = DATA_LIMIT // 2
#: Where the shipped weights live.
SHIPPED = Path(__file__).parent / "models"


class ModelError(Exception):
    """A weights file that cannot be used (one line, naming the file)."""


# -- networks -----------------------------------------------------------------------


class AutoEncoder(nn.Module):
    """A stacked (MLP) autoencoder: ``input -> hidden... -> code -> ...hidden -> input``."""

    def __init__(self, input: int, hidden: list[int], code: int) -> None:
        super().__init__()
        sizes = [input, *hidden]
        enc: list[nn.Module] = []
        for a, b in zip(sizes, sizes[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        enc.append(nn.Linear(sizes[-1], code))
        dec: list[nn.Module] = []
        back = [code, *reversed(hidden)]
        for a, b in zip(back, back[1:]):
            dec += [nn.Linear(a, b), nn.ReLU()]
        dec.append(nn.Linear(back[-1], input))
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(x)
        return code, self.decoder(code)


def _ups(size: int) -> int:
    n = (size // 4).bit_length() - 1
    if size < 8 or 4 << n != size:
        raise ValueError(f"image size {size} must be a power of two, at least 8")
    return n


class Generator(nn.Module):
    """A latent vector to a ``size`` x ``size`` RGB image in -1..1.

    ``arch`` ``dcgan``: transposed convolutions (the weights shipped before 0.3 use
    it); ``upsample``: nearest-neighbour upsampling then a 3x3 convolution at each
    scale, which draws clean edges where transposed convolutions leave a checkerboard;
    ``palette``: the same, but the last layer chooses, per pixel, a mixture of
    :attr:`COLOURS` colours that a small network picks from the latent for the whole
    image, as a painter picks a palette and then paints with it: each image keeps a few
    clean colours, and different latents get different palettes.

    A palette generator draws at a sampling ``temperature`` (the weights file's, 1 when
    it names none; ``forward`` may give one per image): the mixture weights are a
    softmax of the last layer divided by it, so below 1 each pixel takes one colour of
    its palette more firmly (flatter paint, harder edges) than the mixtures it trained
    on, the way a language model samples below temperature 1.  It is not used in
    training."""

    #: How many colours a ``palette`` generator paints with.
    COLOURS = 8

    def __init__(self, latent: int, size: int, ngf: int, arch: str = "dcgan",
                 temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = float(temperature)
        n = _ups(size)
        ch = ngf * 2 ** (n - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent, ch, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n - 1):
            layers += _up(ch, ch // 2, arch) + [nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        self.palette = None
        if arch in ("upsample", "palette"):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, 1, 1, bias=False),
                       nn.BatchNorm2d(ch), nn.ReLU(True)]
            if arch == "upsample":
                layers += [nn.Conv2d(ch, 3, 3, 1, 1), nn.Tanh()]
            else:
                layers += [nn.Conv2d(ch, self.COLOURS, 3, 1, 1)]
                self.palette = nn.Sequential(nn.Linear(latent, 4 * latent), nn.ReLU(True),
                                             nn.Linear(4 * latent, self.COLOURS * 3), nn.Tanh())
        else:
            layers += [nn.ConvTranspose2d(ch, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.latent = latent

    def forward(self, z: torch.Tensor, temperature: float | torch.Tensor | None = None) -> torch.Tensor:
        """Images for latents ``z``; ``temperature`` (a palette generator's; a number, or
        one per image) overrides the file's."""
        out = self.net(z[:, :, None, None])
        return out if self.palette is None else self.paint(out, z, temperature)

    def paint(self, out: torch.Tensor, z: torch.Tensor, temperature=None) -> torch.Tensor:
        """A palette generator's last step: each pixel a mixture of the colours its
        image's palette network picks from ``z``, by the softmax of ``out``."""
        t = self.temperature if temperature is None else temperature
        if isinstance(t, torch.Tensor):
            t = t.float().view(-1, 1, 1, 1)
        colours = self.palette(z).view(len(z), self.COLOURS, 3)
        # In float32: a low temperature would take float16 logits past its range.
        weights = (out.float() / t).softmax(dim=1).to(colours.dtype)
        return torch.einsum("nkhw,nkc->nchw", weights, colours)


def _up(cin: int, cout: int, arch: str) -> list[nn.Module]:
    if arch in ("upsample", "palette"):
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1, bias=False)]
    if arch != "dcgan":
        raise ValueError(f"unknown generator arch {arch!r}")
    return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)]


class MinibatchStd(nn.Module):
    """One more channel: how much the images of a group (of ``group``) differ from each
    other, averaged over features and places (ProGAN's minibatch standard deviation).
    A discriminator that sees it can tell a batch of look-alikes from real variety, so
    a generator that collapses to a few colours or shapes is caught."""

    def __init__(self, group: int = 4) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group, n)
        while n % g:
            g -= 1
        y = x.reshape(g, n // g, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))    # one per group
        y = y.reshape(n // g, 1, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    """An image to one logit (real or generated).  ``spectral``: spectral normalisation
    on every layer instead of batch normalisation (steadier training, SN-GAN);
    ``mbstd``: a :class:`MinibatchStd` channel before the last layer."""

    def __init__(self, size: int, ndf: int, spectral: bool = False, mbstd: bool = False) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        n = _ups(size)
        layers: list[nn.Module] = [sn(nn.Conv2d(3, ndf, 4, 2, 1, bias=False)), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for _ in range(n - 1):
            layers += [sn(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False))]
            if not spectral:
                layers.append(nn.BatchNorm2d(ch * 2))
            layers.append(nn.LeakyReLU(0.2, True))
            ch *= 2
        if mbstd:
            layers.append(MinibatchStd())
        layers.append(sn(nn.Conv2d(ch + int(mbstd), 1, 4, 1, 0, bias=False)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def build(kind: str, config: dict) -> nn.Module:
    if kind == "autoencoder":
        return AutoEncoder(int(config["input"]), [int(h) for h in config["hidden"]], int(config["code"]))
    return Generator(int(config["latent"]), int(config["size"]), int(config["ngf"]),
                     str(config.get("arch", "dcgan")), float(config.get("temperature", 1.0)))


# -- files --------------------------------------------------------------------------


def save(path: Path, kind: str, config: dict, module: nn.Module, extra: dict, half: bool = False) -> None:
    """Write a weights file (plain tensors and numbers only); ``half`` stores the floating
    tensors as float16 (half the size; they load back into float32 layers)."""
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_whole(path) as tmp:
        torch.save({"tonegraph": kind, "version": FORMAT_VERSION, "config": config,
                    "state": state, "extra": extra}, tmp)


def load(path: Path, kind: str) -> tuple[nn.Module, dict]:
    """Read a weights file of ``kind``; returns the network (eval mode, CPU) and the file's
    dict.  Raises ModelError with one line naming the file for anything unusable."""
    path = Path(path)
    try:
        raw = read_bounded(path, DATA_LIMIT, "model file")
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except OSError as exc:
        raise ModelError(f"{path}: {exc.strerror or exc}") from None
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            unpacked = sum(info.file_size for info in z.infolist())
    except zipfile.BadZipFile:
        raise ModelError(f"{path}: not a tonegraph model file (not the zip file torch.save writes)") from None
    if unpacked > DATA_LIMIT:
        raise ModelError(f"{path}: unpacks to {size_text(unpacked)}, more than the "
                         f"{size_text(DATA_LIMIT)} a model file may hold")
    try:
        data = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelError(f"{path}: not a tonegraph model file (it holds objects other than "
                         f"tensors and numbers, which are never loaded)") from None
    except Exception:
        raise ModelError(f"{path}: not a tonegraph model file (torch cannot read it)") from None
    if not isinstance(data, dict) or "tonegraph" not in data:
        raise ModelError(f"{path}: not a tonegraph model file (made by 'tonegraph train')")
    if data["tonegraph"] != kind:
        article = "an" if kind[0] in "aeiou" else "a"
        raise ModelError(f"{path}: is a {data['tonegraph']} model, this node needs {article} {kind} model")
    if data.get("version") != FORMAT_VERSION:
        raise ModelError(f"{path}: model format version {data.get('version')} is not "
                         f"{FORMAT_VERSION}; train it again with this tonegraph")
    try:
        with torch.device("meta"):      # sizes only: nothing is allocated
            size = sum(t.numel() for t in build(kind, data["config"]).state_dict().values())
        if size > MAX_PARAMETERS:
            raise ModelError(f"{path}: its config describes a network of {size} numbers, more than "
                             f"the {MAX_PARAMETERS} a model file may")
        module = build(kind, data["config"])
        module.load_state_dict(data["state"])
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{path}: weights do not fit the {kind} they describe ({exc})") from None
    module.eval()
    return module, data


# -- runners shared by nodes ----------------------------------------------------------


_warned_threads = False


def share_cores(sharing: frozenset | set = frozenset()) -> int:
    """Torch's CPU threads for a run in which ``sharing`` (see ``Context.sharing``) also
    keep cores busy: one core for each of them is left free, and at least one thread
    is kept.  OMP_NUM_THREADS may ask for fewer, never for more while something else
    needs the cores (two torch threads beside GL and the audio thread on two cores
    collapse a real-time run); it is then capped, with one warning.  ``make bench``
    compares graphs/learned.yaml in real time with and without this."""
    global _warned_threads

    cores = os.cpu_count() or 2
    threads = max(1, cores - len(sharing))
    asked = os.environ.get("OMP_NUM_THREADS", "").strip()
    if asked.isdigit() and int(asked) > 0:
        if int(asked) <= threads or not sharing:
            threads = int(asked)
        elif not _warned_threads:
            _warned_threads = True
            log.warning("OMP_NUM_THREADS=%s would leave %s no core of %d; torch uses %d thread%s",
                        asked, " and ".join(sorted(sharing)), cores, threads, "s" * (threads > 1))
    torch.set_num_threads(threads)
    return threads


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was asked for, but torch sees no CUDA GPU here")
    return torch.device(device)


class Runner:
    """A loaded model on a device; ``forward`` takes and returns numpy rows."""

    kind = ""

    def __init__(self, module: nn.Module, data: dict, device: torch.device, dtype: torch.dtype) -> None:
        self.device = device
        self.dtype = dtype
        self.module = module.to(device=device, dtype=self.dtype)
        self.config = data["config"]
        self.extra = data["extra"]
        self._beside: ThreadPoolExecutor | None = None
        self._held: list[tuple[np.ndarray, Future]] = []
        self._lock = threading.Lock()

    def beside(self, batch: np.ndarray) -> Future:
        """``forward(batch)`` on the model's own thread (one, started when first asked),
        so the caller's thread draws on meanwhile.  Held until :meth:`send`: the rows
        of every node asking in one frame run as one batch."""
        future: Future = Future()
        with self._lock:
            self._held.append((batch, future))
        return future

    def send(self) -> None:
        """The rows asked for beside since the last send, to the model's thread as one
        batch (engine/batch.py sends after each frame's requests)."""
        if not self._held:
            return                               # the common frame: nothing asked beside
        with self._lock:
            held, self._held = self._held, []
            if not held:
                return
            if self._beside is None:
                self._beside = ThreadPoolExecutor(1, thread_name_prefix="tonegraph-generator")
            pool = self._beside
        pool.submit(self._run_held, held)

    def _run_held(self, held: list[tuple[np.ndarray, Future]]) -> None:
        held = [(batch, future) for batch, future in held if future.set_running_or_notify_cancel()]
        if not held:
            return                               # every asker gave up
        try:
            out = self.forward(np.concatenate([batch for batch, _ in held]))
        except Exception as exc:                 # each asker's fault, when it collects
            for _, future in held:
                future.set_exception(exc)
            return
        i = 0
        for batch, future in held:
            future.set_result(out[i:i + len(batch)])
            i += len(batch)

    def _input(self, batch: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        return x.to(self.device, dtype=self.dtype, non_blocking=True)


class AutoEncoderRunner(Runner):
    """Rows of stacked log-mel frames in; rows of ``code`` values in 0..1 and, last, the
    reconstruction error relative to the training median out."""

    kind = "autoencoder"

    def __init__(self, module, data, device, dtype) -> None:
        super().__init__(module, data, device, dtype)
        ex = self.extra
        f = lambda name: ex[name].to(device=device, dtype=self.dtype)  # noqa: E731
        self.mean, self.std = f("mean"), f("std")
        self.lo, self.span = f("code_lo"), f("code_hi") - f("code_lo")
        self.error_scale = float(ex["error_median"])
        self.front = dict(ex["frontend"])
        self.context = int(self.config["context"])
        self.code = int(self.config["code"])

    def forward(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = (self._input(batch) - self.mean) / self.std
            code, recon = self.module(x)
            err = ((recon - x) ** 2).mean(dim=1, keepdim=True) / self.error_scale
            norm = ((code - self.lo) / self.span).clamp_(0.0, 1.0)
            return torch.cat([norm, err], dim=1).float().cpu().numpy()


class GeneratorRunner(Runner):
    """Rows of latents in; images out, float32 ``size`` x ``size`` x 3 in 0..1.  A row
    may carry one value more than the latent: a palette generator's temperature for
    that image (0 or less: the file's own; other generators ignore it)."""

    kind = "gan"

    def __init__(self, module, data, device, dtype) -> None:
        # (tanh(x) + 1) / 2 == sigmoid(2x): doubling the last layer's weights and ending in
        # a sigmoid gives 0..1 straight from the network, with no passes over the images.
        # A palette generator's pixels are mixtures (weights adding up to 1) of its
        # palette, so mapping the palette to 0..1 maps every pixel.
        net = module.net if module.palette is None else module.palette
        with torch.no_grad():
            net[-2].weight.mul_(2.0)
            if net[-2].bias is not None:
                net[-2].bias.mul_(2.0)
        net[-1] = nn.Sigmoid()
        from .fastgen import rebuild

        module = rebuild(module)        # the same pictures for less work (fastgen.py)
        super().__init__(module, data, device, dtype)
        self.latent = int(self.config["latent"])
        self.size = int(self.config["size"])

    def forward(self, batch: np.ndarray) -> np.ndarray:
        temperature = None
        if batch.shape[1] == self.latent + 1:
            batch, t = batch[:, :-1], batch[:, -1]
            temperature = torch.from_numpy(np.where(t > 0, t, self.module.temperature).astype(np.float32))
        with torch.inference_mode():
            z = self._input(batch)
            if temperature is not None:
                temperature = temperature.to(z.device)
            img = self.module(z, temperature).permute(0, 2, 3, 1)
            if self.dtype != torch.float32:
                img = img.float()
            return img.cpu().numpy()


_RUNNERS = {"autoencoder": AutoEncoderRunner, "gan": GeneratorRunner}
_shared: "weakref.WeakValueDictionary[tuple, Runner]" = weakref.WeakValueDictionary()
_lock = threading.Lock()


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions oneDNN uses (False where torch has no
    oneDNN or no way to ask: asked through a private op, which may go)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def shared(kind: str, path: Path, device: str = "auto", precision: str = "auto") -> Runner:
    """The runner for this weights file on this device, shared with every node using the
    same (the file's size and time are part of the key, so a retrained file loads anew)."""
    dev = pick_device(device)
    if precision == "float16" and dev.type != "cuda":
        raise ModelError("precision float16 needs a CUDA device (CPUs run float32, or bfloat16)")
    if precision == "bfloat16" and kind != "gan":
        raise ModelError("precision bfloat16 is for generators (ml.gan): an autoencoder's error is a "
                         "small difference of large numbers")
    if precision == "bfloat16" and dev.type == "cpu" and not cpu_has_bf16():
        raise ModelError("precision bfloat16 needs a CPU with bfloat16 instructions (AVX-512 BF16 or "
                         "AMX); this one runs float32")
    # float16 is safe for the generator's images; the autoencoder's error is a small
    # difference of large numbers, so it stays in float32.  bfloat16 only when asked: on
    # a CPU with its instructions a generator draws 1.2-2.1x faster than in float32, a
    # few pixels on a colour's edge taking its neighbour's colour (0.3 % of pixels; python -m tests.benchmarks gan).
    half = precision == "float16" or (precision == "auto" and dev.type == "cuda" and kind == "gan")
    dtype = torch.float16 if half else torch.bfloat16 if precision == "bfloat16" else torch.float32
    path = Path(path).resolve()
    try:
        st = path.stat()
    except OSError:
        raise ModelError(f"{path}: no such model file") from None
    key = (kind, str(path), st.st_mtime_ns, st.st_size, str(dev), dtype)
    with _lock:
        runner = _shared.get(key)
        if runner is None:
            module, data = load(path, kind)
            runner = _shared[key] = _RUNNERS[kind](module, data, dev, dtype)
    return runner
