"""Parameter declaration with descriptions, and values only from the params file.

Nodes declare each parameter typed but without a default: its value comes from
``config/go_store.yaml`` (keyed by node name), the one place values are written.
A parameter missing from the file stops the node with a message naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter


class MissingParameterError(RuntimeError):
    """A declared parameter has no value: the params file does not set it."""


@dataclass(frozen=True)
class ParamSpec:
    """A parameter: name, type, what it means (with unit) and an optional range."""

    name: str
    type: Parameter.Type
    description: str
    minimum: float | None = None
    maximum: float | None = None
    read_only: bool = True


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(
        name=spec.name, type=spec.type.value, description=spec.description,
        read_only=spec.read_only)
    if spec.minimum is not None and spec.maximum is not None:
        if spec.type == Parameter.Type.INTEGER:
            descriptor.integer_range = [IntegerRange(
                from_value=int(spec.minimum), to_value=int(spec.maximum), step=0)]
        elif spec.type == Parameter.Type.DOUBLE:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(spec.minimum), to_value=float(spec.maximum), step=0.0)]
    return descriptor


def declare_parameters(node: Node, specs: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """Declare every spec on ``node`` and return their values from the params file."""
    values: dict[str, Any] = {}
    for spec in specs:
        node.declare_parameter(spec.name, spec.type, _descriptor(spec))
        try:
            values[spec.name] = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            raise MissingParameterError(
                f'node {node.get_name()!r}: parameter {spec.name!r} ({spec.description}) '
                'is not set; pass the params file (config/go_store.yaml) with a value '
                f'for it under {node.get_name()}.ros__parameters') from None
    return values


# Parameters several nodes declare, described once.
STORE_DESCRIPTION = ParamSpec(
    'store_description', Parameter.Type.STRING,
    "path of the store description YAML; '' for the package's config/store.yaml")
DATABASE_URL = ParamSpec(
    'database_url', Parameter.Type.STRING,
    'SQLAlchemy URL of the ledger database shared by gate and cart_ledger '
    '(sqlite:///PATH, ~ and $VARS expanded; or postgresql+psycopg://...)')
DIAGNOSTICS_PERIOD = ParamSpec(
    'diagnostics_period_s', Parameter.Type.DOUBLE, 'seconds between diagnostics messages',
    0.1, 60.0)
