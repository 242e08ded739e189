"""Register one command per data set (``train digits``, ``train fashion-mnist``, ``train mnist``) from one function.

The images wing names the data set as the command's subject, as ``storylab train digits`` always
did: ``storylab train fashion-mnist``, ``storylab sample fashion-mnist``, ``storylab evaluate
fashion-mnist``. Each such command is the same function with that data set's defaults (checkpoint,
output, training length) written into its signature, so ``--help`` shows the true defaults. Every
one also takes ``--data`` (a data-set name or a folder of MNIST-format IDX files), the option by
which the commands of auxiliary models (``train classifier``, ``train features``, ``train controlnet``,
``train zoo``) name their data set.
"""

from __future__ import annotations

import copy
import functools
import inspect
from typing import Any, Callable

import typer


def with_defaults(fn: Callable[..., Any], doc: str | None = None, **defaults: Any) -> Callable[..., Any]:
    """A wrapper of the typer command ``fn`` whose option defaults ``defaults`` are replaced (signature and help)."""
    sig = inspect.signature(fn)
    unknown = set(defaults) - set(sig.parameters)
    if unknown:
        raise ValueError(f"{fn.__name__} has no parameters {sorted(unknown)}")
    params = []
    for p in sig.parameters.values():
        if p.name in defaults:
            option = copy.copy(p.default)
            if isinstance(option, typer.models.ParameterInfo):
                option.default = defaults[p.name]
                p = p.replace(default=option)
            else:
                p = p.replace(default=defaults[p.name])
        params.append(p)

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        return fn(**kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    if doc is not None:
        wrapper.__doc__ = doc
    return wrapper


def register(app: typer.Typer, name: str, fn: Callable[..., Any], doc: str | None = None, **defaults: Any) -> None:
    """``app.command(name)`` of :func:`with_defaults` (``fn`` with this data set's defaults)."""
    app.command(name)(with_defaults(fn, doc, **defaults))
