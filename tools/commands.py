"""The offline tools' commands: ``tonegraph synth``, ``train autoencoder|gan|onsets|beats``,
``analyze``, ``draw``, ``sounds`` and ``render``.  What each needs (torch, GL, Dask) is
imported only when it runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tonegraph.engine.args import add_mkdir, number, samplerate, seed, whole

from .render_command import add_parsers as add_render_parser

_POS = whole(1, 1_000_000)


def _positive_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 512,128, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 512,128, got {text!r}")
    return values


def inside_project(path: Path) -> bool:
    """Whether ``path`` lies in tonegraph's own packages (engine, nodes with the shipped
    models, tools), where a training's files would replace what the project ships."""
    import tonegraph.engine
    import tonegraph.nodes
    import tonegraph.tools

    where = Path(path).expanduser().resolve()
    return any(where.is_relative_to(Path(pkg.__file__).resolve().parent)
               for pkg in (tonegraph.engine, tonegraph.nodes, tonegraph.tools))


def _refuse_project_files(args: argparse.Namespace, *options: str) -> None:
    """A training writes beside the user's files: one that would write into the project
    stops before any work, unless --into-project says it is meant (make models)."""
    if args.into_project:
        return
    for option in options:
        path = getattr(args, {"-o": "output"}.get(option, option.lstrip("-")), None)
        if path is not None and inside_project(path):
            print(f"error: {option} {path}: that is inside tonegraph's own files (the shipped models "
                  f"are there); write it elsewhere, or give --into-project to replace them",
                  file=sys.stderr)
            raise SystemExit(2)


def _common(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("-o", "--output", required=True, type=Path, metavar="FILE",
                   help=f"the weights file to write ({what})")
    p.add_argument("--seed", type=seed, default=0, help="seed of everything random (default 0)")
    p.add_argument("--plot", type=Path, metavar="PNG",
                   help="loss plot (default: the output's name with .loss.png)")
    p.add_argument("--checkpoint", type=Path, metavar="FILE",
                   help="checkpoint file (default: the output's name with .ckpt)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint up to the epochs/steps given")
    p.add_argument("--into-project", action="store_true",
                   help="allow writing into tonegraph's own folders (replacing a shipped model)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_parsers(sub, with_nodes_path) -> None:
    """The tools' commands; ``with_nodes_path`` adds --nodes-path (which they accept like
    every command, though only render uses node types)."""
    def command(parent, name: str, **kw) -> argparse.ArgumentParser:
        return add_mkdir(with_nodes_path(parent.add_parser(name, **kw)))

    p = add_mkdir(with_nodes_path(sub.add_parser("synth", help="render the built-in groove to a sound file")))
    p.add_argument("-o", "--output", required=True, metavar="FILE", help=".wav, .flac or .ogg")
    p.add_argument("--bpm", type=number(40, 240), default=120.0, help="40..240 (default 120)")
    p.add_argument("--bars", type=whole(1, 128), default=16, help="1..128 (default 16)")
    p.add_argument("--samplerate", type=samplerate, default=44100)
    p.add_argument("--seed", type=seed, default=1)
    p.set_defaults(func=cmd_synth)


    p = sub.add_parser("train", help="train the models of ml.autoencoder, ml.gan, audio.onset's learned "
                                     "method and audio.tempo's beat activation")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")

    a = command(kinds, "autoencoder", help="spectrogram autoencoder from a folder of sound files")
    a.add_argument("--audio", required=True, type=Path, metavar="DIR",
                   help="every sound file under DIR is training data")
    _common(a, "for ml.autoencoder's model param")
    a.add_argument("--code", type=whole(1, 4096), default=10, help="code dimensions (default 10, as seed 002)")
    a.add_argument("--hidden", type=_positive_ints, default=(512, 128), metavar="N,N",
                   help="hidden layer sizes, encoder side (default 512,128)")
    a.add_argument("--context", type=whole(1, 256), default=4, help="frames per input (default 4)")
    a.add_argument("--epochs", type=_POS, default=40)
    a.add_argument("--batch", type=_POS, default=256)
    a.add_argument("--lr", type=number(0, 10, above=True), default=1e-3)
    a.set_defaults(func=cmd_train)

    g = command(kinds, "gan", help="GAN generator from a folder of images")
    g.add_argument("--images", required=True, type=Path, metavar="DIR",
                   help="every image under DIR is training data (cropped square, resized)")
    _common(g, "for ml.gan's model param")
    g.add_argument("--size", type=whole(8, 1024), default=128,
                   help="image size, a power of two (default 128; 256 wants a GPU)")
    g.add_argument("--latent", type=whole(1, 4096), default=64, help="latent size (default 64)")
    g.add_argument("--ngf", type=whole(1, 1024), default=32, help="generator width (default 32)")
    g.add_argument("--ndf", type=whole(1, 1024), default=32, help="discriminator width (default 32)")
    g.add_argument("--arch", choices=("upsample", "palette", "dcgan"), default="upsample",
                   help="upsample + convolution (default; clean edges), the same painting with a "
                        "few colours per image (drawings, graphics), or transposed convolutions")
    g.add_argument("--temperature", type=number(0, 100, above=True), default=1.0,
                   help="a palette generator's sampling temperature, kept in the model file: below 1 "
                        "each pixel takes one colour of its palette more firmly (crisper; default 1)")
    g.add_argument("--ema", type=number(0, 0.99999), default=0.999,
                   help="save a moving average of the generator over the steps (0: the last step)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to train (default auto: a CUDA GPU when torch sees one)")
    g.add_argument("--keep", choices=("last", "best"), default="last",
                   help="save the last step's weights (default), or the checkpoint's whose samples "
                        "were most like the training images")
    g.add_argument("--steps", type=_POS, default=4000)
    g.add_argument("--batch", type=_POS, default=32)
    g.add_argument("--lr", type=number(0, 10, above=True), default=2e-4)
    g.add_argument("--checkpoint-every", type=_POS, default=100, metavar="N")
    g.add_argument("--samples", type=Path, metavar="PNG",
                   help="an 8x8 sheet of generated images (default: the output's name with .samples.png)")
    g.set_defaults(func=cmd_train)

    for name, what, param, clips, seconds, steps in (
            ("onsets", "audio.onset's learned detector, on MIDI rendered by FluidSynth and synthesised "
                       "grooves", "audio.onset's model param, method learned", 1600, 8, 10000),
            ("beats", "audio.tempo's learned beat activation, on MIDI rendered by FluidSynth and "
                      "synthesised grooves, each clip on one tempo", "audio.tempo's beat_model param",
             600, 12, 3000)):
        o = command(kinds, name, help=what)
        _common(o, f"an .npz for {param}")
        o.add_argument("--clips", type=whole(4, 1_000_000), default=clips,
                       help=f"training clips to make (default {clips})")
        o.add_argument("--seconds", type=number(2, 600), default=float(seconds),
                       help=f"length of each clip (default {seconds})")
        o.add_argument("--steps", type=_POS, default=steps)
        o.add_argument("--batch", type=_POS, default=16)
        o.add_argument("--hidden", type=whole(4, 1024), default=64, help="network width (default 64)")
        o.add_argument("--members", type=whole(1, 64), default=1, metavar="N",
                       help="networks to train, each on its own songs from its own seed (--seed, "
                            "--seed + 1, ...), written as one file whose activation is their mean "
                            "(default 1)")
        o.add_argument("--lr", type=number(0, 10, above=True), default=2e-3)
        o.add_argument("--checkpoint-every", type=_POS, default=500, metavar="N")
        o.add_argument("--soundfont", type=Path, metavar="SF2",
                       help="a General MIDI soundfont (default: Debian's FluidR3_GM, else TimGM6mb)")
        o.add_argument("--real", type=Path, metavar="LABELS",
                       help="also train on real recordings labelled by python -m tonegraph.tools.pseudolabel "
                            "or tonegraph.tools.fofcharts (their output folder), cut into --seconds pieces")
        if name == "onsets":
            o.add_argument("--lossy", action="store_true",
                           help="also hear some clips through a lower sample rate (8-16 kHz) and some "
                                "through a lossy codec (MP3, Ogg Vorbis), as phone and streamed "
                                "recordings are")
        o.set_defaults(func=cmd_train)

    m = command(sub, "analyze", help="cut a song (or every song in a folder) at its onsets and map the "
                                     "chunks by similarity (seed 003)")
    m.add_argument("audio", type=Path, metavar="AUDIO",
                   help="a sound file, or a folder: every song under it in one map (on a Dask cluster)")
    m.add_argument("-o", "--output", required=True, type=Path, metavar="OUT",
                   help="writes OUT.json (chunks, features, positions, sections) and OUT.png")
    m.add_argument("--dims", type=int, choices=(2, 3), default=2,
                   help="3 also lays the chunks out in 3-D (slower; drawn beside the map; one song only)")
    m.add_argument("--workers", type=whole(1, 1024), metavar="N",
                   help="a folder: worker processes of the local Dask cluster (default: one per core)")
    m.add_argument("--scheduler", metavar="ADDRESS",
                   help="a folder: use the Dask cluster at this scheduler address (tcp://host:8786) "
                        "instead; its workers must see the same paths")
    m.add_argument("--cache", type=Path, metavar="DIR",
                   help="a folder: where each song's chunks are kept between runs, keyed by the "
                        "file's content (default: OUT.cache beside the output)")
    m.add_argument("--seed", type=seed, default=0)
    m.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=cmd_analyze)

    d = command(sub, "draw", help="draw squiggle images to train a GAN on")
    d.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")
    d.add_argument("--count", type=_POS, default=2000)
    d.add_argument("--size", type=whole(8, 1024), default=128)
    d.add_argument("--seed", type=seed, default=0)
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_draw)

    s = command(sub, "sounds", help="make a broad set of synthetic sounds to train an autoencoder on")
    s.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")
    s.add_argument("--count", type=whole(1, 100_000), default=80, help="clips to make (default 80)")
    s.add_argument("--seconds", type=number(0.5, 600), default=8.0, help="length of each clip (default 8)")
    s.add_argument("--samplerate", type=samplerate, default=22050)
    s.add_argument("--seed", type=seed, default=0)
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_sounds)

    add_render_parser(sub, with_nodes_path)


def _beside(output: Path, suffix: str) -> Path:
    return output.with_name(output.stem + suffix)


def cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainError, train_autoencoder, train_gan

    plot = args.plot or _beside(args.output, ".loss.png")
    _refuse_project_files(args, "-o", "--plot", "--checkpoint", "--samples")
    try:
        if args.kind in ("onsets", "beats"):
            from .beattrain import train_beats
            from .onsettrain import train_onsets

            train = train_onsets if args.kind == "onsets" else train_beats
            report = train(args.output, clips=args.clips, seconds=args.seconds, steps=args.steps,
                           batch=args.batch, hidden=args.hidden, lr=args.lr, seed=args.seed,
                           members=args.members, soundfont=args.soundfont, plot=plot,
                           checkpoint=args.checkpoint, resume=args.resume,
                           checkpoint_every=args.checkpoint_every, quiet=args.quiet, real=args.real,
                           **({"lossy": args.lossy} if args.kind == "onsets" else {}))
            what = "clips"
        elif args.kind == "autoencoder":
            report = train_autoencoder(args.audio, args.output, code=args.code, hidden=args.hidden,
                                       context=args.context, epochs=args.epochs, batch=args.batch,
                                       lr=args.lr, seed=args.seed, plot=plot,
                                       checkpoint=args.checkpoint, resume=args.resume, quiet=args.quiet)
            what = "frames"
        else:
            report = train_gan(args.images, args.output, size=args.size, latent=args.latent,
                               ngf=args.ngf, ndf=args.ndf, steps=args.steps, batch=args.batch,
                               lr=args.lr, seed=args.seed, checkpoint_every=args.checkpoint_every,
                               plot=plot, samples=args.samples or _beside(args.output, ".samples.png"),
                               checkpoint=args.checkpoint, resume=args.resume, quiet=args.quiet,
                               arch=args.arch, ema=args.ema, device=args.device, keep=args.keep,
                               temperature=args.temperature)
            what = "images"
    except TrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: run the same command with --resume to continue from the last checkpoint",
              file=sys.stderr)
        return 130
    print(f"{report.output}: trained on {report.items} {what} in {report.seconds:.0f} s, "
          f"final loss {report.final_loss:.4f}; loss plot {report.plot}")
    if report.kept_step is not None:
        print(f"kept the weights of step {report.kept_step}, the likest to the training images")
    if report.clicks is not None:
        alone = f" (its networks alone: {', '.join(map(str, report.network_clicks))})" if report.network_clicks else ""
        print(f"it hears {report.clicks[0]} of the {report.clicks[1]} clicks of a click track at 10 a second{alone}")
    if report.likeness:
        print("256 samples against the training images (1.0: alike): " + ", ".join(
            f"{k} {v:.2f}" for k, v in report.likeness.items()))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    import json

    from tonegraph.nodes.ml.chunks import analyse, plot

    out = args.output
    if out.suffix.lower() in (".json", ".png"):
        out = out.with_suffix("")
    if args.audio.is_dir():
        return _analyze_library(args, out)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("[bold]analyze[/] {task.description}"), BarColumn(),
                        TimeElapsedColumn(), disable=args.quiet)
    task = progress.add_task("", total=1)

    def tell(done: int, total: int, what: str) -> None:
        progress.update(task, completed=done, total=total, description=what)
    try:
        with progress:
            doc = analyse(args.audio, args.seed, args.dims, tell)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # soundfile raises several types for unreadable files
        print(f"error: {args.audio}: cannot read it as sound ({exc})", file=sys.stderr)
        return 1
    json_path, png_path = out.with_name(out.name + ".json"), out.with_name(out.name + ".png")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(doc, indent=1))
    plot(doc, png_path)
    print(f"{args.audio}: {len(doc['chunks'])} chunks mapped by {doc['method']}, "
          f"{len(doc['sections']) + 1} sections; wrote {json_path} and {png_path}")
    return 0


def _analyze_library(args: argparse.Namespace, out: Path) -> int:
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .library import SchedulerError, analyse_library, plot_library

    if args.dims != 2:
        print("error: --dims 3 is for one song; a folder is mapped in 2-D", file=sys.stderr)
        return 2
    progress = Progress(TextColumn("[bold]analyze[/] {task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), disable=args.quiet)
    task = progress.add_task("", total=None)

    def tell(done: int, total: int, what: str) -> None:
        progress.update(task, completed=done, total=total, description=what)
    cache = args.cache or out.with_name(out.name + ".cache")
    try:
        with progress:
            doc, report = analyse_library(args.audio, cache, args.workers, args.scheduler, args.seed, tell)
    except SchedulerError as exc:
        print(f"error: --scheduler {args.scheduler}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:        # a file cannot be read
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for line in report.failed:
        print(f"skipped {line}", file=sys.stderr)
    json_path, png_path = out.with_name(out.name + ".json"), out.with_name(out.name + ".png")
    json_path.write_text(json.dumps(doc, indent=1))
    plot_library(doc, png_path)
    print(f"{args.audio}: {report.chunks} chunks of {report.songs - len(report.failed)} songs mapped by "
          f"{doc['method']} ({report.analysed} analysed, {report.cached} from the cache in {cache}); "
          f"wrote {json_path} and {png_path}")
    return 0


def cmd_draw(args: argparse.Namespace) -> int:
    from .train import draw_squiggles

    n = draw_squiggles(args.output, args.count, args.size, args.seed, quiet=args.quiet)
    print(f"{args.output}: {n} squiggles of {args.size}x{args.size}")
    return 0


def cmd_sounds(args: argparse.Namespace) -> int:
    from .sounds import make_sounds

    try:
        made = make_sounds(args.output, args.count, args.seed, args.samplerate, args.seconds,
                           quiet=args.quiet)
    except OSError as exc:
        print(f"error: cannot write under {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"{args.output}: {args.count} clips of {args.seconds:g} s (" +
          ", ".join(f"{v} {k}" for k, v in made.items()) + ")")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    import soundfile as sf

    from tonegraph.nodes.audio.synth import render_groove

    samples, hits, beats = render_groove(args.samplerate, args.bpm, args.bars, args.seed)
    try:
        sf.write(args.output, samples, args.samplerate, subtype="PCM_16")
    except Exception as exc:  # soundfile reports format and path problems alike
        print(f"error: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.output}: {len(samples) / args.samplerate:.2f} s, {len(beats)} beats at "
          f"{args.bpm:g} BPM, {len(hits)} hits")
    return 0
