"""The library's exceptions."""

from __future__ import annotations


class FmiclError(ValueError):
    """Base of the library's errors: the message is meant for the user, as it is."""


class RegistryError(FmiclError):
    """A component that is not registered, registered twice, or registered wrongly.

    Example:
        >>> import fmicl_registry as fm
        >>> try:
        ...     fm.get_divergence("jss")
        ... except fm.RegistryError as err:
        ...     print("Did you mean 'js'" in str(err))
        True
    """


class DivergenceSpecError(FmiclError):
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
