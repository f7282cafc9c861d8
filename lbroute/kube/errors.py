"""The Kubernetes client's exceptions, turned into lbroute's own, in one place.

Every call to the API server runs inside :func:`translated`, and loading the client's
configuration inside :func:`loading_config`; what the client raises comes out as one of
the :class:`~lbroute.model.errors.KubernetesError` types, raised ``from`` the original::

    ApiException 409                 -> Conflict      read again, retry
    ApiException 404                 -> NotFound
    ApiException 410                 -> Gone          list again
    ApiException 429, 5xx, status 0  -> Unavailable   retry with backoff (0: TLS failed)
    ApiException any other status    -> Rejected      permanent
    urllib3 / http.client / OSError  -> Unavailable   no answer: refused, reset, timed out
    a body that is not JSON          -> Unavailable   a broken answer
    ConfigException, an unreadable
    or malformed kubeconfig          -> KubernetesError (not retryable)

A watch reports its failures as ``ERROR`` events carrying a Status; :func:`from_status`
maps their code the same way. Callers catch lbroute's types, never the client's, and log
them with :func:`describe`, the one formatter of a Kubernetes error.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager

import urllib3.exceptions
import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException

from lbroute.model.errors import (
    Conflict,
    Gone,
    KubernetesError,
    NotFound,
    Rejected,
    Unavailable,
)

NO_ANSWER = (
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
    json.JSONDecodeError,
    UnicodeDecodeError,
)
"""What a call raises when the API server did not answer, or not with JSON."""

_BODY = 300
"""Characters of an error's response body kept in its message."""


def from_status(status: int, reason: str, message: str) -> KubernetesError:
    """The lbroute error for an HTTP status the API answered with."""
    kind: type[KubernetesError]
    if status == 409:
        kind = Conflict
    elif status == 404:
        kind = NotFound
    elif status == 410:
        kind = Gone
    elif 400 <= status < 500 and status != 429:
        kind = Rejected
    else:
        kind = Unavailable
    return kind(message, status=status, reason=reason)


def describe(exc: BaseException) -> str:
    """One line for a log: what the API said, or why it did not answer."""
    if isinstance(exc, ApiException):
        said = f"API said {exc.status} {exc.reason}"
        return f"{said}: {str(exc.body)[:_BODY]}" if exc.body else said
    if isinstance(exc, KubernetesError):
        return str(exc)
    if isinstance(exc, NO_ANSWER):
        return f"API unreachable ({type(exc).__name__}: {exc})"
    return f"{type(exc).__name__}: {exc}"


def translate(exc: ApiException | BaseException) -> KubernetesError:
    """The lbroute error for an exception of the client (see the module's table)."""
    if isinstance(exc, ApiException):
        return from_status(int(exc.status or 0), str(exc.reason or ""), describe(exc))
    return Unavailable(describe(exc))


@contextmanager
def translated() -> Iterator[None]:
    """Around every call to the API: the client's exceptions come out as lbroute's."""
    try:
        yield
    except (ApiException, *NO_ANSWER) as exc:
        raise translate(exc) from exc


@contextmanager
def loading_config(where: str) -> Iterator[None]:
    """Around loading a kubeconfig or the in-cluster service account (``where``, as the
    message names it)."""
    cannot = f"cannot load the Kubernetes configuration from {where}"
    try:
        yield
    except (ConfigException, OSError, yaml.YAMLError) as exc:
        raise KubernetesError(f"{cannot}: {exc}") from exc
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        # A kubeconfig of the wrong shape: the loader indexes into it unchecked.
        raise KubernetesError(f"{cannot}: malformed ({describe(exc)})") from exc
