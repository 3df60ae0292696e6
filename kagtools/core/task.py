"""The one ``Task`` type: what kind of target a competition has, and what follows from it."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Task", "TASKS"]


class Task(StrEnum):
    """A competition's task. A ``StrEnum``: it equals, prints and serialises as its name."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"
    MULTILABEL = "multilabel"
    MULTITARGET = "multitarget"

    @classmethod
    def parse(cls, value: str | Task, *, where: str = "task") -> Task:
        """``value`` as a Task, or one clear error naming ``where`` and the known tasks."""
        from kagtools.errors import KagtoolsError

        try:
            return cls(value)
        except ValueError:
            raise KagtoolsError(f"{where} '{value}' is not one of {', '.join(TASKS)}") from None

    @property
    def has_classes(self) -> bool:
        """A single label drawn from classes (encoded ``0..K-1``): binary or multiclass."""
        return self in (Task.BINARY, Task.MULTICLASS)

    @property
    def is_classification(self) -> bool:
        return self.has_classes or self is Task.MULTILABEL


TASKS: tuple[str, ...] = tuple(t.value for t in Task)
