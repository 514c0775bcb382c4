"""Adaptations: create (validated upload), cancel, run (the training task calls it)."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference.adapt import AdaptationCancelled, AdaptSettings, DataError, parse_examples
from inference.errors import ModelError
from inference.registry import NAME_RE
from pawa.adaptation.models import Adaptation
from pawa.llm.store import model_store

log = logging.getLogger(__name__)


class AdaptationInvalid(Exception):
    """The request cannot start a training run. `code` names the problem for the page;
    `data_error` is set when the example file is bad (its line and problem)."""

    def __init__(self, code: str, *, data_error: DataError | None = None, field: str = ""):
        super().__init__(code)
        self.code, self.data_error, self.field = code, data_error, field


def adaptations_dir() -> Path:
    return Path(settings.VAR_DIR) / "adaptations"


def adaptation_create(
    *, user, base_model: str, name: str, data: bytes, data_name: str, holdout: bytes | None = None,
    holdout_name: str = "", holdout_fraction: float = 0.0, steps: int | None = None, rank: int | None = None,
    learning_rate: float | None = None, retrieval: bool | None = None,
) -> Adaptation:
    """Check the request and the files, store the files, queue the training task.

    Raises AdaptationInvalid (code "base", "name_invalid", "name_taken", "data" or "holdout",
    the last two with the DataError naming the line and the problem). Nothing is stored then.
    """
    if not model_store().is_installed(base_model):
        raise AdaptationInvalid("base", field="base_model")
    if not NAME_RE.match(name or ""):
        raise AdaptationInvalid("name_invalid", field="name")
    taken = Adaptation.objects.filter(name=name, status__in=[Adaptation.Status.QUEUED, Adaptation.Status.RUNNING])
    if model_store().is_installed(name) or taken.exists():
        raise AdaptationInvalid("name_taken", field="name")
    try:
        examples = parse_examples(data, data_name)
    except DataError as exc:
        raise AdaptationInvalid("data", data_error=exc, field="data") from exc
    if holdout:
        try:
            parse_examples(holdout, holdout_name, heldout=True)
        except DataError as exc:
            raise AdaptationInvalid("holdout", data_error=exc, field="holdout") from exc
    elif holdout_fraction > 0 and len(examples) - max(1, round(len(examples) * holdout_fraction)) < 2:
        raise AdaptationInvalid("data", data_error=DataError("too_few"), field="holdout_fraction")
    chosen = AdaptSettings.for_base(model_store().get(base_model), steps=steps, rank=rank,
                                    learning_rate=learning_rate, retrieval_k=0 if retrieval is False else None)
    folder = adaptations_dir() / uuid.uuid4().hex
    folder.mkdir(parents=True)
    data_path = folder / f"data{Path(data_name).suffix.lower()}"
    data_path.write_bytes(data)
    holdout_path = ""
    if holdout:
        holdout_path = str(folder / f"heldout{Path(holdout_name).suffix.lower()}")
        Path(holdout_path).write_bytes(holdout)
    with transaction.atomic():
        adaptation = Adaptation.objects.create(
            created_by=user, base_model=base_model, name=name, data_file=str(data_path), data_name=data_name[:200],
            data_sha256=hashlib.sha256(data).hexdigest(), examples=len(examples), holdout_file=holdout_path,
            holdout_fraction=0.0 if holdout else holdout_fraction, steps=chosen.steps,
            rank=chosen.rank, learning_rate=chosen.learning_rate, retrieval_k=chosen.retrieval_k,
        )
        from pawa.adaptation.tasks import adaptation_train

        transaction.on_commit(lambda: adaptation_train.delay(adaptation.pk))
    return adaptation


def adaptation_cancel(*, adaptation: Adaptation) -> bool:
    """Ask a queued or running training to stop (the task checks before every step); a queued
    one is cancelled at once. Returns whether anything changed."""
    changed = Adaptation.objects.filter(pk=adaptation.pk, status=Adaptation.Status.QUEUED).update(
        status=Adaptation.Status.CANCELLED, cancel_requested=True, finished_at=timezone.now())
    changed += Adaptation.objects.filter(pk=adaptation.pk, status=Adaptation.Status.RUNNING).update(
        cancel_requested=True)
    return bool(changed)


def adaptation_run(*, adaptation_id: int) -> None:
    """Train, install and measure (inference.adapt.adapt), writing progress to the row.

    Claims the row (queued → running) first: a second delivery of the task does nothing."""
    from inference.adapt import AdaptResult, adapt

    claimed = Adaptation.objects.filter(pk=adaptation_id, status=Adaptation.Status.QUEUED).update(
        status=Adaptation.Status.RUNNING, started_at=timezone.now(), phase="start")
    if not claimed:
        return
    adaptation = Adaptation.objects.get(pk=adaptation_id)
    last_write = [0.0]

    def progress(state) -> None:
        now = time.monotonic()
        if state.phase == "train" and state.step < state.steps and now - last_write[0] < 0.5:
            return
        last_write[0] = now
        Adaptation.objects.filter(pk=adaptation_id).update(
            phase=state.phase, step=state.step, loss=state.loss, elapsed_seconds=state.elapsed,
            eta_seconds=state.eta)

    def should_cancel() -> bool:
        return Adaptation.objects.filter(pk=adaptation_id, cancel_requested=True).exists()

    fields = {}
    try:
        result = adapt(
            model_store(), base=adaptation.base_model, data=adaptation.data_file, name=adaptation.name,
            holdout=adaptation.holdout_file or None, holdout_fraction=adaptation.holdout_fraction,
            settings=AdaptSettings(steps=adaptation.steps, rank=adaptation.rank, alpha=2 * adaptation.rank,
                                   learning_rate=adaptation.learning_rate, retrieval_k=adaptation.retrieval_k),
            data_name=adaptation.data_name, progress=progress, should_cancel=should_cancel,
        )
        fields = {"status": Adaptation.Status.COMPLETE, "phase": "done",
                  "results": result.card.measurements.get("adaptation", {}) | {"losses": result.losses}}
    except AdaptationCancelled:
        fields = {"status": Adaptation.Status.CANCELLED}
    except DataError as exc:
        fields = {"status": Adaptation.Status.FAILED, "error_code": exc.code, "error_line": exc.line,
                  "error_detail": exc.detail}
    except ModelError as exc:
        fields = {"status": Adaptation.Status.FAILED, "error_code": "model", "error_detail": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the page must say the run ended
        log.exception("adaptation %s failed", adaptation_id)
        fields = {"status": Adaptation.Status.FAILED, "error_code": "internal", "error_detail": str(exc)[:2000]}
    finally:
        fields = fields or {"status": Adaptation.Status.FAILED, "error_code": "internal"}
        Adaptation.objects.filter(pk=adaptation_id).update(finished_at=timezone.now(), **fields)
