"""Kubernetes resource quantities ("500m", "4Gi", "129e6") -> exact integers.

A pod's requests and limits are quantities: a decimal number with an optional binary
suffix (Ki..Ei), decimal suffix (m, k, M..E) or exponent (e3, E-2). They are parsed
exactly (Fractions, no floats) and rounded up to whole units as Kubernetes's own
`Value()` and `MilliValue()` do: cpu becomes millicores, everything else (memory,
ephemeral-storage, hugepages, extended resources such as `amd.com/gpu`) its base
unit. Anything else, or a negative amount, raises InvalidQuantity.
"""

import math
import re
from fractions import Fraction

INT64_MAX = 2**63 - 1

# apimachinery's resource.Quantity grammar (k8s.io/apimachinery/pkg/api/resource)
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)|[eE](?P<exponent>[+-]?\d+))?"
)
_SUFFIXES = {
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
# apimachinery refuses exponents this large; it also keeps the arithmetic small.
_MAX_EXPONENT = 30
CPU = "cpu"


class InvalidQuantity(ValueError):
    """A value that is not a non-negative Kubernetes quantity."""


def parse_quantity(value: object) -> Fraction:
    """The exact amount of a quantity given as a string or a JSON number."""
    if isinstance(value, bool):
        raise InvalidQuantity(f"{value!r} is not a quantity")
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        amount = Fraction(value)
    elif isinstance(value, str):
        amount = _parse_string(value.strip())
    else:
        raise InvalidQuantity(f"{value!r} is not a quantity")
    if amount < 0:
        raise InvalidQuantity(f"{value!r} is negative")
    return amount


def _parse_string(text: str) -> Fraction:
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise InvalidQuantity(f"{text!r} is not a quantity")
    number = Fraction(match["number"])
    if match["suffix"]:
        return number * _SUFFIXES[match["suffix"]]
    if match["exponent"]:
        exponent = int(match["exponent"])
        if abs(exponent) > _MAX_EXPONENT:
            raise InvalidQuantity(f"{text!r}: exponent out of range")
        return number * Fraction(10) ** exponent
    return number


def whole_units(resource: str, value: object) -> int:
    """The quantity of `resource` in the unit it is recorded in: millicores for cpu,
    the base unit (bytes, devices) otherwise; rounded up, as Kubernetes rounds."""
    amount = parse_quantity(value)
    if resource == CPU:
        amount *= 1000
    units = math.ceil(amount)
    if units > INT64_MAX:
        raise InvalidQuantity(f"{value!r} is out of range")
    return units
