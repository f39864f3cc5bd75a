"""``MaterializeError``: a partition of a materialize run failed for good.

Examples
--------
>>> err = MaterializeError("partition 3 of 8 failed", partition=3, partitions=8, element="sample 12")
>>> isinstance(err, TerrapipeError), err.partition, err.element
(True, 3, 'sample 12')
"""

from __future__ import annotations

from terrapipe.core.errors import TerrapipeError

__all__ = ["MaterializeError"]


class MaterializeError(TerrapipeError, RuntimeError):
    """A partition failed after its retries (or killed the workers that ran it).

    The message names the partition, the element it was producing and the
    error; the original error is the ``__cause__``. Partitions already
    written stay in the store: fix the cause and run ``materialize`` again.

    Attributes
    ----------
    partition, partitions
        The failed partition and how many there are.
    element
        Where in the partition it failed (the sample it was producing and the
        last one it produced), as text.
    """

    def __init__(self, message: str, *, partition: int, partitions: int, element: str = "") -> None:
        super().__init__(message)
        self.partition = partition
        self.partitions = partitions
        self.element = element

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (str(self), self.partition, self.partitions, self.element))


def _rebuild(message: str, partition: int, partitions: int, element: str) -> MaterializeError:
    return MaterializeError(message, partition=partition, partitions=partitions, element=element)
