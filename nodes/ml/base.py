"""What ml.autoencoder and ml.gan share: a weights file, a device, a batched model."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from tonegraph.engine import params as P
from tonegraph.engine.batch import Batched
from tonegraph.engine.errors import NodeError, display_path

#: The shipped weights (made by `make models`; docs/training-data.md).
MODELS_DIR = Path(__file__).parent / "models"

MODEL_PARAMS = {
    "model": P.path(None, "Weights file from 'tonegraph train' (relative to the patch); "
                          "none: the shipped model."),
    "device": P.choice("auto", ("auto", "cpu", "cuda"), "Where the model runs; auto: CUDA if "
                       "there is a GPU, else the CPU.", restart=True),
    "precision": P.choice("auto", ("auto", "float32", "float16", "bfloat16"), "Number format; auto: "
                          "float16 on CUDA where it is safe (images), else float32; bfloat16: a "
                          "generator on a CPU with its instructions, faster, a few edge pixels differ.",
                          restart=True),
}


class ModelNode(Batched):
    """A node running a shared model (see engine/batch.py); torch loads in configure."""

    kind: ClassVar[str] = ""
    shipped: ClassVar[str] = ""
    extra, extra_modules = "ml", ("torch",)

    @classmethod
    def check(cls, params, wired, ctx):
        if params.get("model"):
            path = ctx.resolve_input(params["model"])
            if not path.is_file():
                return [("model", f"no such model file: {display_path(path)} "
                                  f"(make one with 'tonegraph train {cls.kind}')")]
        return []

    def model_path(self) -> Path:
        return self.ctx.resolve_input(self.p.model) if self.p.model else MODELS_DIR / self.shipped

    def configure(self) -> None:
        from .models import ModelError, share_cores, shared

        try:
            self.model = shared(self.kind, self.model_path(), self.p.device, self.p.precision)
            if self.model.device.type == "cpu":
                share_cores(self.ctx.sharing)
        except ModelError as exc:
            raise NodeError(self.id, str(exc)) from None
        self.setup()

    def setup(self) -> None:
        """Set up what depends on the loaded model (``self.model``)."""

    def files(self) -> list[Path]:
        return [self.model_path()]

    def close(self) -> None:
        self.model = None
