"""What a tool may spend: images and money, reserved before each call and settled after it, so
that calls running at once cannot together spend past the limits."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TypeVar

from ..errors import APIError, ImageToolError
from .retries import may_have_drawn

T = TypeVar("T", int, float)


class BudgetExceededError(ImageToolError):
    """A call the tool's limits leave no room for; the message tells the model what is left."""


@dataclass
class Spending:
    """What one call reserved (on entering the block); ``settle`` it with what the call really
    used, and what it did not use is given back when the block ends. A call that failed after
    its request went out keeps its reservation unless the failure shows nothing was drawn (the
    relay refused it, or the request never reached it): what may be billed stays counted."""

    budget: Budget
    images: int
    cost: float
    used_images: int = 0
    used_cost: float | None = 0.0
    sent: bool = False
    """A request of the call went out (``sending`` was called)."""
    outer: Spending | None = None
    """The same call's reservation in the budget around this one (``Budget.outer``)."""

    def sending(self) -> None:
        """Called as a request's bytes go (``generate``'s ``on_sending``)."""
        self.sent = True
        if self.outer is not None:
            self.outer.sending()

    def room(self) -> int | None:
        """The most images this call may hand out: its reservation and what the budget (and the
        one around it) has left beside it (a relay may draw more than asked); ``None`` without limits."""
        rooms = [self.budget._room(self), None if self.outer is None else self.outer.room()]
        return min((room for room in rooms if room is not None), default=None)

    def settle(self, images: int, cost: float | None) -> int:
        """``cost`` ``None`` (a relay that gave no token count): the reservation stands. Returns
        how many of ``images`` the call may hand out: calls that ran at once may have taken the
        room ``room()`` saw."""
        room = self.room()
        self.used_images = images if room is None else min(images, room)
        self.used_cost = cost
        if self.outer is not None:
            self.outer.used_images, self.outer.used_cost = self.used_images, cost
        return self.used_images

    def __enter__(self) -> Spending:
        if self.budget.outer is not None:
            self.outer = self.budget.outer.spending(self.images).__enter__()
        try:
            self.budget._reserve(self)
        except BudgetExceededError as error:
            if self.outer is not None:
                self.outer.__exit__(type(error), error)  # nothing sent: given back
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, *rest: object) -> None:
        if error is not None and self.sent and not _nothing_drawn(error):
            self.used_images, self.used_cost = self.images, None  # may be billed: it stands
        self.budget._give_back(self)
        if self.outer is not None:
            self.outer.__exit__(kind, error)


def _nothing_drawn(error: BaseException) -> bool:
    """The failure shows the relay drew nothing: it answered with an error, or never had the
    request. Anything else (a cut answer, a drop after the request went out, a cancellation)
    may have been billed."""
    return isinstance(error, APIError) and not may_have_drawn(error)


class Budget:
    """At most ``max_images`` images and ``max_cost`` of money (``None``: no limit), an image
    costing at most ``per_image`` when reserved; within ``outer``'s limits too, when given (a
    user's budget inside the tool's)."""

    def __init__(
        self,
        max_images: int | None,
        max_cost: float | None,
        per_image: float | None,
        outer: Budget | None = None,
    ) -> None:
        self.max_images, self.max_cost, self.per_image = max_images, max_cost, per_image
        self.outer = outer
        self.images = 0
        self.cost = 0.0
        self._lock = threading.Lock()

    def left(self) -> tuple[int | None, float | None]:
        """Images and money not yet spent or reserved, here or in ``outer`` (``None``: no limit)."""
        with self._lock:
            images = None if self.max_images is None else max(0, self.max_images - self.images)
            cost = None if self.max_cost is None else max(0.0, self.max_cost - self.cost)
        if self.outer is None:
            return images, cost
        outer_images, outer_cost = self.outer.left()
        return _least(images, outer_images), _least(cost, outer_cost)

    def spending(self, n: int) -> Spending:
        """``with budget.spending(n) as spending:`` reserves ``n`` images for a call (or tells the
        model plainly what is left)."""
        return Spending(self, n, n * (self.per_image or 0.0))

    def _give_back(self, spending: Spending) -> None:
        with self._lock:
            self.images += spending.used_images - spending.images
            used_cost = spending.cost if spending.used_cost is None else spending.used_cost
            self.cost += used_cost - spending.cost

    def _room(self, spending: Spending) -> int | None:
        with self._lock:
            rooms = []
            if self.max_images is not None:
                rooms.append(spending.images + max(0, self.max_images - self.images))
            if self.max_cost is not None and self.per_image:
                rooms.append(
                    int((spending.cost + max(0.0, self.max_cost - self.cost)) / self.per_image + 1e-9)
                )
        return min(rooms, default=None)

    def _reserve(self, spending: Spending) -> None:
        with self._lock:
            images_left = None if self.max_images is None else self.max_images - self.images
            cost_left = None if self.max_cost is None else self.max_cost - self.cost
            if (images_left is None or spending.images <= images_left) and (
                cost_left is None or spending.cost <= cost_left + 1e-9
            ):
                self.images += spending.images
                self.cost += spending.cost
                return
        if images_left is not None and spending.images > images_left:
            if images_left <= 0:
                raise BudgetExceededError(
                    f"The image budget is spent: all {self.max_images} images allowed here have been "
                    "generated. Do not call generate_image again; tell the user no more images can be made."
                )
            raise BudgetExceededError(
                f"Only {images_left} more image(s) may be generated here; ask for n={images_left} or fewer."
            )
        affordable = int((cost_left or 0.0) / self.per_image + 1e-9) if self.per_image else 0
        if affordable <= 0:
            raise BudgetExceededError(
                f"The spending limit of {self.max_cost:g} is reached. Do not call generate_image again; "
                "tell the user no more images can be made."
            )
        raise BudgetExceededError(
            f"The spending limit allows {affordable} more image(s); ask for n={affordable} or fewer."
        )


def _least(first: T | None, second: T | None) -> T | None:
    """The smaller of two limits, ``None`` being none."""
    if first is None or second is None:
        return second if first is None else first
    return min(first, second)
