"""The ``tonegraph`` command line.

Every expected failure (a bad patch, a missing file, a node that cannot start) ends with
one line per problem on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import NoReturn


from . import __version__
from .args import add_mkdir, check_extras, check_outputs, networks, number, port, whole
from .errors import NodeError, TonegraphError, closest, describe, did_you_mean, display_path
from .graph import load_graph, to_dot
from .node import missing_extra
from .reference import node_markdown, reference_markdown
from .registry import Registry, default_registry
from .schema import patch_schema

log = logging.getLogger("tonegraph")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors (--log-json)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"time": record.created, "level": record.levelname.lower(),
                           "logger": record.name, "message": record.getMessage()})


class _Stderr(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record comes, not as it was at set-up: a
    run inside a program that swaps it (a test's capture, an embedding app) never logs
    into a closed stream from a thread that outlives the swap."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _setup_logging(level: str, as_json: bool = False) -> None:
    # journald keeps one line per record readable; the level word leads for grep.
    handler = _Stderr()
    handler.setFormatter(JsonFormatter() if as_json else
                         logging.Formatter("tonegraph: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))


def _registry(args: argparse.Namespace) -> Registry:
    return default_registry([Path(p) for p in getattr(args, "nodes_path", None) or []],
                            plugins=not getattr(args, "builtin", False))


def _fail(lines: list[str] | str) -> int:
    for line in [lines] if isinstance(lines, str) else lines:
        print(line, file=sys.stderr)
    return 1


def cmd_validate(args: argparse.Namespace) -> int:
    registry = _registry(args)
    bad = 0
    for path in args.patches:
        graph, errors = load_graph(path, registry)
        if errors:
            bad += 1
            _fail([str(e) for e in errors])
        elif not args.quiet:
            print(f"{display_path(Path(path))}: ok ({len(graph.nodes)} nodes, {len(graph.edges)} wires)")
    return 1 if bad else 0


def cmd_run(args: argparse.Namespace) -> int:
    from .runtime import OscOptions, Runtime

    registry = _registry(args)
    graph, errors = load_graph(args.patch, registry, args.set)
    if errors:
        return _fail([str(e) for e in errors])
    if args.status:
        from .osc.transport import parse_destination

        try:
            parse_destination(args.status)
        except ValueError as exc:
            return _fail(f"error: --status: {exc}")
    osc = None if args.offline else OscOptions(
        host=args.osc_host, port=None if args.no_osc else args.osc_port,
        query_port=args.oscquery_port, status_to=args.status, status_interval=args.status_interval,
        allow=args.osc_allow)
    runtime = Runtime(graph, registry, offline=args.offline, headless=args.headless,
                      duration=args.duration, fps=args.fps, osc=osc,
                      watch=not (args.offline or args.no_watch), sets=args.set)
    runtime.policy.restart_after = args.restart_failing
    if args.offline and args.duration is None and not runtime.sources:
        return _fail(f"{display_path(Path(args.patch))}: error: an offline run of a patch without "
                     f"file sources never ends by itself; give --duration SECONDS")

    def stop(signum, frame):  # noqa: ARG001
        runtime.request_stop()

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    old[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda signum, frame: runtime.request_reload())
    try:
        log.info("running %s (%d nodes) at %g fps%s%s", graph.name, len(graph.nodes), runtime.fps,
                 ", offline" if args.offline else "", ", headless" if args.headless else "")
        report = runtime.run()
    except NodeError as exc:
        return _fail(f"error: {exc}")
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    log.info("%s", report.summary())
    return 0


def cmd_learn(args: argparse.Namespace) -> int:
    from tonegraph.tools.learn import PatchInvalid, learn

    try:
        print(learn(args.patch, args.target, _registry(args), midi=args.midi, osc_port=args.osc_port,
                    timeout=args.timeout, out_range=args.range))
    except PatchInvalid as exc:
        return _fail([str(e) for e in exc.errors])
    return 0


def cmd_nodes(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if args.type:
        cls = registry.get(args.type)
        if cls is None:
            return _fail(f"error: unknown node type '{args.type}'{did_you_mean(args.type, registry.names())}")
        print(node_markdown(cls, level=1))
        missing = missing_extra(cls)
        if missing:
            print(f"Not installed here: {missing}")
        return 0
    width = max(len(n) for n in registry.names())
    for name in registry.names():
        cls = registry[name]
        needs = f"  [needs: pip install 'tonegraph[{cls.extra}]']" if missing_extra(cls) else ""
        print(f"{name:<{width}}  {cls.description}{needs}")
    return 0


def _emit(text: str, output: str | None) -> int:
    if output:
        Path(output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    return _emit(json.dumps(patch_schema(_registry(args)), indent=2) + "\n", args.output)


def cmd_docs(args: argparse.Namespace) -> int:
    return _emit(reference_markdown(_registry(args)), args.output)


def cmd_graph(args: argparse.Namespace) -> int:
    registry = _registry(args)
    graph, errors = load_graph(args.patch, registry)
    if errors:
        return _fail([str(e) for e in errors])
    if args.plan:
        from .plan import make_plan

        return _emit(make_plan(graph, registry).describe(), args.output)
    dot = to_dot(graph)
    out = Path(args.output) if args.output else None
    if out is None:
        sys.stdout.write(dot)
        return 0
    fmt = out.suffix.lower().lstrip(".")
    if fmt in ("dot", "gv", ""):
        out.write_text(dot)
        return 0
    if fmt not in ("svg", "png", "pdf"):
        return _fail(f"error: cannot write '{out.suffix}' files; use .dot, .svg, .png or .pdf")
    exe = shutil.which("dot")
    if exe is None:
        return _fail(f"error: writing {fmt.upper()} needs Graphviz's 'dot' (Debian package "
                     f"graphviz); write {out.with_suffix('.dot')} instead")
    proc = subprocess.run([exe, f"-T{fmt}", "-o", str(out)], input=dot, text=True,
                          capture_output=True, check=False)
    if proc.returncode != 0:
        return _fail(f"error: Graphviz failed: {proc.stderr.strip()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="tonegraph", description="Real-time node graphs from music.")
    ap.add_argument("--version", action="version", version=f"tonegraph {__version__}")
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    ap.add_argument("--log-json", action="store_true", help="log JSON lines (time, level, logger, message)")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_nodes_path(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--nodes-path", action="append", metavar="DIR",
                       help="also load node types from the .py files in DIR (repeatable)")
        return p

    p = with_nodes_path(sub.add_parser("validate", help="check patches; one line per problem"))
    p.add_argument("patches", nargs="+", metavar="PATCH")
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    p.set_defaults(func=cmd_validate)

    p = with_nodes_path(sub.add_parser("run", help="run a patch"))
    p.add_argument("patch", metavar="PATCH")
    p.add_argument("--headless", action="store_true", help="open no window")
    p.add_argument("--offline", action="store_true",
                   help="virtual clock: as fast as possible, same input gives same output")
    p.add_argument("--duration", type=number(0, above=True), metavar="S",
                   help="stop after S seconds of media time")
    p.add_argument("--fps", type=number(0, 1000, above=True), metavar="N",
                   help="frame rate (default: the patch's)")
    p.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a param (repeatable)")
    p.add_argument("--restart-failing", type=whole(0), default=50, metavar="N",
                   help="restart a node that failed N times within 10 s (0: never; default 50)")
    watch = p.add_mutually_exclusive_group()
    watch.add_argument("--watch", action="store_true",
                       help="reload the patch when it or a file it uses is saved (the default "
                            "for real-time runs)")
    watch.add_argument("--no-watch", action="store_true",
                       help="do not watch; SIGHUP still reloads")
    osc = p.add_argument_group("OSC (real-time runs)")
    osc.add_argument("--osc-port", type=port, default=9000, metavar="N",
                     help="listen for OSC control here (0: any free port; default 9000)")
    osc.add_argument("--osc-host", default="127.0.0.1", metavar="ADDR",
                     help="interface to listen on (default 127.0.0.1; 0.0.0.0 opens it to the network)")
    osc.add_argument("--no-osc", action="store_true", help="do not listen for OSC")
    osc.add_argument("--osc-allow", type=networks, metavar="NETS",
                     help="addresses or networks (comma-separated, or 'none') answered in full: "
                          "queries by pattern, /tonegraph/listen without a token, replies larger "
                          "than the request (default: this machine, 127.0.0.0/8 and ::1)")
    osc.add_argument("--oscquery-port", type=port, metavar="N",
                     help="OSCQuery HTTP port (default: the OSC port + 1)")
    osc.add_argument("--status", metavar="HOST:PORT",
                     help="send /tonegraph/status heartbeats and /tonegraph/error reports here")
    osc.add_argument("--status-interval", type=number(0.01, 3600), default=1.0, metavar="S",
                     help="seconds between heartbeats to --status (default 1)")
    p.set_defaults(func=cmd_run)

    from tonegraph.tools.learn import OSC_PORT, TIMEOUT, value_range

    p = with_nodes_path(sub.add_parser("learn", help="wire an input to the next MIDI control or OSC "
                                                     "message that arrives, in the patch file"))
    p.add_argument("patch", metavar="PATCH")
    p.add_argument("target", metavar="NODE.INPUT")
    p.add_argument("--midi", metavar="PORT", help="listen on this MIDI input (name substring; default: "
                                                  "every input, and a virtual port 'tonegraph learn')")
    p.add_argument("--osc-port", type=port, default=OSC_PORT, metavar="N",
                   help=f"listen for OSC on 127.0.0.1:N (0: any free port; default {OSC_PORT})")
    p.add_argument("--range", type=value_range, metavar="LO,HI",
                   help="map the control's 0..1 to LO..HI through a control.map")
    p.add_argument("--timeout", type=number(0, 86400, above=True), default=TIMEOUT, metavar="S",
                   help=f"give up after S seconds (default {TIMEOUT:g})")
    p.set_defaults(func=cmd_learn)

    p = with_nodes_path(sub.add_parser("nodes", help="list node types, or show one"))
    p.add_argument("type", nargs="?", metavar="TYPE")
    p.set_defaults(func=cmd_nodes)

    p = add_mkdir(with_nodes_path(sub.add_parser("schema", help="JSON Schema of patch files, for editors")))
    p.add_argument("-o", "--output", metavar="FILE")
    p.add_argument("--builtin", action="store_true",
                   help="only tonegraph's own node types, not installed plugins (what 'make docs' writes)")
    p.set_defaults(func=cmd_schema)

    p = add_mkdir(with_nodes_path(sub.add_parser("docs", help="the node reference in Markdown")))
    p.add_argument("-o", "--output", metavar="FILE")
    p.add_argument("--builtin", action="store_true",
                   help="only tonegraph's own node types, not installed plugins (what 'make docs' writes)")
    p.set_defaults(func=cmd_docs)

    from tonegraph.tools.commands import add_parsers as add_tool_parsers

    add_tool_parsers(sub, with_nodes_path)

    p = add_mkdir(with_nodes_path(sub.add_parser("graph", help="draw a patch: DOT, or SVG/PNG with Graphviz")))
    p.add_argument("patch", metavar="PATCH")
    p.add_argument("-o", "--output", metavar="FILE", help=".dot, .svg, .png or .pdf (default: DOT on stdout)")
    p.add_argument("--plan", action="store_true",
                   help="print the run plan instead: each domain's schedule, and how every input is fed")
    p.set_defaults(func=cmd_graph)
    return ap


def _chosen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command's own parser that ``args`` went through, deepest first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)
            if name in action.choices:
                return _chosen(action.choices[name], args)
    return parser


class Parser(argparse.ArgumentParser):
    """argparse with a mistake answered in one line (the usage block before it hid the
    answer), the nearest command for one misspelt, and no abbreviations (``--headles``
    was taken as --headless, ``--d 5`` as whichever option argparse chose)."""

    def __init__(self, *args, **kw) -> None:
        kw.setdefault("allow_abbrev", False)
        super().__init__(*args, **kw)

    def error(self, message: str) -> NoReturn:
        m = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if m:       # the commands from the parser itself: argparse words its list differently by version
            commands = [name for a in self._actions if isinstance(a, argparse._SubParsersAction)
                        for name in a.choices]
            hint = did_you_mean(m.group(1), commands)
            message = f"no command '{m.group(1)}'" + (hint or f"; commands: {', '.join(commands)}")
        self.exit(2, f"{self.prog}: error: {message}; '{self.prog} --help' lists what it takes\n")


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse; an option the command does not know is refused by that command's parser
    (its usage, not the top level's), with the nearest option it has."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = _chosen(parser, args)
        known = [o for a in command._actions for o in a.option_strings]
        guess = closest(extra[0].split("=")[0], known)
        hint = f" (did you mean {guess}?)" if guess else ""
        command.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = _parse(parser, argv)
    check_outputs(parser, args)
    check_extras(parser, args)
    _setup_logging(args.log_level, args.log_json)
    try:
        return args.func(args)
    except TonegraphError as exc:
        # Patch errors come as FILE:LINE:COL: error: ... lines already.
        return _fail([line if ": error: " in line else f"error: {line}" for line in str(exc).splitlines()])
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last guard: one line, never a traceback
        log.debug("internal error", exc_info=True)
        return _fail(f"error: internal error: {describe(exc)} (--log-level debug shows where)")
    finally:
        if argv is None and threading.current_thread() is threading.main_thread():
            # The program is exiting: a Ctrl-C from now on (while threads, GL and files
            # wind down) ends it at once, not with a KeyboardInterrupt traceback.
            signal.signal(signal.SIGINT, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
