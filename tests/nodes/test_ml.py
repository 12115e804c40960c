"""ml.autoencoder and ml.gan: shipped models, batching, training, and bad model files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from tonegraph.engine.node import Tick
from tonegraph.engine.ports import PortType
from tonegraph.nodes.audio.synth import render_groove
from tonegraph.nodes.ml import models
from tonegraph.tools import train
from tonegraph.nodes.ml.base import MODELS_DIR
from tonegraph.nodes.ml.frontend import DEFAULT as FRONT

from ..conftest import ROOT, load_ok, make_runner, run_offline, tonegraph, wait_for


@pytest.fixture(scope="module")
def grooves(tmp_path_factory):
    """Two short synthesized grooves at the front end's rate: tiny training data."""
    folder = tmp_path_factory.mktemp("music")
    for seed, bpm in ((1, 120), (2, 140)):
        samples, _, _ = render_groove(FRONT["samplerate"], bpm, 2, seed)
        sf.write(folder / f"g{seed}.wav", samples, FRONT["samplerate"])
    return folder


@pytest.fixture(scope="module")
def squiggles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("squiggles")
    train.draw_squiggles(folder, count=24, size=16, seed=0)
    return folder


#: The shipped GAN's image size (docs/models.md documents it).
SHIPPED_SIZE = 128


def tiny_ae(grooves, out, **kw):
    args = {"code": 4, "hidden": (32,), "context": 2, "epochs": 3, "batch": 64, "quiet": True} | kw
    return train.train_autoencoder(grooves, out, **args)


def tiny_gan(squiggles, out, **kw):
    args = {"size": 16, "latent": 8, "ngf": 8, "ndf": 8, "steps": 6, "batch": 8, "quiet": True,
            "checkpoint_every": 3} | kw
    return train.train_gan(squiggles, out, **args)


def states(path):
    return models.load(path, torch.load(path, weights_only=True)["tonegraph"])[0].state_dict()


def same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- training ----------------------------------------------------------------------------


def test_autoencoder_training_is_deterministic_resumable_and_plots(grooves, tmp_path):
    rep = tiny_ae(grooves, tmp_path / "a.pt", plot=tmp_path / "a.png", epochs=4)
    assert rep.items > 100 and (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    tiny_ae(grooves, tmp_path / "b.pt", epochs=4)
    tiny_ae(grooves, tmp_path / "c.pt", epochs=4, seed=1)
    assert same(states(tmp_path / "a.pt"), states(tmp_path / "b.pt"))
    assert not same(states(tmp_path / "a.pt"), states(tmp_path / "c.pt"))
    # Stopped after 2 epochs, resumed to 4: the same model as 4 in one go.
    tiny_ae(grooves, tmp_path / "r.pt", epochs=2)
    tiny_ae(grooves, tmp_path / "r.pt", epochs=4, resume=True)
    assert same(states(tmp_path / "a.pt"), states(tmp_path / "r.pt"))


def test_gan_training_is_deterministic_resumable_and_draws_samples(squiggles, tmp_path):
    tiny_gan(squiggles, tmp_path / "a.pt", samples=tmp_path / "s.png", plot=tmp_path / "l.png")
    tiny_gan(squiggles, tmp_path / "b.pt")
    assert same(states(tmp_path / "a.pt"), states(tmp_path / "b.pt"))
    tiny_gan(squiggles, tmp_path / "r.pt", steps=3)
    tiny_gan(squiggles, tmp_path / "r.pt", steps=6, resume=True)
    assert same(states(tmp_path / "a.pt"), states(tmp_path / "r.pt"))
    from PIL import Image

    assert Image.open(tmp_path / "s.png").size == (8 * 16, 8 * 16)
    runner = models.shared("gan", tmp_path / "a.pt")
    img = runner.forward(np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32))
    assert img.shape == (2, 16, 16, 3) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0


def stop_at(monkeypatch, count: int) -> None:
    """Ctrl-C during training, as the progress bar is told of step (or epoch) ``count``."""
    from rich.progress import Progress

    calls = []
    real = Progress.update

    def update(self, *args, **kw):
        calls.append(1)
        if len(calls) == count:
            raise KeyboardInterrupt
        return real(self, *args, **kw)
    monkeypatch.setattr(Progress, "update", update)


@pytest.mark.parametrize("kind", ["gan", "autoencoder"])
def test_ctrl_c_before_the_first_checkpoint_keeps_one_and_resume_goes_on(kind, squiggles, grooves, tmp_path,
                                                                        monkeypatch, capsys):
    """Stopped before any checkpoint was due ('--resume' then found none and failed): the
    steps finished are checkpointed on the way out, and a resume gives the model of one
    uninterrupted run; a resume with no checkpoint at all starts from the beginning."""
    train_one = (lambda out, **kw: tiny_gan(squiggles, out, checkpoint_every=100, **kw)) if kind == "gan" \
        else (lambda out, **kw: tiny_ae(grooves, out, **kw))
    n = {"gan": 6, "autoencoder": 4}[kind]
    key = "steps" if kind == "gan" else "epochs"
    train_one(tmp_path / "one.pt", **{key: n})
    stop_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train_one(tmp_path / "r.pt", **{key: n})
    monkeypatch.undo()
    assert (tmp_path / "r.pt.ckpt").exists() and not (tmp_path / "r.pt").exists()
    train_one(tmp_path / "r.pt", **{key: n}, resume=True)
    assert same(states(tmp_path / "one.pt"), states(tmp_path / "r.pt"))
    train_one(tmp_path / "fresh.pt", **{key: n}, resume=True)
    assert "no checkpoint at" in capsys.readouterr().err
    assert same(states(tmp_path / "one.pt"), states(tmp_path / "fresh.pt"))


def test_a_palette_gan_paints_each_image_with_its_own_few_colours(squiggles, tmp_path):
    """``arch: palette`` trains, resumes and loads like the others; each image is mixed
    per pixel from the palette its latent picked (every pixel inside the palette's
    colours), and two latents pick different palettes."""
    tiny_gan(squiggles, tmp_path / "a.pt", arch="palette")
    tiny_gan(squiggles, tmp_path / "r.pt", arch="palette", steps=3)
    tiny_gan(squiggles, tmp_path / "r.pt", arch="palette", steps=6, resume=True)
    assert same(states(tmp_path / "a.pt"), states(tmp_path / "r.pt"))
    g = models.load(tmp_path / "a.pt", torch.load(tmp_path / "a.pt", weights_only=True)["tonegraph"])[0].float()
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32))
    with torch.no_grad():
        img, palette = g(z), g.palette(z).view(2, g.COLOURS, 3)
    assert img.shape == (2, 3, 16, 16)
    for im, colours in zip(img, palette):
        lo, hi = colours.min(dim=0).values, colours.max(dim=0).values
        assert ((im >= lo[:, None, None] - 1e-5) & (im <= hi[:, None, None] + 1e-5)).all()
    assert (palette[0] - palette[1]).abs().max() > 1e-3
    # Through the node's runner: the same pictures, in 0..1, rows last.
    runner = models.shared("gan", tmp_path / "a.pt", "cpu")
    assert np.allclose(runner.forward(z.numpy()), ((img + 1) / 2).permute(0, 2, 3, 1).numpy(), atol=1e-5)
    # A checkpoint of another make (no minibatch-std critic) is refused in one line.
    ck = torch.load(tmp_path / "r.pt.ckpt", weights_only=False)
    ck.pop("critic")
    torch.save(ck, tmp_path / "r.pt.ckpt")
    with pytest.raises(train.TrainError, match="other settings"):
        tiny_gan(squiggles, tmp_path / "r.pt", arch="palette", steps=9, resume=True)


def test_a_palette_gans_temperature_sets_how_firmly_each_pixel_takes_one_colour(squiggles, tmp_path):
    """--temperature is a sampling setting a palette generator's file carries: the
    training is the same, pixels drawn below 1 sit nearer one palette colour than the
    trained mixtures (crisper), and a row of latent + 1 values sets it per image
    (0: the file's own)."""
    tiny_gan(squiggles, tmp_path / "a.pt", arch="palette")
    tiny_gan(squiggles, tmp_path / "t.pt", arch="palette", temperature=0.05)
    assert same(states(tmp_path / "a.pt"), states(tmp_path / "t.pt"))
    g = models.load(tmp_path / "t.pt", "gan")[0].float()
    assert g.temperature == 0.05
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32))
    with torch.no_grad():
        crisp, soft, palette = g(z), g(z, 1.0), g.palette(z).view(3, g.COLOURS, 3)

    def off_palette(img):       # mean distance of a pixel to its nearest palette colour
        d = (img.permute(0, 2, 3, 1)[:, :, :, None, :] - palette[:, None, None]).norm(dim=-1)
        return d.min(dim=-1).values.mean()

    assert off_palette(crisp) < 0.6 * off_palette(soft)
    runner = models.shared("gan", tmp_path / "t.pt", "cpu")
    to01 = lambda x: ((x + 1) / 2).permute(0, 2, 3, 1).numpy()   # noqa: E731
    assert np.allclose(runner.forward(z.numpy()), to01(crisp), atol=1e-5)
    rows = np.hstack([z.numpy(), np.array([[1.0], [0.0], [0.05]], np.float32)])
    out = runner.forward(rows)
    assert np.allclose(out[0], to01(soft)[0], atol=1e-5) and np.allclose(out[1:], to01(crisp)[1:], atol=1e-5)
    with torch.no_grad():                        # float16 (CUDA's): a tiny temperature stays finite
        assert torch.isfinite(g.half()(z.half(), torch.full((3,), 1e-6))).all()
    with pytest.raises(train.TrainError, match="--temperature"):
        tiny_gan(squiggles, tmp_path / "u.pt", temperature=0.5)


def test_ml_gan_temperature_param_changes_the_picture_live(registry, write_patch, tmp_path):
    """The node's temperature reaches the shared runner per node, in the same batch."""
    path = write_patch("""
        nodes:
          g1: {type: ml.gan, params: {seed: 3}}
          g2: {type: ml.gan, params: {seed: 3, temperature: 1}}
        """)
    ex = runners(path, registry)[0]
    ex.frame(Tick(0.0, 0.0, 0))
    assert ex.nodes["g1"].model is ex.nodes["g2"].model
    a, b = ex.nodes["g1"].out["out"], ex.nodes["g2"].out["out"]
    assert np.abs(a - b).mean() > 0.005
    assert ex.nodes["g1"].out["latent"].shape == (ex.nodes["g1"].model.latent,)
    assert not ex.nodes["g2"].set_params({"temperature": 0})   # live: no restart; the file's own
    ex.frame(Tick(0.0, 0.0, 1))
    assert np.allclose(ex.nodes["g2"].out["out"], a, atol=1e-5)


def gan_every_runner(registry, write_patch, offline=True):
    path = write_patch("""
        nodes:
          each:  {type: ml.gan, params: {seed: 5, speed: 3}}
          third: {type: ml.gan, params: {seed: 5, speed: 3, every: 3}}
        """)
    ex = runners(path, registry)[0]
    ex.nodes["third"].ctx.offline = offline
    return ex


def test_ml_gan_every_computes_every_nth_frame_beside_the_drawing_and_fades_in(registry, write_patch,
                                                                              monkeypatch):
    """every: 3 draws its first picture at once, then runs the generator for frames 3, 6,
    9 on a thread of its own while the frame is drawn; offline the next frame waits for
    it, and the three frames from there fade from the picture shown to the new one,
    which is there in full on the third (trailing the latent by three frames)."""
    import threading

    calls = []
    orig = models.GeneratorRunner.forward
    monkeypatch.setattr(models.GeneratorRunner, "forward", lambda self, batch: (
        calls.append((threading.current_thread() is threading.main_thread(), len(batch))),
        orig(self, batch))[1])
    ex = gan_every_runner(registry, write_patch)
    each, third, latents = [], [], []
    for k in range(10):
        ex.frame(Tick(k / 4, 1 / 4 if k else 0.0, k))                   # a latent moving fast
        each.append(ex.nodes["each"].out["out"].copy())
        third.append(ex.nodes["third"].out["out"].copy())
        latents.append((ex.nodes["each"].out["latent"].copy(), ex.nodes["third"].out["latent"].copy()))
    job = ex.nodes["third"].job
    assert wait_for(lambda: job is None or job[0].done(), 30)               # frame 9's, made beside
    assert [n for main, n in calls if main] == [2] + [1] * 9              # the first at once, batched
    assert [n for main, n in calls if not main] == [1, 1, 1]             # frames 3, 6, 9 beside
    assert np.abs(each[3] - each[0]).mean() > 0.01                        # the latent moves
    assert np.allclose(third[0], each[0], atol=1e-6) and all(np.array_equal(third[k], third[0]) for k in (1, 2, 3))
    for key in (3, 6):
        a, b = third[key], each[key]
        assert np.allclose(third[key + 1], a + (b - a) / 3, atol=1e-6)
        assert np.allclose(third[key + 2], a + (b - a) * 2 / 3, atol=1e-6)
        assert np.allclose(third[key + 3], b, atol=1e-6)
        assert np.array_equal(latents[key + 1][1], latents[key][0])       # the latent drawn
    assert ex.fault_count() == 0


def test_ml_gan_every_nodes_on_one_model_run_their_frames_beside_as_one_batch(registry, write_patch,
                                                                             monkeypatch):
    """Two every: 3 nodes sharing the generator ask for frames 3, 6 and 9 together: one
    batch of two on its thread each time, each node given its own picture (the one its
    latent makes drawn at once)."""
    import threading

    calls = []
    orig = models.GeneratorRunner.forward
    monkeypatch.setattr(models.GeneratorRunner, "forward", lambda self, batch: (
        calls.append((threading.current_thread() is threading.main_thread(), len(batch))),
        orig(self, batch))[1])
    path = write_patch("""
        nodes:
          a: {type: ml.gan, params: {seed: 5, speed: 3, every: 3}}
          b: {type: ml.gan, params: {seed: 9, speed: 3, every: 3}}
        """)
    ex = runners(path, registry)[0]
    for name in "ab":
        ex.nodes[name].ctx.offline = True
    for k in range(10):
        ex.frame(Tick(k / 4, 1 / 4 if k else 0.0, k))
    a, b = ex.nodes["a"], ex.nodes["b"]
    assert wait_for(lambda: all(n.job is None or n.job[0].done() for n in (a, b)), 30)  # frame 9's
    assert [n for main, n in calls if not main] == [2, 2, 2]
    assert np.abs(a.out["out"] - b.out["out"]).mean() > 0.005
    for node in (a, b):
        want = orig(node.model, np.append(node.out["latent"], np.float32(0))[None])[0]
        assert np.allclose(node.out["out"], want, atol=1e-5)
    assert ex.fault_count() == 0


def test_ml_gan_every_nodes_collecting_and_asking_in_one_live_frame_still_share_a_batch(
        registry, write_patch, monkeypatch):
    """Live, two every: 2 nodes of one model whose pictures come in just before a due
    frame collect them and ask again in that frame: the two new rows still run as one
    batch (a node collecting must not send the rows held so far on their own)."""
    import threading

    sizes = []
    go = threading.Event()
    orig = models.GeneratorRunner.forward

    def counted(self, batch):
        if threading.current_thread() is not threading.main_thread():
            go.wait(30)
            sizes.append(len(batch))
        return orig(self, batch)
    monkeypatch.setattr(models.GeneratorRunner, "forward", counted)
    path = write_patch("""
        nodes:
          a: {type: ml.gan, params: {seed: 5, speed: 3, every: 2}}
          b: {type: ml.gan, params: {seed: 9, speed: 3, every: 2}}
        """)
    ex = runners(path, registry)[0]
    a, b = ex.nodes["a"], ex.nodes["b"]
    a.ctx.offline = b.ctx.offline = False
    for k in range(6):                        # frame 2 asks; 3-5 draw on while it is made
        ex.frame(Tick(k / 4, 1 / 4 if k else 0.0, k))
    go.set()
    assert wait_for(lambda: a.job[0].done() and b.job[0].done(), 30)
    ex.frame(Tick(6 / 4, 1 / 4, 6))           # both collect, both ask again
    assert wait_for(lambda: a.job is not None and b.job is not None and a.job[0].done()
                    and b.job[0].done(), 30)
    assert sizes == [2, 2]
    assert ex.fault_count() == 0


def test_ml_gan_every_live_draws_on_while_the_generator_is_busy(registry, write_patch, monkeypatch):
    """Live, a frame never waits for the generator's thread: the picture shown stays
    until the new one is there, and fades in from the frame after."""
    ex = gan_every_runner(registry, write_patch, offline=False)
    for k in range(3):
        ex.frame(Tick(k / 4, 1 / 4 if k else 0.0, k))
    held, go = ex.nodes["third"].out["out"].copy(), held_generator(monkeypatch)
    try:
        for k in range(3, 8):                                             # frame 6 is due: still busy
            ex.frame(Tick(k / 4, 1 / 4, k))
            assert np.array_equal(ex.nodes["third"].out["out"], held)
    finally:
        go.set()
    assert wait_for(lambda: ex.nodes["third"].job is None or ex.nodes["third"].job[0].done(), 30)
    ex.frame(Tick(8 / 4, 1 / 4, 8))
    assert not np.array_equal(ex.nodes["third"].out["out"], held)         # fading in
    assert ex.fault_count() == 0


def held_generator(monkeypatch):
    """The generator's own thread waits for the event returned; the drawing thread not."""
    import threading

    go = threading.Event()
    orig = models.GeneratorRunner.forward
    monkeypatch.setattr(models.GeneratorRunner, "forward", lambda self, batch: (
        threading.current_thread() is threading.main_thread() or go.wait(30), orig(self, batch))[1])
    return go


def test_ml_gan_every_says_when_a_picture_in_flight_at_close_failed(registry, write_patch, monkeypatch,
                                                                   caplog):
    """A picture still being made beside when the node closes (a reload, the end of a
    run) is not shown, but a generator that failed on it is logged, not dropped."""
    import logging
    import threading

    go = threading.Event()

    def failing(self, batch):
        if threading.current_thread() is threading.main_thread():
            return orig(self, batch)
        go.wait(30)
        raise RuntimeError("out of memory")
    orig = models.GeneratorRunner.forward
    monkeypatch.setattr(models.GeneratorRunner, "forward", failing)
    ex = gan_every_runner(registry, write_patch, offline=False)
    third = ex.nodes["third"]
    for k in range(4):
        ex.frame(Tick(k / 4, 1 / 4 if k else 0.0, k))
    job = third.job
    assert job is not None and not job[0].done()
    with caplog.at_level(logging.WARNING, logger="tonegraph"):
        third.close()
        go.set()
        assert wait_for(lambda: job[0].done(), 30)
        assert wait_for(lambda: any("out of memory" in r.getMessage() for r in caplog.records), 30)
    said = next(r.getMessage() for r in caplog.records if "out of memory" in r.getMessage())
    assert "third" in said and "ml.gan" in said, said


@pytest.mark.parametrize("every_after", [3, 1])
def test_ml_gan_every_draws_the_latent_it_settles_on_after_a_busy_generator(registry, write_patch,
                                                                            monkeypatch, every_after):
    """Frame 3's picture is still being made when frame 6 is due (left out); then the
    latent stops.  The picture settles on the latent it stopped at, and ``latent`` names
    the one drawn: with every: 3 the next due frame asks again; set to 1 meanwhile, each
    frame draws at once and the late picture, of an older latent, is dropped."""
    ex = gan_every_runner(registry, write_patch, offline=False)
    third, each = ex.nodes["third"], ex.nodes["each"]
    for k in range(3):
        ex.frame(Tick(k / 4, 1 / 4 if k else 0.0, k))
    go = held_generator(monkeypatch)
    try:
        for k in range(3, 7):
            ex.frame(Tick(k / 4, 1 / 4, k))
        assert third.job is not None
        if every_after == 1:
            assert not third.set_params({"every": 1})
            ex.frame(Tick(7 / 4, 1 / 4, 7))                     # drawn at once; the job is late
    finally:
        go.set()
    assert wait_for(lambda: third.job is None or third.job[0].done(), 30)
    for k in range(8, 20):                                      # the latent held still
        ex.frame(Tick(7 / 4, 0.0, k))
        assert wait_for(lambda: third.job is None or third.job[0].done(), 30)   # ready by the next
        if k >= 8 + 2 * 3:
            assert np.allclose(third.out["out"], each.out["out"], atol=1e-5), k
            assert np.array_equal(third.out["latent"], each.out["latent"]), k
    assert ex.fault_count() == 0


def test_gan_keep_best_saves_the_likest_checkpoint_and_trains_the_same(squiggles, tmp_path):
    """--keep best: the model file holds the weights of the checkpoint scored likest to
    the training images (every 3 steps here), the training itself is what --keep last
    does (the same checkpointed generator), and a stop and resume keeps the same best."""
    last = tiny_gan(squiggles, tmp_path / "l.pt", steps=9)
    rep = tiny_gan(squiggles, tmp_path / "b.pt", steps=9, keep="best")
    assert last.kept_step is None and rep.kept_step in (3, 6, 9)
    ck_last = torch.load(tmp_path / "l.pt.ckpt", weights_only=False)
    ck_best = torch.load(tmp_path / "b.pt.ckpt", weights_only=False)
    assert same(ck_last["g"], ck_best["g"])                       # the same training
    assert ck_best["best"]["step"] == rep.kept_step
    assert same(states(tmp_path / "b.pt"), {k: v.half().float() if v.is_floating_point() else v
                                             for k, v in ck_best["best"]["state"].items()})
    tiny_gan(squiggles, tmp_path / "r.pt", steps=6, keep="best")
    again = tiny_gan(squiggles, tmp_path / "r.pt", steps=9, keep="best", resume=True)
    assert again.kept_step == rep.kept_step and same(states(tmp_path / "r.pt"), states(tmp_path / "b.pt"))


def test_minibatch_std_tells_a_batch_of_look_alikes_from_a_varied_one():
    from tonegraph.nodes.ml.models import MinibatchStd

    layer = MinibatchStd(group=4)
    same_ = torch.ones(8, 5, 4, 4)
    varied = torch.randn(8, 5, 4, 4, generator=torch.Generator().manual_seed(0))
    out = layer(same_)
    assert out.shape == (8, 6, 4, 4) and torch.equal(out[:, :5], same_)
    assert out[:, 5].abs().max() < 1e-3                        # alike: no spread
    assert layer(varied)[:, 5].min() > 0.5                      # N(0, 1) features: std near 1
    assert layer(torch.randn(6, 5, 4, 4)).shape == (6, 6, 4, 4)    # a batch the group does not divide


def test_train_commands_report_bad_input_in_one_line(tmp_path, squiggles):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = tonegraph("train", "autoencoder", "--audio", str(empty), "-o", str(tmp_path / "x.pt"))
    assert res.returncode == 1 and res.stderr.strip().count("\n") == 0
    assert "no sound files" in res.stderr and "Traceback" not in res.stderr
    res = tonegraph("train", "gan", "--images", str(empty), "-o", str(tmp_path / "x.pt"))
    assert res.returncode == 1 and "no images" in res.stderr
    res = tonegraph("train", "gan", "--images", str(squiggles), "-o", str(tmp_path / "x.pt"), "--size", "48")
    assert res.returncode == 1 and "power of two" in res.stderr


def test_train_gan_on_cuda_where_there_is_one(tmp_path, squiggles):
    """On a GPU machine this trains there; elsewhere asking for CUDA is one clear line."""
    res = tonegraph("train", "gan", "--images", str(squiggles), "-o", str(tmp_path / "g.pt"), "--size", "16",
                    "--latent", "8", "--ngf", "8", "--ndf", "8", "--steps", "2", "--batch", "4", "-q",
                    "--device", "cuda")
    if torch.cuda.is_available():
        assert res.returncode == 0, res.stderr
        assert models.shared("gan", tmp_path / "g.pt", "cpu").forward(np.zeros((1, 8), np.float32)).shape == (1, 16, 16, 3)
    else:
        assert res.returncode == 1 and "no CUDA GPU" in res.stderr and "Traceback" not in res.stderr


def test_train_command_end_to_end(tmp_path, squiggles):
    out = tmp_path / "g.pt"
    res = tonegraph("train", "gan", "--images", str(squiggles), "-o", str(out), "--size", "16",
                    "--latent", "8", "--ngf", "8", "--ndf", "8", "--steps", "2", "--batch", "4", "-q")
    assert res.returncode == 0, res.stderr
    assert out.is_file() and (tmp_path / "g.loss.png").is_file() and (tmp_path / "g.samples.png").is_file()
    assert "trained on 24 images" in res.stdout


def test_sounds_makes_a_reproducible_set_of_every_kind(tmp_path):
    from tonegraph.tools.sounds import KINDS, make_sounds

    made = make_sounds(tmp_path / "a", count=40, seed=3, samplerate=8000, seconds=1.0)
    make_sounds(tmp_path / "b", count=40, seed=3, samplerate=8000, seconds=1.0)
    assert sum(made.values()) == 40 and set(made) == {k for k, _ in KINDS}
    assert all(made[k] > 0 for k in ("groove", "mix", "quiet"))
    files = sorted((tmp_path / "a").iterdir())
    assert [f.name for f in files] == sorted(f.name for f in (tmp_path / "b").iterdir())
    levels = {}
    for f in files:
        x, sr = sf.read(f)
        assert sr == 8000 and len(x) == 8000 and np.abs(x).max() <= 1.0
        assert np.array_equal(x, sf.read(tmp_path / "b" / f.name)[0])
        levels.setdefault(f.name.split("-")[0], []).append(np.abs(x).max())
    assert max(levels["quiet"]) < 0.01 and min(levels["groove"]) > 0.02      # -30..0 dB peaks
    assert np.ptp(levels["groove"]) > 0.3                                     # and varied


def test_sounds_command_and_its_bad_input(tmp_path):
    res = tonegraph("sounds", "-o", str(tmp_path / "s"), "--count", "3", "--seconds", "1",
                    "--samplerate", "8000")
    assert res.returncode == 0, res.stderr
    assert "3 clips of 1 s" in res.stdout and len(list((tmp_path / "s").iterdir())) == 3
    res = tonegraph("sounds", "-o", str(tmp_path / "t"), "--count", "0")
    assert res.returncode == 2 and "--count: 0 is outside 1..100000" in res.stderr and "Traceback" not in res.stderr


def test_groove_timbre_changes_the_sound_but_not_the_beats():
    from tonegraph.nodes.audio.synth import Timbre

    plain, hits, beats = render_groove(8000, 120.0, 2, 1)
    dark, hits2, beats2 = render_groove(8000, 120.0, 2, 1, Timbre(pad_wave="saw", lowpass_hz=400.0,
                                                                    drive=3.0, transpose=5))
    assert hits == hits2 and beats == beats2 and plain.shape == dark.shape
    spec = lambda x: np.abs(np.fft.rfft(x))   # noqa: E731
    f = np.fft.rfftfreq(len(plain), 1 / 8000)
    high = lambda x: spec(x)[f > 2000].sum() / spec(x).sum()   # noqa: E731
    assert high(dark) < 0.5 * high(plain)                                     # the low-pass


# -- the shipped models ------------------------------------------------------------------


def test_shipped_gan_makes_images_of_the_documented_shape_and_range():
    runner = models.shared("gan", MODELS_DIR / "gan.pt", "cpu")
    z = np.random.default_rng(1).standard_normal((4, runner.latent)).astype(np.float32)
    img = runner.forward(z)
    assert img.shape == (4, runner.size, runner.size, 3) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    assert img.std() > 0.05                                   # a picture, not a flat field
    assert np.abs(img[0] - img[1]).mean() > 0.01              # different latents, different pictures
    assert runner.size == SHIPPED_SIZE and (MODELS_DIR / "gan.pt").stat().st_size < 8e6


def test_shipped_autoencoder_codes_in_range_and_novelty_is_higher_for_an_unheard_sound():
    runner = models.shared("autoencoder", MODELS_DIR / "autoencoder.pt", "cpu")
    assert runner.code == 10 and runner.front["samplerate"] == FRONT["samplerate"]
    from tonegraph.nodes.ml.frontend import MelFrontEnd, windows

    sr = runner.front["samplerate"]
    groove, _, _ = render_groove(sr, 117, 4, 9)                # unseen tempo and seed
    noise = np.random.default_rng(0).standard_normal(len(groove)).astype(np.float32) * 0.3
    # A steady square wave at 3 kHz, aliased at 22,050 Hz: nothing in its training set
    # (tonegraph sounds) sounds like it.
    t = np.arange(len(groove)) / sr
    buzz = (0.5 * np.sign(np.sin(2 * np.pi * 3000 * t))).astype(np.float32)

    def encode(x):
        return runner.forward(windows(np.stack(MelFrontEnd(runner.front, sr).push(x)), runner.context))

    g, n, b = encode(groove), encode(noise), encode(buzz)
    assert g.shape[1] == 11 and 0.0 <= g[:, :10].min() and g[:, :10].max() <= 1.0
    assert g[:, :10].std(axis=0).min() > 0.01                  # every dimension moves with the music
    assert np.median(g[:, 10]) < 1.5 and np.median(n[:, 10]) < 3   # both like its training set
    assert np.abs(g[:, :10].mean(axis=0) - n[:, :10].mean(axis=0)).max() > 0.1   # told apart
    assert np.median(b[:, 10]) > 3 * max(np.median(g[:, 10]), np.median(n[:, 10]))  # novel to it
    assert (MODELS_DIR / "autoencoder.pt").stat().st_size < 8e6


# -- nodes in patches --------------------------------------------------------------------


PATCH = """
    patch: {{fps: 30}}
    nodes:
      groove: {{type: audio.synth, params: {{bars: 8}}}}
      level:  {{type: audio.level, in: {{audio: groove}}}}
      energy: {{type: control.map, params: {{in_range: [-30, -10]}}, in: {{value: level.db}}}}
      ae:     {{type: ml.autoencoder, in: {{audio: groove}}}}
      g1:     {{type: ml.gan, params: {{pulse: 0}}, in: {{energy: energy}}}}
      g2:     {{type: ml.gan, params: {{seed: 5}}, in: {{value: ae}}}}
      rec:    {{type: io.record, params: {{path: "{out}"}},
                in: {{code: ae, error: ae.error, z1: g1.latent, z2: g2.latent}}}}
    """


def series(path, name):
    """A recorded input's times and values.  The GANs render after the control tick
    that records them, so their first row is the empty latent before the first frame."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows = [r for r in rows if r["name"] == name and r["value"] != []]
    return np.array([r["t"] for r in rows]), np.array([r["value"] for r in rows])


def test_two_gans_and_an_autoencoder_follow_the_music(registry, write_patch, tmp_path):
    """The groove alternates quiet and loud sections every 4 bars (8 s at 120 BPM)."""
    out = tmp_path / "ml.jsonl"
    path = write_patch(PATCH.format(out=out))
    rt = run_offline(path, registry, duration=16.0)
    assert rt.report.faults == 0
    t, z1 = series(out, "z1")
    moves = np.linalg.norm(np.diff(z1, axis=0), axis=1)
    quiet = moves[(t[1:] > 1) & (t[1:] < 7.5)].sum()
    loud = moves[(t[1:] > 9) & (t[1:] < 15.5)].sum()
    assert loud > 2 * quiet                                    # louder passages move it further
    t, code = series(out, "code")
    assert code.shape[1] == 10 and code[t > 1].std(axis=0).mean() > 0.02
    quiet_code = code[(t > 1) & (t < 7.5)].mean(axis=0)
    loud_code = code[(t > 9) & (t < 15.5)].mean(axis=0)
    assert np.abs(loud_code - quiet_code).max() > 0.05        # the code tells the sections apart
    _, z2 = series(out, "z2")                                  # the code drives the second GAN
    assert np.linalg.norm(np.diff(z2, axis=0), axis=1).sum() > 1.0
    images = rt.runner.nodes["g1"].out["out"], rt.runner.nodes["g2"].out["out"]
    assert all(im.shape == (SHIPPED_SIZE, SHIPPED_SIZE, 3) for im in images)


def runners(path, registry):
    graph = load_ok(path, registry)
    return [make_runner(graph, registry, batching) for batching in (True, False)]


def run_both(exs, frames, hops_per_frame=3):
    outs = []
    for ex in exs:
        rows = []
        for k in range(frames):
            for h in range(hops_per_frame):
                i = k * hops_per_frame + h
                ex.audio_hop(Tick(i * 512 / 44100, 512 / 44100, i))
            ex.frame(Tick(k / 30, 1 / 30 if k else 0.0, k))
            rows.append({nid: {p: np.array(v, copy=True) for p, v in n.out.items()}
                         for nid, n in ex.nodes.items() if nid in ("ae", "g1", "g2")})
        outs.append(rows)
    return outs


def test_batched_equals_unbatched_and_runs_one_forward_per_model(registry, write_patch, tmp_path,
                                                                 monkeypatch):
    path = write_patch(PATCH.format(out=tmp_path / "x.jsonl"))
    calls = []
    for cls in (models.GeneratorRunner, models.AutoEncoderRunner):
        orig = cls.forward

        def counted(self, batch, orig=orig):
            calls.append((self.kind, len(batch)))
            return orig(self, batch)

        monkeypatch.setattr(cls, "forward", counted)
    batched, plain = runners(path, registry)
    calls.clear()
    a = run_both([batched], 10)[0]
    n_batched = list(calls)
    calls.clear()
    b = run_both([plain], 10)[0]
    n_plain = list(calls)
    for ra, rb in zip(a, b):
        for nid in ra:
            for port in ra[nid]:
                assert np.allclose(ra[nid][port], rb[nid][port], atol=1e-4), (nid, port)
    # Batched: per frame one generator pass for both GANs (2 rows) and one autoencoder
    # pass for all queued hops.  Plain: one pass per row.
    assert ("gan", 2) in n_batched and all(n == 1 for _, n in n_plain)
    for kind in ("gan", "autoencoder"):
        assert sum(n for k, n in n_batched if k == kind) == sum(n for k, n in n_plain if k == kind)
        assert sum(k == kind for k, _ in n_batched) <= 10          # at most one pass per frame
    assert len(n_plain) > len(n_batched)


def test_dependent_model_nodes_run_in_order_not_in_one_batch(registry, write_patch, tmp_path):
    """g2 takes g1's latent: they cannot share a batch, and g2 sees g1's latent of the same frame."""
    path = write_patch("""
        nodes:
          z:  {type: ml.latent, params: {dim: 64, speed: 3}}
          g1: {type: ml.gan, in: {value: z}}
          g2: {type: ml.gan, in: {value: g1.latent}}
        """)
    ex = runners(path, registry)[0]
    for k in range(3):
        ex.frame(Tick(k / 60, 1 / 60 if k else 0.0, k))
        assert np.array_equal(ex.nodes["g2"].out["latent"], ex.nodes["g1"].out["latent"])
        assert np.allclose(ex.nodes["g2"].out["out"], ex.nodes["g1"].out["out"], atol=1e-5)
    assert ex.fault_count() == 0


def test_a_failing_forward_keeps_last_images_and_the_show_runs(registry, write_patch, monkeypatch):
    path = write_patch("""
        nodes:
          z:  {type: ml.latent, params: {dim: 64, speed: 3}}
          g1: {type: ml.gan, in: {value: z}}
          g2: {type: ml.gan, params: {seed: 2}}
          lfo: {type: control.lfo}
        """)
    ex = runners(path, registry)[0]
    ex.frame(Tick(0.0, 0.0, 0))
    before = ex.nodes["g1"].out["out"].copy()

    def broken(self, batch):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(models.GeneratorRunner, "forward", broken)
    ex.frame(Tick(1 / 60, 1 / 60, 1))
    assert np.array_equal(ex.nodes["g1"].out["out"], before)
    assert set(ex.faults) == {"g1", "g2"} and ex.nodes["lfo"].out["out"] != 0.0
    monkeypatch.undo()
    ex.frame(Tick(2 / 60, 1 / 60, 2))
    assert not np.array_equal(ex.nodes["g1"].out["out"], before)


def test_nodes_with_different_weights_batch_separately(registry, write_patch, tmp_path):
    other = tmp_path / "other.pt"
    shutil.copy(MODELS_DIR / "gan.pt", other)
    path = write_patch(f"""
        nodes:
          g1: {{type: ml.gan}}
          g2: {{type: ml.gan, params: {{model: "{other}"}}}}
          g3: {{type: ml.gan, params: {{seed: 3}}}}
        """)
    ex = runners(path, registry)[0]
    ex.frame(Tick(0.0, 0.0, 0))
    assert ex.nodes["g1"].model is ex.nodes["g3"].model is not ex.nodes["g2"].model
    assert all(ex.nodes[g].out["out"].std() > 0 for g in ("g1", "g2", "g3"))


def test_autoencoder_at_another_samplerate_is_resampled_to_the_models(registry, write_patch, tmp_path):
    """One recording at 44.1 kHz: a 22.05 kHz patch (the file node resamples) and a 44.1 kHz
    patch (the autoencoder resamples to its model's rate) give the same codes."""
    song = tmp_path / "song.wav"
    sf.write(song, render_groove(44100, 120, 2, 1)[0], 44100)
    codes = {}
    for sr in (22050, 44100):
        out = tmp_path / f"c{sr}.jsonl"
        path = write_patch(f"""
            patch: {{fps: 30, samplerate: {sr}}}
            nodes:
              song: {{type: audio.file, params: {{path: "{song}"}}}}
              ae: {{type: ml.autoencoder, in: {{audio: song}}}}
              rec: {{type: io.record, params: {{path: "{out}"}}, in: {{code: ae.raw}}}}
            """, name=f"p{sr}.yaml")
        run_offline(path, registry, duration=4.0)
        codes[sr] = series(out, "code")[1][15:]
    a, b = codes[22050], codes[44100]
    n = min(len(a), len(b))
    assert np.abs(a[:n].mean(axis=0) - b[:n].mean(axis=0)).max() < 0.05


def test_front_end_resamples_live_input_to_the_frames_it_was_trained_on():
    import soxr

    from tonegraph.nodes.ml.frontend import MelFrontEnd

    x = render_groove(44100, 120, 2, 1)[0].astype(np.float32)
    live = MelFrontEnd(FRONT, 44100)
    frames = [f for i in range(0, len(x), 512) for f in live.push(x[i:i + 512])]   # hop by hop
    trained = MelFrontEnd(FRONT, FRONT["samplerate"]).push(soxr.resample(x, 44100, FRONT["samplerate"]))
    n = min(len(frames), len(trained))
    assert n > 150 and np.allclose(np.stack(frames[:n]), np.stack(trained[:n]), atol=1e-3)


def test_a_retrained_model_file_is_picked_up_live(registry, write_patch, tmp_path, squiggles):
    """Saving new weights over a model file reloads the node with them; the show goes on."""
    import threading

    from tonegraph.engine.runtime import Runtime

    from ..conftest import wait_for

    weights = tmp_path / "live.pt"
    shutil.copy(MODELS_DIR / "gan.pt", weights)
    path = write_patch(f"""
        patch: {{fps: 30}}
        nodes:
          g: {{type: ml.gan, params: {{model: "{weights}"}}}}
          lfo: {{type: control.lfo}}
        """)
    rt = Runtime(load_ok(path, registry), registry, duration=60, watch=True)
    th = threading.Thread(target=rt.run, daemon=True)
    th.start()
    try:
        assert wait_for(lambda: rt.frames > 10, 20)
        assert rt.runner.nodes["g"].out["out"].shape == (SHIPPED_SIZE, SHIPPED_SIZE, 3)
        tiny_gan(squiggles, tmp_path / "new.pt")
        (tmp_path / "new.pt").replace(weights)                  # saved in place, as training does
        assert wait_for(lambda: rt.runner.nodes["g"].out["out"].shape == (16, 16, 3), 20)
        frames = rt.frames
        assert wait_for(lambda: rt.frames > frames + 10, 10)
        assert rt.runner.fault_count() == 0
    finally:
        rt.request_stop()
        th.join(10)


# -- bad model files ---------------------------------------------------------------------


@pytest.mark.parametrize("content, expected", [
    (b"this is not a model", "not a tonegraph model file"),
    ("gan", "is a gan model, this node needs an autoencoder model"),
    ("pickle", "not a tonegraph model file"),
])
def test_a_bad_model_file_gets_one_clear_line(write_patch, tmp_path, content, expected):
    bad = tmp_path / "bad.pt"
    if content == "gan":
        shutil.copy(MODELS_DIR / "gan.pt", bad)
    elif content == "pickle":   # a file that would run code if unpickled freely
        torch.save({"tonegraph": "autoencoder", "payload": np.random.default_rng(0)}, bad)
    else:
        bad.write_bytes(content)
    path = write_patch(f"""
        nodes:
          groove: {{type: audio.synth}}
          ae: {{type: ml.autoencoder, params: {{model: "{bad}"}}, in: {{audio: groove}}}}
        """)
    res = tonegraph("run", str(path), "--offline", "--duration", "0.5")
    assert res.returncode == 1
    assert expected in res.stderr and str(bad) in res.stderr and "Traceback" not in res.stderr
    assert len([l for l in res.stderr.splitlines() if "error" in l]) == 1, res.stderr


def test_a_missing_model_file_is_a_patch_error_with_its_place(write_patch, tmp_path):
    path = write_patch("""
        nodes:
          g: {type: ml.gan, params: {model: nowhere.pt}}
        """)
    res = tonegraph("validate", str(path))
    assert res.returncode == 1
    assert f"{path}:2:" in res.stderr and "no such model file" in res.stderr


def test_autoencoder_code_spans_its_range_on_any_sound_and_novelty_is_relative_to_the_recent_past():
    """Sound unlike the training data (a steady hum, then a chirp): the training-range
    code barely moves, the normalised one uses its 0..1; novelty flares when the chirp
    starts and settles while it goes on."""
    from tonegraph.engine.node import Context
    from tonegraph.engine.ports import AudioBlock
    from tonegraph.nodes.ml.autoencoder import AutoEncoder

    sr, hop = 22050, 512
    t = np.arange(sr * 30) / sr
    hum = 0.3 * np.sin(2 * np.pi * 110 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.25 * t))
    chirp = 0.3 * np.sin(2 * np.pi * (400 + 300 * (t - 20)) * (t - 20))
    x = np.where(t < 20, hum, chirp).astype(np.float32)
    ctx = Context(samplerate=sr, hop=hop, offline=True)
    node = AutoEncoder("ae", {"normalize": 10.0}, ctx, {"audio": PortType.AUDIO})
    node.configure()
    raw, out, novelty = [], [], []
    for k in range(len(x) // hop):
        tk = Tick(k * hop / sr, hop / sr, k)
        block = x[k * hop:(k + 1) * hop]
        node.inp["audio"] = AudioBlock(block[:, None], tk.t, sr, block)
        node.process_audio(tk)
        if k % 3 == 0:
            node.process(tk)
            raw.append(node.out["raw"].copy())
            out.append(node.out["out"].copy())
            novelty.append((tk.t, node.out["error"]))
    raw, out = np.array(raw[100:]), np.array(out[100:])
    span = lambda a: np.percentile(a, 95, axis=0) - np.percentile(a, 5, axis=0)  # noqa: E731
    moving = span(raw) > 0.01
    assert np.median(span(out)[moving]) > 0.35                # the dimensions that move span
    assert np.abs(np.median(raw, axis=0) - 0.5).max() > 0.3   # the raw code sits at an end ...
    assert np.abs(np.median(out, axis=0) - 0.5).max() < 0.25  # ... the scaled one near the middle
    at = lambda a, b: [n for t_, n in novelty if a <= t_ < b]  # noqa: E731
    assert max(at(20.0, 21.0)) > 1.5 * np.median(at(15.0, 20.0))      # the chirp is news ...
    assert np.median(at(28.0, 30.0)) < 0.8 * max(at(20.0, 21.0))       # ... and then it is not


def test_torch_leaves_a_core_to_each_thing_sharing_them(monkeypatch, caplog, write_patch):
    import os

    from tonegraph.engine.graph import load_graph
    from tonegraph.engine.registry import default_registry
    from tonegraph.engine.runtime import Runtime

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(models, "_warned_threads", False)
    try:
        monkeypatch.setattr(os, "cpu_count", lambda: 2)
        assert models.share_cores(frozenset()) == 2 and torch.get_num_threads() == 2
        assert models.share_cores(frozenset({"audio", "gl"})) == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(os, "cpu_count", lambda: 16)
        assert models.share_cores(frozenset({"audio", "gl", "encoder"})) == 13
        monkeypatch.setenv("OMP_NUM_THREADS", "4")                 # fewer: as asked
        assert models.share_cores(frozenset({"audio"})) == 4
        monkeypatch.setattr(os, "cpu_count", lambda: 2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")                 # more than is left: capped
        with caplog.at_level("WARNING", logger="tonegraph.ml"):
            assert models.share_cores(frozenset({"audio", "gl"})) == 1
            assert models.share_cores(frozenset({"audio", "gl"})) == 1
        assert [r.getMessage() for r in caplog.records] == [
            "OMP_NUM_THREADS=2 would leave audio and gl no core of 2; torch uses 1 thread"]
        assert models.share_cores(frozenset()) == 2                # nothing else running: as asked
    finally:
        torch.set_num_threads(before)

    path = write_patch("""
        nodes:
          groove: {type: audio.synth}
          level:  {type: audio.level, in: {audio: groove}}
          look:   {type: gl.shader, params: {size: [16, 16], source: "void mainImage(out vec4 c, in vec2 f) { c = vec4(level); }"}, in: {level: level.rms}}
          out:    {type: gl.window, params: {size: [16, 16]}, in: {image: look}}
        """)
    reg = default_registry(plugins=False)
    graph, errors = load_graph(path, reg)
    assert not errors
    assert Runtime(graph, reg, offline=False).ctx.sharing == {"audio", "gl"}
    assert Runtime(graph, reg, offline=True).ctx.sharing == {"gl"}


@pytest.mark.parametrize("smooth", [0.25, 0.0])
def test_autoencoder_scales_a_frames_hops_at_once_as_it_would_one_by_one(smooth):
    """deliver() takes every hop of a frame in a few array operations; the result is the
    per-hop running statistics, hop after hop (written out plainly here)."""
    from types import SimpleNamespace

    from tonegraph.nodes.ml.autoencoder import AutoEncoder

    def fresh():
        node = AutoEncoder.__new__(AutoEncoder)
        node.out, node.p, node.hop_s = {}, SimpleNamespace(normalize=2.0, smooth=smooth), 0.0116
        node.mean = node.var = node.smoothed = None
        node.err_mean = 1.0
        return node

    ref = dict(mean=None, var=None, err=1.0, smoothed=None)

    def plainly(rows):
        a = 1.0 - np.exp(-0.0116 / 2.0)
        codes, errors = rows[:, :-1].astype(np.float64), rows[:, -1].astype(np.float64)
        if ref["mean"] is None:
            ref["mean"], ref["var"] = codes[0].copy(), np.full(codes.shape[1], 0.01)
        novelty = 0.0
        for code, err in zip(codes, errors):
            novelty = max(novelty, err / max(ref["err"], 1e-6))
            d = code - ref["mean"]
            ref["mean"] = ref["mean"] + a * d
            ref["var"] = ref["var"] + a * (d * d - ref["var"])
            ref["err"] += a * (err - ref["err"])
            scaled = 0.5 + 0.5 * np.tanh((code - ref["mean"]) / (2.0 * np.sqrt(np.maximum(ref["var"], 1e-6))))
            s = ref["smoothed"]
            ref["smoothed"] = scaled if s is None or smooth <= 0 else s + (scaled - s) * (1 - np.exp(-0.0116 / smooth))
        return ref["smoothed"], novelty

    rng = np.random.default_rng(3)
    node = fresh()
    for n in (1, 8, 3, 64, 5, 0, 2):
        if n == 0:
            node.deliver(Tick(0.0, 0.03, 0), None)
            assert node.out["hops"] == 0
            continue
        rows = rng.random((n, 11)).astype(np.float32) * np.linspace(0.5, 2.0, 11, dtype=np.float32)
        node.deliver(Tick(0.0, 0.03, 0), rows)
        want, novelty = plainly(rows)
        assert node.out["hops"] == n
        assert np.allclose(node.out["out"], want, atol=1e-5) and abs(node.out["error"] - novelty) < 1e-9 * max(1, novelty)
        assert np.allclose(node.mean, ref["mean"]) and np.allclose(node.var, ref["var"])
        assert abs(node.err_mean - ref["err"]) < 1e-9


def test_a_stopped_draw_or_sounds_run_leaves_no_half_file(tmp_path, monkeypatch):
    """Ctrl-C while a file is being written (here: the third one) leaves the files
    before it whole and no half one under a name training would read."""
    import soundfile as sf
    from PIL import Image

    from tonegraph.tools.sounds import make_sounds
    from tonegraph.tools.train import draw_squiggles

    for module, name, run in ((Image.Image, "save", lambda d: draw_squiggles(d, count=5, size=32)),
                              (sf, "write", lambda d: make_sounds(d, count=5, seconds=0.5))):
        real, calls = getattr(module, name), []

        def stopped(*args, real=real, calls=calls, name=name, **kw):
            calls.append(1)
            if len(calls) == 3:                  # Image.save(self, file), sf.write(file, data)
                target = args[1] if name == "save" else args[0]
                open(target, "wb").write(b"half a file")
                raise KeyboardInterrupt
            return real(*args, **kw)
        monkeypatch.setattr(module, name, stopped)
        folder = tmp_path / name
        folder.mkdir()
        with pytest.raises(KeyboardInterrupt):
            run(folder)
        monkeypatch.setattr(module, name, real)
        kept = sorted(p for p in folder.iterdir() if p.suffix in (".png", ".flac"))
        assert len(kept) == 2
        for p in kept:
            (Image.open(p).load() if p.suffix == ".png" else sf.read(p))


def test_the_eta_shows_when_each_step_takes_a_minute():
    """A 256 px GAN's steps on a CPU take longer than rich's default estimate window
    (30 s) allows two of: its bar showed no ETA at all."""
    t = [0.0]
    with train._progress(100, "gan", True, get_time=lambda: t[0]) as bar:
        task = bar.add_task("", total=100)
        for _ in range(3):
            t[0] += 60.0
            bar.update(task, advance=1)
        assert bar.tasks[0].time_remaining == pytest.approx(97 * 60.0, rel=0.01)


def test_draw_and_sounds_show_their_progress(tmp_path):
    res = tonegraph("draw", "-o", str(tmp_path / "d"), "--count", "12", "--size", "16")
    assert res.returncode == 0 and "12/12" in res.stdout + res.stderr, res.stdout + res.stderr
    assert len(list((tmp_path / "d").glob("*.png"))) == 12
    res = tonegraph("sounds", "-o", str(tmp_path / "s"), "--count", "5", "--seconds", "1", "--mkdir")
    assert res.returncode == 0 and "5/5" in res.stdout + res.stderr, res.stdout + res.stderr
    assert len(list((tmp_path / "s").glob("*.flac"))) == 5 and "5 clips of 1 s" in res.stdout


def test_training_writes_into_the_project_only_when_asked(tmp_path, squiggles):
    """`train gan -o nodes/ml/models/gan.pt` replaced a shipped model without a word;
    a file inside the project's own packages needs --into-project (make models gives it)."""
    shipped = ROOT / "nodes" / "ml" / "models" / "gan.pt"
    res = tonegraph("train", "gan", "--images", str(squiggles), "-o", "nodes/ml/models/new-gan.pt",
                    "--size", "16", "--steps", "1", "-q")
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "--into-project" in res.stderr and "nodes/ml/models/new-gan.pt" in res.stderr
    assert not list(shipped.parent.glob("new-gan*"))
    res = tonegraph("train", "gan", "--images", str(squiggles), "-o", str(tmp_path / "g.pt"),
                    "--plot", "tools/loss.png", "--size", "16", "--steps", "1", "-q")
    assert res.returncode == 2 and "--plot tools/loss.png" in res.stderr, res.stderr
    from tonegraph.tools.commands import inside_project

    assert inside_project(shipped) and inside_project(ROOT / "engine" / "x.pt")
    assert not inside_project(tmp_path / "g.pt") and not inside_project(ROOT / "build" / "g.pt")


def test_rows_run_beside_answer_every_asker_that_waits_even_when_one_gave_up():
    """The rows held for the model's thread run as one batch: each asker gets its own
    rows; one that cancelled is skipped, and a failed pass fails every asker."""
    from torch import nn

    class Echo(models.Runner):
        fail = False

        def forward(self, batch):
            if self.fail:
                raise RuntimeError("no memory")
            return batch * 2

    runner = Echo(nn.Identity(), {"config": {}, "extra": {}}, torch.device("cpu"), torch.float32)
    first, gone, last = (runner.beside(np.full((1, 2), v, np.float32)) for v in (1.0, 2.0, 3.0))
    assert gone.cancel()
    runner.send()
    assert np.array_equal(first.result(30), [[2.0, 2.0]]) and np.array_equal(last.result(30), [[6.0, 6.0]])
    runner.fail = True
    both = [runner.beside(np.ones((1, 2), np.float32)) for _ in range(2)]
    runner.send()
    for future in both:
        with pytest.raises(RuntimeError, match="no memory"):
            future.result(30)
