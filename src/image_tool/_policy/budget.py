"""What a tool may spend: images and money, reserved before each call and settled after it, so
that calls running at once cannot together spend past the limits."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..errors import APIError, ImageToolError
from .retries import may_have_drawn


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

    def sending(self) -> None:
        """Called as a request's bytes go (``generate``'s ``on_sending``)."""
        self.sent = True

    def room(self) -> int | None:
        """The most images this call may hand out: its reservation and what the budget has left
        beside it (a relay may draw more than asked); ``None`` without limits."""
        return self.budget._room(self)

    def settle(self, images: int, cost: float | None) -> int:
        """``cost`` ``None`` (a relay that gave no token count): the reservation stands. Returns
        how many of ``images`` the call may hand out: calls that ran at once may have taken the
        room ``room()`` saw."""
        room = self.room()
        self.used_images = images if room is None else min(images, room)
        self.used_cost = cost
        return self.used_images

    def __enter__(self) -> Spending:
        self.budget._reserve(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, *rest: object) -> None:
        if error is not None and self.sent and not _nothing_drawn(error):
            self.used_images, self.used_cost = self.images, None  # may be billed: it stands
        self.budget._give_back(self)


def _nothing_drawn(error: BaseException) -> bool:
    """The failure shows the relay drew nothing: it answered with an error, or never had the
    request. Anything else (a cut answer, a drop after the request went out, a cancellation)
    may have been billed."""
    return isinstance(error, APIError) and not may_have_drawn(error)


class Budget:
    """At most ``max_images`` images and ``max_cost`` of money (``None``: no limit), an image
    costing at most ``per_image`` when reserved."""

    def __init__(self, max_images: int | None, max_cost: float | None, per_image: float | None) -> None:
        self.max_images, self.max_cost, self.per_image = max_images, max_cost, per_image
        self.images = 0
        self.cost = 0.0
        self._lock = threading.Lock()

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
