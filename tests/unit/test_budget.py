"""How many images a call may hand out: its reservation and what the budget has left beside it."""

from __future__ import annotations

import pytest

from image_tool._policy.budget import Budget, BudgetExceededError


def test_a_call_may_keep_its_reservation_and_what_is_left() -> None:
    budget = Budget(max_images=5, max_cost=None, per_image=None)
    with budget.spending(1) as first:
        assert first.room() == 5
        with budget.spending(2) as second:
            assert (first.room(), second.room()) == (3, 4)  # each its own, and the 2 unreserved
            assert second.settle(4, None) == 4
        assert first.settle(3, None) == 1  # the other call took the room it saw
    assert budget.images == 5
    with pytest.raises(BudgetExceededError, match="budget is spent"), budget.spending(1):
        pass


def test_money_bounds_the_room_by_the_dearest_image() -> None:
    budget = Budget(max_images=None, max_cost=1.0, per_image=0.3)
    with budget.spending(1) as spending:
        assert spending.room() == 3  # 0.3 reserved + 0.7 left: three images at 0.3
    assert Budget(max_images=None, max_cost=None, per_image=0.3).spending(1).room() is None


@pytest.mark.parametrize(("max_cost", "per_image", "images"), [(0.9, 0.3, 3), (0.3, 0.1, 3), (0.7, 0.1, 7)])
def test_money_that_buys_a_whole_number_of_images_buys_them_all(
    max_cost: float, per_image: float, images: int
) -> None:
    """0.9 / 0.3 is 2.9999999999999996 in floating point: the room is still three images."""
    budget = Budget(max_images=None, max_cost=max_cost, per_image=per_image)
    with budget.spending(1) as spending:
        assert spending.room() == images
    with pytest.raises(BudgetExceededError, match=f"allows {images} more image"), budget.spending(images + 1):
        pass
    with budget.spending(images):
        pass


def test_a_budget_inside_another_spends_both_and_is_held_to_the_smaller() -> None:
    tool = Budget(max_images=3, max_cost=None, per_image=None)
    alice = Budget(max_images=2, max_cost=None, per_image=None, outer=tool)
    bob = Budget(max_images=2, max_cost=None, per_image=None, outer=tool)
    with alice.spending(2) as spending:
        assert spending.room() == 2
        spending.settle(2, None)
    assert (alice.left(), tool.left()) == ((0, None), (1, None))
    with pytest.raises(BudgetExceededError, match="budget is spent"), alice.spending(1):
        pass
    with pytest.raises(BudgetExceededError, match="Only 1 more image"), bob.spending(2):
        pass
    assert tool.images == 2  # the refused reservations were given back, in both
    with bob.spending(1) as spending:
        assert spending.room() == 1  # bob has 2 left, the tool 1
        spending.settle(1, None)
    assert (bob.left(), tool.left()) == ((0, None), (0, None))


def test_an_inner_budget_keeps_what_may_be_billed_in_both() -> None:
    tool = Budget(max_images=None, max_cost=1.0, per_image=0.25)
    user = Budget(max_images=None, max_cost=0.5, per_image=0.25, outer=tool)
    spending = user.spending(2)
    spending.__enter__()
    spending.sending()
    spending.__exit__(TimeoutError, TimeoutError())  # the request went out: it may be billed
    assert user.left() == (None, 0.0)
    assert tool.left() == (None, 0.5)
