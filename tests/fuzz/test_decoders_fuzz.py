"""Random bytes into every device decoder in ``firmware_bridge``.

Decoders are discovered by convention, so a new protocol is covered without editing this
file: public module-level functions of ``firmware_bridge.<proto>.*`` (simulators and
tests excluded) that take device input -- ``bytes``, modem ``str`` lines, Modbus
``list[int]`` registers -- see :func:`_is_decoder`. Each must return or raise
``firmware_bridge.base.DecodeError``: any other exception would reach the edge agent's
read loop as a crash instead of a counted reject.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import pkgutil
import typing
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import firmware_bridge
from firmware_bridge.base import DecodeError

_SKIP_MODULES = (".tests", ".simulator", ".pty")


#: Inputs a decoder may take from a device, and how to fuzz each.
_INPUTS: dict[Any, st.SearchStrategy[Any]] = {
    bytes: st.binary(max_size=300),
    str: st.text(max_size=200),  # modem response lines (e.g. Wi-SUN SK commands)
    list[int]: st.lists(st.integers(-1, 0x1_0000), max_size=80),  # Modbus registers
    list[str]: st.lists(st.text(max_size=80), max_size=12),
}
_SCALARS: dict[Any, st.SearchStrategy[Any]] = {int: st.integers(-1, 0x1_0000)}


def _is_decoder(name: str, types: list[Any]) -> bool:
    """``decode*``/``parse*`` taking device input, or any non-encoder taking raw bytes or
    registers (e.g. ECHONET EDT helpers). Text-taking helpers (MAC/config normalizers,
    checksum builders) only count when named as parsers."""
    if not types or not all(t in _INPUTS or t in _SCALARS for t in types):
        return False
    if not any(t in _INPUTS for t in types):
        return False
    if name.startswith(("decode", "parse")):
        return True
    raw = any(t in (bytes, list[int]) for t in types) and str not in types
    return raw and not name.startswith(("encode", "build", "make", "with_"))


def _discover() -> list[tuple[str, Callable[..., Any], list[Any]]]:
    found: list[tuple[str, Callable[..., Any], list[Any]]] = []
    for info in pkgutil.walk_packages(firmware_bridge.__path__, "firmware_bridge."):
        if any(part in info.name for part in _SKIP_MODULES):
            continue
        mod = importlib.import_module(info.name)
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if fn.__module__ != mod.__name__ or name.startswith("_"):
                continue
            try:
                hints = typing.get_type_hints(fn)
            except Exception:  # unresolvable annotations: not a decoder we can drive
                continue
            required = [
                p
                for p in inspect.signature(fn).parameters.values()
                if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            types = [hints.get(p.name) for p in required]
            if _is_decoder(name, types):
                found.append((f"{info.name}.{name}", fn, types))
    return found


DECODERS = _discover()


def test_decoders_are_discovered() -> None:
    names = {n for n, _f, _t in DECODERS}
    # the protocols present today; a rename that hides a decoder from this fuzz fails here
    assert {
        "firmware_bridge.nmea_gps.decoder.decode_sentence",
        "firmware_bridge.ble_gateway.framing.decode_line",
        "firmware_bridge.echonet_broute.frame.parse_frame",
        "firmware_bridge.echonet_broute.sk.parse_erxudp",
        "firmware_bridge.modbus_sdm.registers.decode_block",
    } <= names, names


def _args(types: list[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(*[_INPUTS[t] if t in _INPUTS else _SCALARS[t] for t in types])


@pytest.mark.parametrize(("name", "fn", "types"), DECODERS, ids=[d[0] for d in DECODERS])
def test_random_bytes_decode_or_raise_decode_error(
    name: str, fn: Callable[..., Any], types: list[Any]
) -> None:
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_args(types))
    def run(args: tuple[Any, ...]) -> None:
        with contextlib.suppress(DecodeError):
            fn(*args)

    run()
