"""Dependencies a trainer in process can run without: pyzmq (telemetry and agent channels, only when an address is
given) and jsonschema (validating a spec; a resolved spec needs none). A bare GPU image may lack them; whoever
uses one that is missing gets an ImportError that names the package."""
from __future__ import annotations


class _Missing:
    def __init__(self, package: str, why: str, error: ImportError) -> None:
        self._package, self._why, self._error = package, why, error

    def __getattr__(self, name: str):
        raise ImportError(f"{self._package} is not installed: it is needed for {self._why} "
                          f"(pip install {self._package})") from self._error

    def __call__(self, *args, **kwargs):
        return self.__getattr__("__call__")


try:
    import zmq
except ImportError as e:  # pragma: no cover - exercised on hosts without pyzmq
    zmq = _Missing("pyzmq", "telemetry and the agent's trainer channels", e)

try:
    from jsonschema import Draft7Validator
except ImportError as e:  # pragma: no cover
    Draft7Validator = _Missing("jsonschema", "validating job specs", e)


HAVE_JSONSCHEMA = not isinstance(Draft7Validator, _Missing)
