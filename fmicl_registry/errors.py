"""The library's exceptions, all in one place.

Every error the library raises for something a user can fix derives from :class:`FmiclError`;
its message is meant for the user as it is (the command line prints it, without a traceback,
and exits with status 2). Errors about input (a name, an option, a file) are also
``ValueError``; :class:`TrainingDiverged` is about a computation, so it is a ``RuntimeError``.
"""

from __future__ import annotations


class FmiclError(Exception):
    """Base of the library's errors: the message is meant for the user, as it is.

    Example:
        >>> import fmicl_registry as fm
        >>> try:
        ...     fm.get_objective("fmicl", divergence="no-such-divergence")
        ... except fm.FmiclError as err:  # catches every error of the library
        ...     print(type(err).__name__)
        RegistryError
    """


class RegistryError(FmiclError, ValueError):
    """A component that is not registered, registered twice, or registered wrongly.

    Example:
        >>> import fmicl_registry as fm
        >>> try:
        ...     fm.get_divergence("jss")
        ... except fm.RegistryError as err:
        ...     print("Did you mean 'js'" in str(err))
        True
    """


class DivergenceSpecError(FmiclError, ValueError):
    """A generator text, a parameter or a spec file that cannot define an f-divergence.

    The message says what is wrong and, where there is one, where: ``column`` is the 0-based
    offset in the generator text, and the message ends with the text and a caret under it.

    Example:
        >>> import fmicl_registry as fm
        >>> try:
        ...     fm.define_divergence("u**2 +", name="broken")
        ... except fm.DivergenceSpecError as err:
        ...     print(type(err).__name__)
        DivergenceSpecError
    """

    def __init__(self, message: str, *, text: str | None = None, column: int | None = None):
        self.reason = message
        self.text = text
        self.column = column
        if text is not None and column is not None:
            message = f"{message} (at column {column + 1})\n    {text}\n    {' ' * column}^"
        elif text is not None:
            message = f"{message}\n    in: {text}"
        super().__init__(message)


class SimilarityError(FmiclError, ValueError):
    """A similarity that cannot be built (bad option) or does not follow the protocol.

    Example:
        >>> import fmicl_registry as fm
        >>> try:
        ...     fm.get_similarity("gaussian", gamma=-1.0)
        ... except fm.SimilarityError as err:
        ...     print(err)
        gamma must be a finite number > 0, got -1.0
    """


class ObjectiveError(FmiclError, ValueError):
    """An objective that cannot be built or called as asked; the message says why.

    Example:
        >>> import fmicl_registry as fm
        >>> try:
        ...     fm.get_objective("fmicl", divergence="sh", similarity="cosine")
        ... except fm.ObjectiveError as err:
        ...     print("gaussian" in str(err))
        True
    """


class BackboneError(FmiclError, ValueError):
    """A backbone that cannot be built as asked (input shape, options).

    Example:
        >>> from fmicl_registry.backbones import vit_small
        >>> try:
        ...     vit_small(input_shape=(3, 30, 30))
        ... except BackboneError as err:
        ...     print("not divisible" in str(err))
        True
    """


class ArchitectureError(FmiclError, ValueError):
    """An architecture that cannot be built as asked (backbone, objective or options).

    Example:
        >>> import fmicl_registry as fm
        >>> from fmicl_registry.architectures import MoCo
        >>> from fmicl_registry.backbones import SmallCNN
        >>> try:
        ...     MoCo(SmallCNN((1, 8, 8)), fm.get_objective("infonce"))
        ... except ArchitectureError as err:
        ...     print("queue_size=0" in str(err))
        True
    """


class DatasetError(FmiclError, ValueError):
    """A data set that is missing, unreadable, or asked for in a way it cannot serve.

    The message names the data set, the folder and files it expected, and how to fix it.

    Example:
        >>> import fmicl_registry as fm
        >>> try:
        ...     fm.get_component("datasets", "digits", split="validation")
        ... except fm.FmiclError as err:
        ...     print("'train', 'test', 'pretrain'" in str(err))
        True
    """


class AugmentationError(FmiclError, ValueError):
    """An augmentation recipe that cannot be built as asked (shape, options).

    Example:
        >>> import fmicl_registry as fm
        >>> from fmicl_registry.data import get_augmentation
        >>> try:
        ...     get_augmentation("digits", (1, 8, 8), (0.3,), (0.4,), degree=5)
        ... except fm.AugmentationError as err:
        ...     print("did you mean 'degrees'" in str(err))
        True
    """


class EvaluationError(FmiclError, ValueError):
    """Features, labels or settings that an evaluation cannot use; the message says which and why.

    Example:
        >>> import torch
        >>> from fmicl_registry.evaluation import EvaluationError, knn_accuracy
        >>> try:
        ...     knn_accuracy(torch.ones(3, 2), torch.zeros(2, dtype=torch.long),
        ...                  torch.ones(1, 2), torch.zeros(1, dtype=torch.long))
        ... except EvaluationError as err:
        ...     print(err)
        train_features has 3 rows but train_labels has 2
    """


class SpecError(FmiclError, ValueError):
    """An experiment spec that cannot be used: the message names the file and the key.

    Example:
        >>> import fmicl_registry as fm
        >>> try:
        ...     fm.load_spec(None, ["train.epoch=5"])
        ... except fm.SpecError as err:
        ...     print("did you mean train.epochs" in str(err))
        True
    """


class SpecWarning(UserWarning):
    """A spec that runs, but probably not as its author meant (a warm-up longer than the run,
    a spec that sets nothing); the command line prints it as one ``warning:`` line."""


class CheckpointError(FmiclError, ValueError):
    """A checkpoint that is missing, unreadable, corrupted, not written by fmicl-registry,
    of another format or of another spec; the message names the file and what to do.

    Example:
        >>> import fmicl_registry as fm, tempfile
        >>> from fmicl_registry.training import evaluate_checkpoint
        >>> try:
        ...     evaluate_checkpoint(tempfile.mkdtemp())
        ... except fm.FmiclError as err:
        ...     print(type(err).__name__)
        CheckpointError
    """


class SpecChanged(CheckpointError):
    """The spec a run is resumed or evaluated with differs from the one its checkpoint was
    trained with in keys that change what the run computes; the message names each key."""


class TrainingDiverged(FmiclError, RuntimeError):
    """The loss or a gradient stopped being finite; the last good checkpoint is kept.

    A computation that failed, not an input that is wrong, so it is not a ``ValueError``.

    Example:
        >>> import fmicl_registry as fm
        >>> [issubclass(fm.TrainingDiverged, kind) for kind in (RuntimeError, ValueError)]
        [True, False]
    """


class DistributedError(FmiclError, RuntimeError):
    """The processes of a multi-process run could not start together."""


class PluginError(FmiclError, RuntimeError):
    """A plugin failed to load or registered a component wrongly (raised only in strict mode;
    otherwise a warning)."""


class BenchError(FmiclError, ValueError):
    """A benchmark that cannot run as asked: the message says why."""
